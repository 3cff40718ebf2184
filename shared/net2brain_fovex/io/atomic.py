"""Atomic outputs: every file is written under a temporary name in its own folder and
renamed into place only when complete, so a file with the final name is always a
finished one; and the checks of an output path made before any work (its folder exists
and is writable, or can be created, it does not exist yet, there is room on the disk).

A missing output folder (and its missing parents) is created only when the run writes
its first file there (`make_output_folder`, called by `atomic_output`), after every
input has been checked: a refused run leaves no new folder behind.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import OutputError

__all__ = ["atomic_output", "check_output_dir", "make_output_dir", "make_output_folder", "check_new_output"]


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it to `path` when the block succeeds.

    On any exception (including KeyboardInterrupt) the temporary file is removed and
    `path` is left untouched.
    """
    path = Path(path)
    made = make_output_folder(path)
    # the temporary name keeps the suffixes, so writers that go by them (nibabel) still can
    try:  # a read-only file system, or a folder only root may write to
        handle, tmp_name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix="".join(path.suffixes[-2:]) or ".tmp", dir=path.parent)
    except OSError as error:
        _remove_empty(made)
        raise output_error(path, error) from None
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's private 0600 would stay on the output
        yield tmp
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        _remove_empty(made)
        if write_failure(error):
            raise output_error(path, error) from None
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_output_folder(path: Path) -> None:
    """Raise `OutputError` unless the folder of `path` is a writable folder, or is missing
    and can be created: the nearest of its parents that exists is a writable folder.
    Nothing is created here (`make_output_folder` does, when the run writes)."""
    folder = path.parent
    nearest = next(p for p in (folder, *folder.absolute().parents) if p.exists())
    missing = "" if nearest == folder else f"cannot be created: {nearest} "
    if not nearest.is_dir():
        raise OutputError(f"output folder {folder} {missing}is a file, not a folder; choose another output path")
    if not os.access(nearest, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {folder} {missing}is not writable; choose another output folder")
    try:  # os.access says yes to root everywhere: a read-only file system shows only when writing
        with tempfile.TemporaryFile(dir=nearest):
            pass
    except OSError as error:
        raise output_error(path, error) from None


def make_output_folder(path: str | Path) -> list[Path]:
    """`check_output_folder`, then create the folder of `path` and its missing parents,
    and take the run locks that waited for them (`net2brain_fovex.io.locks.lock_pending`).

    Called when the run writes (`atomic_output`), never by the checks made before any
    work, so that a refused run creates no folder.

    Parameters
    ----------
    path : path
        An output file.

    Returns
    -------
    list of Path
        The folders created, deepest first (a failed write removes them again if empty).

    Raises
    ------
    OutputError
        The folder cannot be created, or another run holds an output in it.
    """
    from .locks import lock_pending

    path = Path(path)
    folder = path.parent
    if folder.is_dir():  # made meanwhile, perhaps by another run
        lock_pending()
        return []
    check_output_folder(path)
    made = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        _remove_empty(made)
        raise OutputError(f"cannot create output folder {folder}: {error.strerror or error}; "
                          "choose another output path") from None
    lock_pending()
    return made


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders a failed write created, deepest first, while they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def check_output_dir(folder: str | Path, parameter: str) -> Path:
    """Refuse, before any work, an output folder that cannot be made: a file of that
    name, a file in its path, or an existing parent that is not writable. `parameter`
    names it in the message (`out_dir`, `out`).

    The nearest folder that exists (`folder` itself, or a parent) must be writable.
    Nothing is created (`make_output_dir` creates it).

    Parameters
    ----------
    folder : path
        The output folder.
    parameter : str
        The Python parameter that gave `folder`, for messages.

    Returns
    -------
    Path
        `folder`.

    Raises
    ------
    OutputError
        `folder` cannot be made or written to.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"`{parameter}` {folder} is a file, not a folder; give a folder")
    parent = next(p for p in (folder.absolute(), *folder.absolute().parents) if p.exists())
    if not parent.is_dir():
        raise OutputError(f"`{parameter}` {folder} cannot be created: {parent} is a file, not a folder; "
                          "give another folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"`{parameter}` {folder} cannot be created: {parent} is not writable; give another folder")
    return folder


def make_output_dir(folder: str | Path, parameter: str) -> Path:
    """`check_output_dir`, then create the folder (and its parents).

    Parameters
    ----------
    folder : path
        The output folder; an existing one is kept as it is.
    parameter : str
        The Python parameter that gave `folder`, for messages.

    Returns
    -------
    Path
        `folder`, which exists now.

    Raises
    ------
    OutputError
        As `check_output_dir`, or the folder cannot be created.
    """
    folder = check_output_dir(folder, parameter)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create `{parameter}` {folder}: {error.strerror or error}; give another folder") from None
    return folder


def check_new_output(path: str | Path, overwrite: bool) -> Path:
    """Validate an output path before any work: its folder is writable (or can be created) and, unless
    `overwrite`, no file of that name exists.

    Parameters
    ----------
    path : path
        The output file.
    overwrite : bool
        Accept an existing file (it is not removed here).

    Returns
    -------
    Path
        `path`.

    Raises
    ------
    OutputError
        The folder is not a folder, not writable or cannot be created, `path` is a
        folder, or it exists and `overwrite` is False.
    """
    path = Path(path)
    check_output_folder(path)
    if path.is_dir():
        raise OutputError(f"output {path} is a folder; give a file name")
    if path.exists() and not overwrite:
        raise OutputError(f"output {path} exists already; add `overwrite=True` to replace it")
    return path


# HDF5 reports a failed system call inside its message (h5py raises OSError or RuntimeError)
_HDF5_ERRNO = re.compile(r"errno = (\d+)")


def write_failure(error: BaseException) -> bool:
    """Whether `error` is a failed write: an OSError, or an HDF5 error (h5py raises
    RuntimeError too) caused by a failed system call, such as a full disk."""
    if isinstance(error, OSError):
        return True
    return isinstance(error, RuntimeError) and _HDF5_ERRNO.search(str(error)) is not None


def output_error(path: Path, error: BaseException, hint: str = "") -> OutputError:
    """One line for a failed write: a full disk, a file-size limit, a read-only or
    forbidden folder, or else the system's reason (never HDF5's error stack)."""
    code = getattr(error, "errno", None)
    found = _HDF5_ERRNO.search(str(error))
    if found:  # h5py's OSError carries no errno of its own; the HDF5 message names it
        code = int(found[1])
    if code in (errno.ENOSPC, errno.EDQUOT):
        reason = "no space left on the device" if code == errno.ENOSPC else "disk quota exceeded"
        return OutputError(f"{reason} while writing {path}; free some space{hint or ''}")
    if code == errno.EFBIG:
        return OutputError(f"cannot write {path}: file too large for the file-size limit (ulimit -f) or the file "
                           f"system; raise the limit or write elsewhere{hint or ''}")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputError(f"cannot write {path}: {os.strerror(code)}; choose another output folder")
    reason = os.strerror(code) if code else (getattr(error, "strerror", None) or str(error).strip().splitlines()[0])
    return OutputError(f"cannot write {path}: {reason}{hint or ''}")



METADATA_ROOM = 2**20  # bytes of room for HDF5 metadata (attributes, headers) beyond the raw data


def check_room(folder: Path, size: int, file_size: int = 0) -> None:
    """Raise OSError (EFBIG, ENOSPC) unless `size` more bytes fit in a file of
    `file_size` bytes in `folder`: under the process's file-size limit (ulimit -f) and in
    the free space of the file system (quotas are not seen here)."""
    try:
        import resource
    except ImportError:  # not a Unix
        resource = None
    if resource is not None:
        soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
        if soft != resource.RLIM_INFINITY and file_size + size > soft:
            raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))
    try:
        stats = os.statvfs(folder)
    except (AttributeError, OSError):
        return
    if stats.f_bavail * stats.f_frsize < size:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def reserve_space(path: Path) -> None:
    """Allocate the disk blocks of the whole (sparse) file `path` now, with Linux's
    fallocate(2), so that a full disk or quota fails here, before any work, rather than
    in a later write. Does nothing where the platform or the file system cannot (glibc's
    posix_fallocate would instead write a byte per block, slow on network file systems).

    Raises OSError (ENOSPC, EDQUOT, EFBIG) when the space is not there.
    """
    import ctypes

    try:
        fallocate = ctypes.CDLL(None, use_errno=True).fallocate
    except (AttributeError, OSError):  # not Linux
        return
    fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    fallocate.restype = ctypes.c_int
    handle = os.open(path, os.O_RDWR)
    try:
        size = os.fstat(handle).st_size
        if size and fallocate(handle, 0, 0, size) != 0:
            code = ctypes.get_errno()
            if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise OSError(code, os.strerror(code))
    finally:
        os.close(handle)

