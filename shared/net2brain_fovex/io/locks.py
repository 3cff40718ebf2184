"""One run at a time per output: a lock beside the output, held while the run writes it.

Two runs writing one output at once (a job submitted twice, a shell loop started again)
would interleave rows in its `.partial` file, or tell the second run to resume a file
the first is still writing. Every entry point (`holds_outputs`) therefore locks its
main output before it looks at it (`lock_output`): the lock is an exclusive `flock` on
the hidden file `.<name>.lock` beside the output, which the operating system releases
when the run ends in any way, a kill included; a second run finds it held and is
refused at once, saying that another run holds the output. The lock file is removed
when the run ends; one left by a killed run is harmless (nobody holds its lock) and is
taken and removed by the next run. An output whose folder does not exist yet is locked
when the run creates that folder, just before its first write (`lock_pending`).

`flock` is the lock kind that works within one process as between processes (a run that
checks its outputs twice takes the lock once) and, on Linux's NFS client, between the
nodes of a cluster.
"""
from __future__ import annotations

import contextvars
import fcntl
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..errors import OutputError

__all__ = ["holds_outputs", "lock_output", "lock_path", "lock_pending"]

Function = TypeVar("Function", bound=Callable)

# the locks of the entry point running in this context, by the output they lock
_HELD: contextvars.ContextVar[dict[str, int | None] | None] = contextvars.ContextVar("held_output_locks", default=None)


def holds_outputs(function: Function) -> Function:
    """Decorate an entry point: the outputs it locks (`lock_output`) stay locked until it
    returns or raises. An entry point called by another (the demos) shares its locks."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        if _HELD.get() is not None:
            return function(*args, **kwargs)
        held: dict[str, int | None] = {}
        token = _HELD.set(held)
        try:
            return function(*args, **kwargs)
        finally:
            _HELD.reset(token)
            for lock, descriptor in held.items():
                _release(Path(lock), descriptor)

    return wrapper  # type: ignore[return-value]


def lock_path(output: str | Path) -> Path:
    """The lock file of an output (a file or a folder): `.<name>.lock` beside it."""
    output = Path(output)
    return output.with_name(f".{output.name}.lock")


def lock_output(output: str | Path) -> None:
    """Lock `output` for the running entry point; nothing outside one (`holds_outputs`).

    Raises
    ------
    OutputError
        Another run holds the lock.
    """
    held = _HELD.get()
    if held is None:
        return
    lock = lock_path(Path(os.path.abspath(output)))
    if str(lock) in held:
        return
    if not lock.parent.is_dir():  # a folder made when the run writes: locked then (`lock_pending`)
        held[str(lock)] = None
        return
    while True:
        try:
            descriptor = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError:  # a folder we may not write to: the output checks say so
            return
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise OutputError(f"another run holds {output}: it is writing it now (its lock {lock.name} is taken); "
                              "wait for that run to finish, or stop it, then rerun") from None
        except OSError:  # a file system without locks: run unlocked rather than not at all
            os.close(descriptor)
            return
        # a run ending just now may have removed the file after we opened it: lock the one in place
        try:
            if os.fstat(descriptor).st_ino == os.stat(lock).st_ino:
                held[str(lock)] = descriptor
                return
        except FileNotFoundError:
            pass
        os.close(descriptor)


def lock_pending() -> None:
    """Take the locks `lock_output` left for outputs whose folder did not exist yet, now
    that it does (`net2brain_fovex.io.atomic.make_output_folder` calls it).

    Raises
    ------
    OutputError
        Another run holds one of them.
    """
    held = _HELD.get() or {}
    for lock in [Path(name) for name, descriptor in held.items() if descriptor is None]:
        if lock.parent.is_dir():
            del held[str(lock)]
            lock_output(lock.with_name(lock.name[1:-len(".lock")]))


def _release(lock: Path, descriptor: int | None) -> None:
    if descriptor is None:  # never taken: its folder was not made
        return
    try:
        lock.unlink(missing_ok=True)  # removed while still locked, so no one takes a file about to vanish
    finally:
        os.close(descriptor)
