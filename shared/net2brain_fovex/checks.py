"""Range checks of numeric options, each naming the Python parameter it checks.

Every entry point validates its options with these at its top, before any data is
read, so that a bad value fails at once with one message (`ConfigError`).
"""
from __future__ import annotations

import math

from .errors import ConfigError

__all__ = ["at_least", "positive", "between"]


def at_least(name: str, value: float, minimum: float, *, unit: str = "") -> None:
    """`value` >= `minimum` (NaN fails), else a `ConfigError` naming `name`."""
    if not value >= minimum:
        bound = "0 or more" if minimum == 0 and not unit else f"at least {minimum}{unit}"
        raise ConfigError(f"`{name}` must be {bound}, got {value}")


def positive(name: str, value: float, what: str = "number") -> None:
    """A finite `value` > 0, else a `ConfigError`: `` `name` must be a positive {what} ``."""
    if not (value is not None and math.isfinite(value) and value > 0):
        raise ConfigError(f"`{name}` must be a positive {what}, got {value}")


def between(name: str, value: float, *, low: float, high: float) -> None:
    """`low` < `value` < `high` (NaN fails), else a `ConfigError`."""
    if not low < value < high:
        raise ConfigError(f"`{name}` must be between {low:g} and {high:g}, got {value}")
