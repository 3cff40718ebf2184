"""Progress output: a rich bar on a terminal, plain log lines in batch logs, nothing with --quiet.

On a terminal (stderr is a tty) `progress_bar` draws a rich bar on stderr. Otherwise
(SLURM logs, pipes, files) it logs plain lines through `logging` (stderr, set up by
`cli_common.runner.run`), at most one every `LOG_INTERVAL` seconds or whenever another
`LOG_FRACTION` of the work is done, whichever comes first, plus the last one:

    extract resnet18: 480/1000 images (48%), 1m12s elapsed, about 1m18s left

With `--quiet` (`cli_common.runner.state.quiet`) there is no progress output at all.

The environment variable `NET2BRAIN_LOG_INTERVAL` / `FOVEX_LOG_INTERVAL` (named after
the tool, like `NET2BRAIN_QUIET`) sets the longest time between two lines in seconds
instead of `LOG_INTERVAL` (an `interval` given by the caller still wins); `0` logs a line
after every step of the work (every batch), which job scripts and tests that watch a run
use (tests/reliability/test_faults.py kills commands after a given line).
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator

LOG_INTERVAL = 30.0  # seconds between two progress lines in a batch log (at most)
LOG_FRACTION = 0.1  # ... or a line whenever this fraction of the work is done

log = logging.getLogger("cli_common.progress")
_clock = time.monotonic  # replaced in tests


@contextlib.contextmanager
def progress_bar(
    description: str, unit: str | None = None, interval: float | None = None, fraction: float | None = None,
) -> Iterator[Callable[[int, int], None]]:
    """Yield an `update(done, total)` callback that reports progress on stderr: a rich
    bar on a terminal, log lines otherwise, nothing with --quiet.

    Parameters
    ----------
    description : str
        What is being done (`extract resnet18`).
    unit : str, optional
        What is counted (`images`); the bar then also shows the rate.
    interval, fraction : float, optional
        Batch logs: the longest time between two lines (default `LOG_INTERVAL` seconds)
        and the share of the work between two lines (default `LOG_FRACTION`).
    """
    from cli_common.runner import state

    if state.quiet:
        yield _checked(lambda done, total: None)
        return
    if not _isatty(sys.stderr):
        if interval is None:
            interval = _interval_from_environment(state.prog_name)
        yield _checked(_LogLines(description, unit, LOG_INTERVAL if interval is None else interval,
                                 LOG_FRACTION if fraction is None else fraction))
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(),
    ]
    if unit:
        columns.append(TextColumn(f"{{task.fields[rate]}} {unit}/s"))
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task(description, total=None, rate="-")

        def update(done: int, total: int) -> None:
            speed = progress.tasks[0].speed
            progress.update(task, completed=done, total=total, rate=f"{speed:,.0f}" if speed else "-")

        yield _checked(update)


def _checked(update: Callable[[int, int], None]) -> Callable[[int, int], None]:
    """`update` that first raises KeyboardInterrupt again if a Ctrl-C of this run was
    swallowed by Python (raised inside a finaliser; see `cli_common.runner._interrupts`)."""
    from cli_common.runner import state

    def checked(done: int, total: int) -> None:
        if state.interrupted:
            raise KeyboardInterrupt
        update(done, total)

    return checked


def interval_variable(prog_name: str) -> str:
    """The environment variable that sets a tool's progress-line interval: `NET2BRAIN_LOG_INTERVAL`."""
    return f"{prog_name.upper().replace('-', '_')}_LOG_INTERVAL"


def _interval_from_environment(prog_name: str) -> float | None:
    """Seconds between progress lines from `<TOOL>_LOG_INTERVAL` (None: unset, or not a
    number >= 0, which is logged as a warning and ignored)."""
    if not prog_name:
        return None
    name = interval_variable(prog_name)
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        log.warning("%s=%s is not a number of seconds >= 0; progress lines come every %gs", name, value, LOG_INTERVAL)
        return None
    return seconds


class _LogLines:
    """`update(done, total)` that logs a line when `interval` seconds have passed since
    the last one, when another `fraction` of the work is done, and at the end. The time
    left is estimated from the rate since the first update (a resumed run's first
    update already counts the earlier work, which is not timed); nothing is logged
    before any work is done."""

    def __init__(self, description: str, unit: str | None, interval: float, fraction: float) -> None:
        self.description, self.unit = description, unit
        self.interval, self.fraction = interval, fraction
        self.started = _clock()
        self.first: tuple[int, float] | None = None  # (done, time) at the first update
        self.last_time = self.started
        self.last_step = 0
        self.last_done: int | None = None

    def __call__(self, done: int, total: int) -> None:
        now = _clock()
        if self.first is None:
            self.first = (done, now)
        if done == self.last_done or (done == 0 and total > 0):
            return
        step = self._step(done, total)
        if done >= total or now - self.last_time >= self.interval or step > self.last_step:
            self.last_time, self.last_step, self.last_done = now, step, done
            log.info("%s", self.line(done, total, now))

    def _step(self, done: int, total: int) -> int:
        if total <= 0 or self.fraction <= 0:
            return 0
        return math.floor(done / total / self.fraction + 1e-9)

    def line(self, done: int, total: int, now: float) -> str:
        """`extract resnet18: 480/1000 images (48%), 1m12s elapsed, about 1m18s left`."""
        unit = f" {self.unit}" if self.unit else ""
        percent = 100 * done // total if total > 0 else 100
        text = f"{self.description}: {done}/{total}{unit} ({percent}%), {format_duration(now - self.started)} elapsed"
        first_done, first_time = self.first
        if done < total and done > first_done and now > first_time:
            left = (total - done) * (now - first_time) / (done - first_done)
            text += f", about {format_duration(left)} left"
        return text


def format_duration(seconds: float) -> str:
    """45s, 1m12s, 2h03m."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
