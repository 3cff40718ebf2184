"""What lies at a path that should be a regular file, in words for a message.

A missing file, a folder, a link to nothing, a loop of links, a FIFO and a device all
fail an `is_file()` test; calling them all "does not exist" sends the user looking for
the wrong thing.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

__all__ = ["what_is_there"]


def what_is_there(path: str | Path) -> str:
    """How `path` falls short of a regular file, to follow its name in a message:
    `does not exist`, `is a folder`, `is a broken link (to gone.png)`, `is a loop of
    links`, `is a FIFO`, `is a socket`, `is a device`, `is not readable (...)`; for a
    regular file `is a file`."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "is a loop of links"
        if error.errno == errno.ENOENT and path.is_symlink():
            return f"is a broken link (to {os.readlink(path)})"
        if error.errno in (errno.ENOENT, errno.ENOTDIR):
            return "does not exist"
        return f"is not readable ({error.strerror or error})"
    if stat.S_ISDIR(mode):
        return "is a folder"
    if stat.S_ISFIFO(mode):
        return "is a FIFO (a named pipe)"
    if stat.S_ISSOCK(mode):
        return "is a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device"
    return "is a file"
