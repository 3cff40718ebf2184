"""Progress bars: rich, on stderr, only when stderr is a terminal."""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def progress_bar(description: str, unit: str | None = None) -> Iterator[Callable[[int, int], None]]:
    """Yield an `update(done, total)` callback that drives a progress bar, or does
    nothing when stderr is not a terminal (batch logs stay readable). With `unit`, the
    bar also shows the rate (for example centres per second)."""
    if not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

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

        yield update
