"""Resumable row files: HDF5 datasets with one row per stimulus, filled batch by batch.

Activation, attribution and evaluation files grow as `<out>.partial`, whose datasets are
allocated in full when it is created; a counter records the rows written. A run that is
killed leaves a readable partial file that `resume=True` continues; the finished file is
renamed to its final name.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import OutputError, ToolboxError
from .atomic import METADATA_ROOM, check_room, make_output_folder, output_error, reserve_space, write_failure
from .hdf5 import PARTIAL_SUFFIX, ROWS_DONE, locked
from .locks import lock_output

__all__ = ["DatasetSpec", "RowWriter", "check_partial"]

# Chunks of about this many bytes: a few rows of a large layer, many rows of a small one.
_CHUNK_BYTES = 4 * 2**20


def check_partial(path: str | Path, *, resume: bool, overwrite: bool = False) -> None:
    """Refuse to start a row file over the `.partial` an interrupted run left, unless the
    run resumes it or starts again (`overwrite`); checked before the run's other outputs,
    so that the message says what happened.

    Parameters
    ----------
    path : path
        The final output; its partial file is `path` + ".partial".
    resume, overwrite : bool

    Raises
    ------
    OutputError
        Another run holds `path` (`net2brain_fovex.io.locks`), or an interrupted run left
        its partial file and the run neither resumes nor overwrites.
    """
    lock_output(path)  # a partial file another run is writing now is not an interrupted run's
    partial = Path(str(path) + PARTIAL_SUFFIX)
    if partial.exists() and not (resume or overwrite):
        raise OutputError(f"an interrupted run left {partial}: add `resume=True` to continue it, "
                          "or `overwrite=True` to start again")


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
        self.write_failed = False  # a failed write (full disk) keeps the partial file to resume
        if self.partial.exists():
            check_partial(self.path, resume=resume)
            self.file = self._reopen(signature, stimuli, specs)
        if self.file is None:
            self.file = self._create(kind, stimuli, specs, signature)

    def _create(self, kind, stimuli, specs, signature) -> h5py.File:
        make_output_folder(self.partial)  # the first write of the run: its folder is made now
        try:  # HDF5 can crash when the disk fills while it lays out a file: check the room first
            check_room(self.partial.parent, self._file_bytes(stimuli, specs))
        except OSError as error:
            raise output_error(self.partial, error) from None
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
                raise output_error(self.partial, error) from None
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
        return size + METADATA_ROOM + 64 * chunks

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
            dataset = group.create_dataset(  # no rows (an empty shard): nothing to chunk
                name, shape=(self.n, *spec.shape), dtype=spec.dtype, chunks=(rows, *spec.shape) if self.n else None,
                dcpl=_early(), fill_time="never",
            )
            for key, value in spec.attrs.items():
                dataset.attrs[key] = value
        counter = file.create_dataset(ROWS_DONE, shape=(), dtype="i8", dcpl=_early())
        counter[()] = 0
        file.flush()

    def _reopen(self, signature: str, stimuli: Sequence[str], specs: Sequence[DatasetSpec]) -> h5py.File | None:
        file = None
        try:
            file = h5py.File(self.partial, "r+", rdcc_nbytes=0)
            rows_done = int(file[ROWS_DONE][()])
            same = file.attrs.get("signature") == signature and [
                s.decode() if isinstance(s, bytes) else s for s in file["stimuli"][()]
            ] == list(stimuli)
            damaged = same and not (0 <= rows_done <= self.n and all(  # every dataset, as _create makes it
                spec.path in file and file[spec.path].shape == (self.n, *spec.shape)
                and file[spec.path].dtype == np.dtype(spec.dtype) for spec in specs
            ))
        except (OSError, KeyError, ValueError, RuntimeError) as error:
            if file is None and isinstance(error, OSError) and locked(error):  # a program besides our runs
                raise OutputError(f"{self.partial} is open in another program (it holds the file's HDF5 lock); wait "
                                  "for it or stop it") from None
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
                "rerun with the same options, or add `overwrite=True` to start again"
            )
        try:
            reserve_space(self.partial)
        except OSError as error:  # the rows written so far stay for a later resume
            with contextlib.suppress(Exception):
                file.close()
            raise output_error(self.partial, error, "; then rerun with `resume=True` to continue") from None
        self.rows_done = rows_done
        return file

    def write(self, start: int, rows: Mapping[str, np.ndarray]) -> None:
        """Write rows `start:start + len` of every dataset (by path), then record them as done.

        The rows are flushed before the counter is written (and flushed), so the counter
        never counts rows that are not in the file, whenever the process dies. A failed
        write (a full disk) raises `OutputError` and keeps the partial file to resume.
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
            self.file[ROWS_DONE][()] = stop
            self.file.flush()
        except Exception as error:
            if not write_failure(error):
                raise
            self.write_failed = True
            raise output_error(self.partial, error, "; then rerun with `resume=True` to continue") from None
        self.rows_done = stop

    def finish(self, attrs: Mapping[str, Any]) -> Path:
        """Write the root attributes, close and rename the partial file to the output.
        A `provenance` attribute (`net2brain_fovex.io.provenance`) is added unless `attrs` has one.

        The counter goes last, after the attributes are on disk: a run that dies before
        the rename leaves a partial file that a resumed run finishes (or, damaged, starts
        again); a failed write keeps it to resume."""
        if "provenance" not in attrs:
            from .provenance import provenance_attr

            attrs = {**attrs, "provenance": provenance_attr()}
        try:
            check_room(self.partial.parent, METADATA_ROOM, self.partial.stat().st_size)  # for the attributes
            for key, value in attrs.items():
                self.file.attrs[key] = value
            self.file.flush()
            del self.file[ROWS_DONE]
            self.file.close()
            self.file = None
            os.replace(self.partial, self.path)
        except Exception as error:
            if not write_failure(error):
                raise
            self.write_failed = True
            raise output_error(self.path, error, "; then rerun with `resume=True` to finish it") from None
        return self.path

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        """Bad input leaves nothing behind; an interruption, a crash or a failed write
        (a full disk) keeps the partial file to resume; after `finish` there is
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

