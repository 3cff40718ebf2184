"""The range of every numeric option, decided once (`RANGES`), and its check.

Each entry point checks its numeric options with `check_range` at its top, before any
data is read, so a value out of range fails at once with one message (`ConfigError`)
naming the Python parameter; the command line shows each range in its help text
(`Range.text`). Bounds are where a value stops making sense (a probability above 1) or
where a run could not work on any machine (a seed beyond 32 bits, a sphere of a metre).

Light (no torch): the command line reads this table at start-up.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import ConfigError
from .registry import Registry

__all__ = ["Range", "RANGES", "check_range", "SEED_MAX"]

SEED_MAX = 2**32 - 1  # numpy, torch and the random projection all take seeds of 32 bits


@dataclass(frozen=True)
class Range:
    """The values an option may take.

    Attributes
    ----------
    name : str
        The Python parameter (and the registry key).
    low, high : float or None
        The bounds (None: unbounded on that side).
    integer : bool
        Whole numbers only.
    open_low, open_high : bool
        The bound itself is excluded.
    what : str
        What a value is, for messages (`number of millimetres`).
    interval : bool
        Say "between low and high" (a probability) rather than name the bound crossed.
    """

    name: str
    low: float | None = None
    high: float | None = None
    integer: bool = False
    open_low: bool = False
    open_high: bool = False
    what: str = ""
    interval: bool = False

    @property
    def summary(self) -> str:
        return self.text

    @property
    def text(self) -> str:
        """The range as the help shows it: `1 to 100000`, `> 0 to 1000`, `0 to 1`."""
        low = "" if self.low is None else (f"> {_shown(self.low)}" if self.open_low else _shown(self.low))
        high = "" if self.high is None else (f"< {_shown(self.high)}" if self.open_high else _shown(self.high))
        if low and high:
            return f"{low} to {high}"
        return f"at least {low}" if low else (f"at most {high}" if high else "any finite number")

    def check(self, value: float) -> None:
        """`ConfigError` naming the parameter unless `value` lies in the range."""
        unit = f" {self.what}" if self.what else ""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"`{self.name}` must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"`{self.name}` must be a finite number{unit}, got {value}")
        if self.integer and not float(value).is_integer():
            raise ConfigError(f"`{self.name}` must be a whole number, got {value}")
        too_low = self.low is not None and (value <= self.low if self.open_low else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.open_high else value > self.high)
        if not (too_low or too_high):
            return
        if self.interval:
            raise ConfigError(f"`{self.name}` must be between {_shown(self.low)} and {_shown(self.high)}{unit}, got {value}")
        if too_low:
            if self.open_low and self.low == 0:
                bound = f"a positive {self.what or 'number'}"
            elif self.low == 0:
                bound = "0 or more"
            else:
                bound = f"at least {_shown(self.low)}{unit}"
        else:
            bound = f"at most {_shown(self.high)}{unit}"
        raise ConfigError(f"`{self.name}` must be {bound}, got {value}")


def _shown(bound: float) -> str:
    """A bound as people write it: whole numbers in full (1048576, not 1.04858e+06)."""
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


RANGES: Registry[Range] = Registry("option range", [
    Range("seed", 0, SEED_MAX, integer=True),
    Range("batch_size", 1, 100_000, integer=True),
    Range("frames", 1, 10_000, integer=True),
    Range("image_size", 8, 4096, integer=True, what="pixels"),
    Range("crop_pct", 0, 1, open_low=True, interval=True),
    Range("clips", 1, 1000, integer=True),
    Range("memory", 1, 2**20, integer=True, what="MB"),
    Range("components", 1, 10_000_000, integer=True),
    Range("radius", 0, 200, open_low=True, what="number of millimetres"),
    Range("min_voxels", 1, 10_000_000, integer=True),
    Range("threshold", None, None),
    Range("alpha", 0, 1, open_low=True, interval=True),
    Range("fdr", 0, 1, open_low=True, open_high=True, interval=True),
    Range("folds", 2, 100_000, integer=True),
    Range("inner_folds", 2, 1000, integer=True),
    Range("chunk", 1, 100_000_000, integer=True, what="targets"),
    Range("bootstrap", 0, 1_000_000, integer=True),
    Range("permutations", 0, 1_000_000, integer=True),
    Range("step", 1, 2**31 - 1, integer=True, what="pixel"),
    Range("gaze_sigma", 0, 10_000, open_low=True, what="number of pixels"),
    Range("target", 0, 2**31 - 1, integer=True),
    Range("max_images", 1, 1_000_000, integer=True),
])


def check_range(name: str, value: float) -> float:
    """Check `value` against the range of the option `name` (`RANGES`) and return it."""
    RANGES[name].check(value)
    return value
