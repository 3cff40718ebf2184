"""Our HDF5 files: their kinds, opening one for reading, its stimulus ids.

Every file the toolbox writes has a root attribute `kind`; `KINDS` names the core
function that writes each kind, for the hint of a file of the wrong kind. A file written
by hand without `kind` is read by its layout when only one documented layout fits
(`HAND_WRITTEN_LAYOUTS`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py

from ..errors import InputError
from .paths import what_is_there

__all__ = ["PARTIAL_SUFFIX", "ACTIVATIONS_KIND", "RDMS_KIND", "ATTRIBUTIONS_KIND", "EVALUATION_KIND",
           "SEARCHLIGHT_SHARD_KIND", "SEARCHLIGHT_SHARD_NAME", "ENCODE_SHARD_KIND", "ENCODE_SHARD_NAME", "KINDS",
           "HAND_WRITTEN_LAYOUTS", "json_attr", "check_name", "open_h5", "locked", "open_error", "unfinished_message", "read_stimuli"]

PARTIAL_SUFFIX = ".partial"
ROWS_DONE = "_rows_done"
ACTIVATIONS_KIND = "activations"
RDMS_KIND = "rdms"
ATTRIBUTIONS_KIND = "attributions"
EVALUATION_KIND = "evaluation"
SEARCHLIGHT_SHARD_KIND = "searchlight-shard"
SEARCHLIGHT_SHARD_NAME = "searchlight.h5"  # a searchlight's shards: OUT_DIR/searchlight.shard-I-of-N.h5
ENCODE_SHARD_KIND = "encode-shard"
ENCODE_SHARD_NAME = "encode.h5"  # an encoding run's shards: OUT_DIR/encode.shard-I-of-N.h5
# the core function that writes each kind of file
KINDS = {ACTIVATIONS_KIND: "extract_to_file", RDMS_KIND: "rdms_to_file", ATTRIBUTIONS_KIND: "explain_to_file",
         EVALUATION_KIND: "evaluate_to_file", SEARCHLIGHT_SHARD_KIND: "searchlight_to_file",
         ENCODE_SHARD_KIND: "encode_to_file"}


def json_attr(value: Any) -> str:
    """A dictionary or list stored as a JSON string attribute."""
    return json.dumps(value, sort_keys=True, default=str)


def open_h5(path: str | Path, kind: str) -> h5py.File:
    """Open one of our HDF5 files for reading and check it holds `kind` of data.

    Raises `InputError` when the file is missing, is not HDF5, holds another kind, or is
    the unfinished file of an interrupted run (`<out>.partial`, see `RowWriter`).

    Parameters
    ----------
    path : path
        The file to read.
    kind : str
        The root attribute `kind` it must have (`ACTIVATIONS_KIND`, `RDMS_KIND`, ...); the
        messages name the core function that writes it (`KINDS`).

    Returns
    -------
    h5py.File
        Open read-only; the caller closes it (use it in a `with` block).

    Raises
    ------
    InputError
        `path` is a folder, missing or not readable, not HDF5, of another kind, or the
        unfinished file of an interrupted run (by its name, or by its row counter).
    """
    path = Path(path)
    writer = f"`{KINDS[kind]}`" if kind in KINDS else "the toolbox"
    if path.is_dir():
        raise InputError(f"{path} is a folder; give the {kind} file written by {writer}")
    if not path.is_file():
        raise InputError(f"file {path} {what_is_there(path)}; give the {kind} file written by {writer}")
    if not os.access(path, os.R_OK):
        raise InputError(f"cannot read {path}: permission denied; make it readable (chmod u+r)")
    if path.name.endswith(PARTIAL_SUFFIX):
        raise InputError(f"{path} is the unfinished file of an interrupted run; rerun its command with "
                         "`resume=True` to finish it, then use the finished file")
    try:
        file = h5py.File(path, "r")
    except OSError as error:
        raise open_error(path, error, f"give the {kind} file written by {writer}") from None
    found = file.attrs.get("kind")
    if found is None:
        found = _inferred_kind(file, path, kind, writer)
    if found != kind:
        file.close()
        raise InputError(f"{path} holds {found}, expected {kind}; give the file written by {writer}")
    unfinished = unfinished_message(path, file)
    if unfinished:
        file.close()
        raise InputError(unfinished)
    return file


# The layouts README's "File formats" documents for files written by hand, by the node
# each must have beside `/stimuli`; a file without the attribute `kind` is read as the
# one kind whose layout it has.
HAND_WRITTEN_LAYOUTS = {ACTIVATIONS_KIND: ("layers", h5py.Group), RDMS_KIND: ("rdms", h5py.Group),
                        ATTRIBUTIONS_KIND: ("maps", h5py.Dataset)}


def _inferred_kind(file: h5py.File, path: Path, kind: str, writer: str) -> str:
    """The kind of a file without the root attribute `kind` from its layout
    (`HAND_WRITTEN_LAYOUTS`); `InputError` (the file closed) when it has none of them,
    or several, naming the attribute to set."""
    has_stimuli = isinstance(file.get("stimuli"), h5py.Dataset)
    matches = [k for k, (name, node) in HAND_WRITTEN_LAYOUTS.items() if has_stimuli and isinstance(file.get(name), node)]
    if len(matches) == 1:
        return matches[0]
    file.close()
    fix = (f"set the root attribute kind={kind!r} (h5py: f.attrs['kind'] = {kind!r})"
           if kind in HAND_WRITTEN_LAYOUTS else f"give the file written by {writer}")
    if matches:
        raise InputError(f"{path} has the layouts of {' and '.join(matches)} and no root attribute kind; {fix}")
    raise InputError(f"{path} holds unknown data, expected {kind}; {fix}" +
                     (f", or give the file written by {writer}" if kind in HAND_WRITTEN_LAYOUTS else ""))


def locked(error: OSError) -> bool:
    """Whether h5py failed to open a file because another program holds its HDF5 lock."""
    return isinstance(error, BlockingIOError) or "unable to lock file" in str(error)


def open_error(path: Path, error: OSError, hint: str) -> InputError:
    """Why h5py could not open `path` for reading: another program has it open for
    writing (HDF5 locks a file while it writes it), or it is no readable HDF5 file
    (then `hint` says what to give instead)."""
    if locked(error):
        return InputError(f"{path} is open for writing in another program (it holds the file's HDF5 lock); wait until "
                          "that program has closed it, then rerun")
    return InputError(f"{path} is not a readable HDF5 file (truncated or of another format); {hint}")


def unfinished_message(path: Path, file: h5py.File) -> str | None:
    """Why an open row file cannot be used as a result: it is the partial file of an
    interrupted run (it still has its row counter); None for a finished file."""
    if ROWS_DONE not in file:
        return None
    try:
        done, total = int(file[ROWS_DONE][()]), len(file["stimuli"])
    except (KeyError, OSError, RuntimeError, TypeError, ValueError):
        done, total = "?", "?"
    return (f"{path} is the unfinished file of an interrupted run ({done} of {total} rows); "
            "rerun its command with `resume=True` to finish it, then use the finished file")


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


def check_name(name: str, what: str) -> str:
    """A name that becomes an HDF5 dataset and a file name (a layer, an ROI, a subject):
    not empty, not `.` or `..`, without `/`, a NUL or a character that is not valid
    UTF-8; `InputError` otherwise, saying what the name is of."""
    problem = None
    if not name or name in (".", ".."):
        problem = "is empty or a dot"
    elif "/" in name or "\0" in name:
        problem = "holds a / or a NUL character"
    else:
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            problem = "is not valid UTF-8 text"
    if problem:
        raise InputError(f"the name {name!r} of {what} {problem}; names become datasets and file names: rename it")
    return name
