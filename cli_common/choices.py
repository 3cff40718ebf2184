"""Command-line choices generated from the core's registries (`net2brain_fovex.registry`):
the type of an option whose value is a registered name, and its help text."""
from __future__ import annotations

from typing import Literal

from net2brain_fovex.checks import RANGES
from net2brain_fovex.registry import Registry


def choice(registry: Registry, *extra: str):
    """The option type accepting the registry's names (and `extra` ones, e.g. auto)."""
    return Literal[(*extra, *registry.names)]  # type: ignore[valid-type]


def choice_help(registry: Registry, lead: str = "") -> str:
    """`lead` followed by every name and its meaning."""
    return f"{lead} {registry.summaries()}.".strip()


def ranged(help: str, name: str) -> str:
    """`help` with the range of the option `name` (`net2brain_fovex.checks.RANGES`)."""
    return f"{help} [{RANGES[name].text}]"
