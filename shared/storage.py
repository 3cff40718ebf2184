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
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix="".join(path.suffixes[-2:]) or ".tmp", dir=path.parent)
    os.close(handle)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's private 0600 would stay on the output
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise _output_error(path, error) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_output_folder(path: Path) -> None:
    """Raise `OutputError` unless the folder of `path` exists and is writable."""
    folder = path.parent
    if not folder.is_dir():
        raise OutputError(f"output folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {folder} is not writable; choose another --out")


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


def _output_error(path: Path, error: OSError) -> OutputError:
    if error.errno == errno.ENOSPC:
        return OutputError(f"no space left on the device while writing {path}; free some space")
    return OutputError(f"cannot write {path}: {error.strerror or error}")


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
        if self.partial.exists():
            if not resume:
                raise OutputError(
                    f"an interrupted run left {self.partial}: add --resume to continue it, "
                    "or --overwrite to start again"
                )
            self.file = self._reopen(signature, stimuli)
        if self.file is None:
            self.file = self._create(kind, stimuli, specs, signature)

    def _create(self, kind, stimuli, specs, signature) -> h5py.File:
        try:
            file = h5py.File(self.partial, "w")
        except OSError as error:
            raise _output_error(self.partial, error) from None
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
        return file

    def _reopen(self, signature: str, stimuli: Sequence[str]) -> h5py.File | None:
        try:
            file = h5py.File(self.partial, "r+")
            rows_done = int(file[_ROWS_DONE][()])
            same = file.attrs.get("signature") == signature and [
                s.decode() if isinstance(s, bytes) else s for s in file["stimuli"][()]
            ] == list(stimuli)
        except (OSError, KeyError, ValueError) as error:
            if "unable to lock file" in str(error).lower():
                raise OutputError(
                    f"{self.partial} is open in another process (a second run on the same output?); "
                    "wait for it or stop it"
                ) from None
            # A partial file damaged by the interruption holds nothing to trust: start over.
            self.partial.unlink(missing_ok=True)
            return None
        if not same:
            file.close()
            raise OutputError(
                f"{self.partial} was written with other options or stimuli; "
                "rerun with the same options, or use --overwrite to start again"
            )
        self.rows_done = rows_done
        return file

    def write(self, start: int, rows: Mapping[str, np.ndarray]) -> None:
        """Write rows `start:start + len` of every dataset (by path), then record them as done."""
        stop = start
        try:
            for name, values in rows.items():
                dataset = self.file[name]
                stop = start + len(values)
                dataset[start:stop] = values.astype(dataset.dtype, copy=False)
            self.file[_ROWS_DONE][()] = stop
            self.file.flush()
        except OSError as error:
            raise _output_error(self.partial, error) from None
        self.rows_done = stop

    def finish(self, attrs: Mapping[str, Any]) -> Path:
        """Write the root attributes, close and rename the partial file to the output.
        A `provenance` attribute (`shared.provenance`) is added unless `attrs` has one."""
        if "provenance" not in attrs:
            from .provenance import provenance_attr

            attrs = {**attrs, "provenance": provenance_attr()}
        try:
            del self.file[_ROWS_DONE]
            for key, value in attrs.items():
                self.file.attrs[key] = value
            self.file.close()
            self.file = None
            os.replace(self.partial, self.path)
        except OSError as error:
            raise _output_error(self.path, error) from None
        return self.path

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        """Bad input leaves nothing behind; an interruption (or a crash) keeps the
        partial file for --resume; after `finish` there is nothing left to do."""
        self.close(discard=kind is not None and issubclass(kind, ToolboxError))

    def close(self, discard: bool) -> None:
        """Close the file; remove the partial file when `discard` (it cannot be resumed)."""
        if self.file is not None:
            with contextlib.suppress(Exception):
                self.file.close()
            self.file = None
        if discard:
            self.partial.unlink(missing_ok=True)


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

    Raises `InputError` when the file is missing, is not HDF5, or holds another kind.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"file {path} does not exist")
    try:
        file = h5py.File(path, "r")
    except OSError:
        raise InputError(f"{path} is not a readable HDF5 file (truncated or of another format)") from None
    found = file.attrs.get("kind")
    if found != kind:
        file.close()
        raise InputError(f"{path} holds {found or 'unknown data'}, expected {kind}")
    return file


def read_stimuli(file: h5py.File) -> list[str]:
    """The `/stimuli` ids of an open file as Python strings."""
    return [s.decode() if isinstance(s, bytes) else str(s) for s in file["stimuli"][()]]


def read_activations(path: str | Path, layers: Sequence[str] | None = None) -> tuple[list[str], dict[str, np.ndarray]]:
    """Read an activations file into memory: (stimulus ids, {layer: array (n, ...)})."""
    with open_h5(path, ACTIVATIONS_KIND) as file:
        names = list(file["layers"].keys()) if layers is None else list(layers)
        missing = [name for name in names if name not in file["layers"]]
        if missing:
            raise InputError(f"{path} has no layer {missing[0]!r}; it holds {', '.join(file['layers'])}")
        return read_stimuli(file), {name: file["layers"][name][()] for name in names}
