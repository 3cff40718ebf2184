"""Files on disk: atomic writes, output checks, and the HDF5 activation layout.

Every output is written under a temporary name in its own folder and renamed into place
only when complete, so a file with the final name is always a finished one. Activation
files are the exception that proves the rule: their temporary `<name>.partial` file
survives an interruption so that `--resume` can continue it.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .errors import InputError, OutputError, ToolboxError

PARTIAL_SUFFIX = ".partial"
ACTIVATIONS_KIND = "activations"
# the command that writes each kind of file, for the hint of a file of the wrong kind
_WRITERS = {"activations": "`net2brain extract`", "rdms": "`net2brain rdm`",
            "attributions": "`fovex explain`", "evaluation": "`fovex evaluate`"}
_ROWS_DONE = "_rows_done"
# Chunks of about this many bytes: a few rows of a large layer, many rows of a small one.
_CHUNK_BYTES = 4 * 2**20


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it to `path` when the block succeeds.

    On any exception (including KeyboardInterrupt) the temporary file is removed and
    `path` is left untouched.
    """
    path = Path(path)
    check_output_folder(path)
    # the temporary name keeps the suffixes, so writers that go by them (nibabel) still can
    try:  # a read-only file system, or a folder only root may write to
        handle, tmp_name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix="".join(path.suffixes[-2:]) or ".tmp", dir=path.parent)
    except OSError as error:
        raise _output_error(path, error) from None
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's private 0600 would stay on the output
        yield tmp
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if write_failure(error):
            raise _output_error(path, error) from None
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_output_folder(path: Path) -> None:
    """Raise `OutputError` unless the folder of `path` exists and is writable."""
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"output folder {folder} is a file, not a folder; choose another output path")
    if not folder.is_dir():
        raise OutputError(f"output folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {folder} is not writable; choose another --out")
    try:  # os.access says yes to root everywhere: a read-only file system shows only when writing
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise _output_error(path, error) from None


def check_output_dir(folder: str | Path, option: str) -> Path:
    """Refuse, before any work, an output folder that cannot be made: a file of that
    name, a file in its path, or an existing parent that is not writable. `option` names
    it in the message (`--out-dir`, `--out`)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{option} {folder} is a file, not a folder; give a folder")
    parent = next(p for p in (folder.absolute(), *folder.absolute().parents) if p.exists())
    if not parent.is_dir():
        raise OutputError(f"{option} {folder} cannot be created: {parent} is a file, not a folder; give another folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{option} {folder} cannot be created: {parent} is not writable; give another folder")
    return folder


def make_output_dir(folder: str | Path, option: str) -> Path:
    """`check_output_dir`, then create the folder (and its parents)."""
    folder = check_output_dir(folder, option)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create {option} {folder}: {error.strerror or error}; give another folder") from None
    return folder


def check_new_output(path: str | Path, overwrite: bool) -> Path:
    """Validate an output path before any work: its folder is writable and, unless
    `overwrite`, no file of that name exists."""
    path = Path(path)
    check_output_folder(path)
    if path.is_dir():
        raise OutputError(f"output {path} is a folder; give a file name")
    if path.exists() and not overwrite:
        raise OutputError(f"output {path} exists already; add --overwrite to replace it")
    return path


# HDF5 reports a failed system call inside its message (h5py raises OSError or RuntimeError)
_HDF5_ERRNO = re.compile(r"errno = (\d+)")


def write_failure(error: BaseException) -> bool:
    """Whether `error` is a failed write: an OSError, or an HDF5 error (h5py raises
    RuntimeError too) caused by a failed system call, such as a full disk."""
    if isinstance(error, OSError):
        return True
    return isinstance(error, RuntimeError) and _HDF5_ERRNO.search(str(error)) is not None


def _output_error(path: Path, error: BaseException, hint: str = "") -> OutputError:
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


# ------------------------------------------------------------------ resumable row files


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of a row file: its path (e.g. `layers/conv1` or `maps`), the shape
    of one row, its dtype and attributes."""

    path: str
    shape: tuple[int, ...]
    dtype: str
    attrs: Mapping[str, Any] = field(default_factory=dict)


class RowWriter:
    """Streams rows (one per stimulus) into the datasets of a `<out>.partial` HDF5 file.

    Datasets are allocated in full when the file is created, so later writes change raw
    data only and never the file's metadata: a process killed between two batches leaves
    a readable partial file whose `_rows_done` counter says how far it got. Groups keep
    their datasets in creation order.

    Parameters
    ----------
    path : Path
        The final output path; the writer works on `path` + ".partial".
    kind : str
        The file's `kind` attribute (activations, attributions, ...).
    stimuli : sequence of str
        Stimulus ids, one per row, in order.
    specs : sequence of DatasetSpec
        The datasets to create.
    signature : str
        Identifies the job (options and inputs); a partial file is resumed only when its
        signature is the same.
    resume : bool
        Continue an existing partial file instead of refusing to touch it.
    batch_rows : int
        Rows per write; chunks are sized to divide it, so that every write fills whole
        chunks and none is read back and rewritten.
    """

    def __init__(
        self,
        path: Path,
        kind: str,
        stimuli: Sequence[str],
        specs: Sequence[DatasetSpec],
        signature: str,
        resume: bool,
        batch_rows: int = 1,
    ) -> None:
        self.path = Path(path)
        self.batch_rows = batch_rows
        self.partial = self.path.with_name(self.path.name + PARTIAL_SUFFIX)
        self.n = len(stimuli)
        self.rows_done = 0
        self.file: h5py.File | None = None
        self.write_failed = False  # a failed write (full disk) keeps the partial file for --resume
        if self.partial.exists():
            if not resume:
                raise OutputError(
                    f"an interrupted run left {self.partial}: add --resume to continue it, "
                    "or --overwrite to start again"
                )
            self.file = self._reopen(signature, stimuli, specs)
        if self.file is None:
            self.file = self._create(kind, stimuli, specs, signature)

    def _create(self, kind, stimuli, specs, signature) -> h5py.File:
        try:  # HDF5 can crash when the disk fills while it lays out a file: check the room first
            check_room(self.partial.parent, self._file_bytes(stimuli, specs))
        except OSError as error:
            raise _output_error(self.partial, error) from None
        file = None
        try:
            file = h5py.File(self.partial, "w", rdcc_nbytes=0)  # no chunk cache: see `write`
            self._layout(file, kind, stimuli, specs, signature)
            reserve_space(self.partial)
        except BaseException as error:  # a half-made file holds nothing to resume: remove it
            if file is not None:
                with contextlib.suppress(Exception):
                    file.close()
            self.partial.unlink(missing_ok=True)
            if write_failure(error):
                raise _output_error(self.partial, error) from None
            raise
        return file

    def _file_bytes(self, stimuli, specs) -> int:
        """About the size of the file `_layout` makes: the datasets' bytes, the ids, and
        room for HDF5's metadata (a chunk index entry per chunk)."""
        size, chunks = sum(len(str(s).encode()) + 16 for s in stimuli), 0
        for spec in specs:
            row_bytes = int(np.prod(spec.shape, dtype=np.int64)) * np.dtype(spec.dtype).itemsize
            size += self.n * row_bytes
            chunks += -(-self.n // _chunk_rows(row_bytes, self.batch_rows, self.n)) if self.n else 0
        return size + _METADATA_ROOM + 64 * chunks

    def _layout(self, file: h5py.File, kind, stimuli, specs, signature) -> None:
        """The attributes, the stimuli, every dataset (allocated in full) and the counter."""
        file.attrs["kind"] = kind
        file.attrs["signature"] = signature
        file.create_dataset("stimuli", data=np.array(list(stimuli), dtype=h5py.string_dtype()))
        for spec in specs:
            folder, _, name = spec.path.rpartition("/")
            if folder and folder not in file:
                file.create_group(folder, track_order=True)
            group = file[folder] if folder else file
            row_bytes = int(np.prod(spec.shape, dtype=np.int64)) * np.dtype(spec.dtype).itemsize
            rows = _chunk_rows(row_bytes, self.batch_rows, self.n)
            dataset = group.create_dataset(
                name, shape=(self.n, *spec.shape), dtype=spec.dtype, chunks=(rows, *spec.shape),
                dcpl=_early(), fill_time="never",
            )
            for key, value in spec.attrs.items():
                dataset.attrs[key] = value
        counter = file.create_dataset(_ROWS_DONE, shape=(), dtype="i8", dcpl=_early())
        counter[()] = 0
        file.flush()

    def _reopen(self, signature: str, stimuli: Sequence[str], specs: Sequence[DatasetSpec]) -> h5py.File | None:
        file = None
        try:
            file = h5py.File(self.partial, "r+", rdcc_nbytes=0)
            rows_done = int(file[_ROWS_DONE][()])
            same = file.attrs.get("signature") == signature and [
                s.decode() if isinstance(s, bytes) else s for s in file["stimuli"][()]
            ] == list(stimuli)
            damaged = same and not (0 <= rows_done <= self.n and all(  # every dataset, as _create makes it
                spec.path in file and file[spec.path].shape == (self.n, *spec.shape)
                and file[spec.path].dtype == np.dtype(spec.dtype) for spec in specs
            ))
        except (OSError, KeyError, ValueError, RuntimeError) as error:
            if file is None and "unable to lock file" in str(error).lower():
                raise OutputError(
                    f"{self.partial} is open in another process (a second run on the same output?); "
                    "wait for it or stop it"
                ) from None
            damaged = True
        if damaged:
            # A partial file damaged by the interruption holds nothing to trust: start over.
            if file is not None:
                with contextlib.suppress(Exception):
                    file.close()
            self.partial.unlink(missing_ok=True)
            return None
        if not same:
            file.close()
            raise OutputError(
                f"{self.partial} was written with other options or stimuli; "
                "rerun with the same options, or use --overwrite to start again"
            )
        try:
            reserve_space(self.partial)
        except OSError as error:  # the rows written so far stay for a later --resume
            with contextlib.suppress(Exception):
                file.close()
            raise _output_error(self.partial, error, "; then rerun with --resume to continue") from None
        self.rows_done = rows_done
        return file

    def write(self, start: int, rows: Mapping[str, np.ndarray]) -> None:
        """Write rows `start:start + len` of every dataset (by path), then record them as done.

        The rows are flushed before the counter is written (and flushed), so the counter
        never counts rows that are not in the file, whenever the process dies. A failed
        write (a full disk) raises `OutputError` and keeps the partial file for --resume.
        The file is opened without a chunk cache (whole chunks are written, see
        `_chunk_rows`): with one, HDF5 writes cached chunks when a dataset object is
        released, where a failure is only printed, and the counter would count rows that
        never reached the disk.
        """
        stop = start
        try:
            for name, values in rows.items():
                dataset = self.file[name]
                stop = start + len(values)
                dataset[start:stop] = values.astype(dataset.dtype, copy=False)
            self.file.flush()
            self.file[_ROWS_DONE][()] = stop
            self.file.flush()
        except Exception as error:
            if not write_failure(error):
                raise
            self.write_failed = True
            raise _output_error(self.partial, error, "; then rerun with --resume to continue") from None
        self.rows_done = stop

    def finish(self, attrs: Mapping[str, Any]) -> Path:
        """Write the root attributes, close and rename the partial file to the output.
        A `provenance` attribute (`shared.provenance`) is added unless `attrs` has one.

        The counter goes last, after the attributes are on disk: a run that dies before
        the rename leaves a partial file that --resume finishes (or, damaged, starts
        again); a failed write keeps it for --resume."""
        if "provenance" not in attrs:
            from .provenance import provenance_attr

            attrs = {**attrs, "provenance": provenance_attr()}
        try:
            check_room(self.partial.parent, _METADATA_ROOM, self.partial.stat().st_size)  # for the attributes
            for key, value in attrs.items():
                self.file.attrs[key] = value
            self.file.flush()
            del self.file[_ROWS_DONE]
            self.file.close()
            self.file = None
            os.replace(self.partial, self.path)
        except Exception as error:
            if not write_failure(error):
                raise
            self.write_failed = True
            raise _output_error(self.path, error, "; then rerun with --resume to finish it") from None
        return self.path

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        """Bad input leaves nothing behind; an interruption, a crash or a failed write
        (a full disk) keeps the partial file for --resume; after `finish` there is
        nothing left to do."""
        self.close(discard=kind is not None and issubclass(kind, ToolboxError) and not self.write_failed)

    def close(self, discard: bool) -> None:
        """Close the file; remove the partial file when `discard` (it cannot be resumed)."""
        if self.file is not None:
            with contextlib.suppress(Exception):
                self.file.close()
            self.file = None
        if discard:
            self.partial.unlink(missing_ok=True)


_METADATA_ROOM = 2**20  # bytes of room for HDF5 metadata (attributes, headers) beyond the raw data


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


def _chunk_rows(row_bytes: int, batch_rows: int, n: int) -> int:
    """The largest divisor of `batch_rows` whose chunk stays within about 4 MiB."""
    target = max(1, _CHUNK_BYTES // max(row_bytes, 1))
    rows = max(d for d in range(1, batch_rows + 1) if batch_rows % d == 0 and d <= target)
    return min(rows, n)


def _early():
    """Dataset creation properties: all space allocated at creation (see RowWriter)."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    return dcpl


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> Path:
    """Write rows as a CSV file atomically (floats with full precision, NaN as empty)."""
    import csv

    def cell(value: Any) -> Any:
        if isinstance(value, float) and not np.isfinite(value):
            return ""
        return value

    with atomic_output(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="raise")
            writer.writeheader()
            for row in rows:
                writer.writerow({key: cell(row.get(key, "")) for key in columns})
    return Path(path)


def json_attr(value: Any) -> str:
    """A dictionary or list stored as a JSON string attribute."""
    return json.dumps(value, sort_keys=True, default=str)


def open_h5(path: str | Path, kind: str) -> h5py.File:
    """Open one of our HDF5 files for reading and check it holds `kind` of data.

    Raises `InputError` when the file is missing, is not HDF5, holds another kind, or is
    the unfinished file of an interrupted run (`<out>.partial`, see `RowWriter`).
    """
    path = Path(path)
    writer = _WRITERS.get(kind, "the toolbox")
    if path.is_dir():
        raise InputError(f"{path} is a folder; give the {kind} file written by {writer}")
    if not path.is_file():
        raise InputError(f"file {path} does not exist; give the {kind} file written by {writer}")
    if not os.access(path, os.R_OK):
        raise InputError(f"cannot read {path}: permission denied; make it readable (chmod u+r)")
    if path.name.endswith(PARTIAL_SUFFIX):
        raise InputError(f"{path} is the unfinished file of an interrupted run; rerun its command with --resume "
                         "to finish it, then use the finished file")
    try:
        file = h5py.File(path, "r")
    except OSError:
        raise InputError(f"{path} is not a readable HDF5 file (truncated or of another format); "
                         f"give the {kind} file written by {writer}") from None
    found = file.attrs.get("kind")
    if found != kind:
        file.close()
        raise InputError(f"{path} holds {found or 'unknown data'}, expected {kind}; give the file written by {writer}")
    unfinished = unfinished_message(path, file)
    if unfinished:
        file.close()
        raise InputError(unfinished)
    return file


def unfinished_message(path: Path, file: h5py.File) -> str | None:
    """Why an open row file cannot be used as a result: it is the partial file of an
    interrupted run (it still has its row counter); None for a finished file."""
    if _ROWS_DONE not in file:
        return None
    try:
        done, total = int(file[_ROWS_DONE][()]), len(file["stimuli"])
    except (KeyError, OSError, RuntimeError, TypeError, ValueError):
        done, total = "?", "?"
    return (f"{path} is the unfinished file of an interrupted run ({done} of {total} rows); "
            "rerun its command with --resume to finish it, then use the finished file")


def read_stimuli(file: h5py.File) -> list[str]:
    """The `/stimuli` ids of an open file as Python strings; `InputError` when the file
    has none or lists an id twice."""
    if not isinstance(file.get("stimuli"), h5py.Dataset) or file["stimuli"].ndim != 1:
        raise InputError(f"{file.filename} has no /stimuli list of ids; give a file written by the toolbox")
    ids = [s.decode() if isinstance(s, bytes) else str(s) for s in file["stimuli"][()]]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        twice = next(s for s in ids if s in seen or seen.add(s))
        raise InputError(f"{file.filename} lists stimulus id {twice!r} twice in /stimuli; ids must be unique: "
                         "rewrite the file from stimuli with unique names")
    return ids


def read_activations(path: str | Path, layers: Sequence[str] | None = None) -> tuple[list[str], dict[str, np.ndarray]]:
    """Read an activations file into memory: (stimulus ids, {layer: array (n, ...)})."""
    with open_h5(path, ACTIVATIONS_KIND) as file:
        names = list(file["layers"].keys()) if layers is None else list(layers)
        missing = [name for name in names if name not in file["layers"]]
        if missing:
            raise InputError(f"{path} has no layer {missing[0]!r}; it holds {', '.join(file['layers'])}")
        return read_stimuli(file), {name: file["layers"][name][()] for name in names}
