"""RDM files of the neighbouring tools: Net2Brain's .npz, MATLAB .mat and rsatoolbox's HDF5 files.

* Net2Brain's .npz: the first array, (subjects, n, n) or (subjects, time, n, n), as
  Net2Brain reads it; a warning names the arrays a file holds beside it.
* MATLAB .mat: the only variable that holds RDMs: a numeric array (subjects, n, n),
  (subjects, time, n, n) or condensed vectors (subjects, n(n-1)/2); or a struct array
  with a field `RDM` (the layout of the MATLAB RSA toolbox). A 1-D struct array is one
  entry per subject; a 2-D one is read as subjects x sessions and the sessions are
  averaged. Model RDMs come as a struct array with fields `RDM` and `name`.

* rsatoolbox's HDF5 (`RDMs.save(..., file_type='hdf5')`): `dissimilarities` (rdms,
  n(n-1)/2) condensed upper triangles, `dissimilarity_measure`, and the groups
  `descriptors`, `rdm_descriptors` (names) and `pattern_descriptors` (stimulus ids),
  read by `rsatoolbox_rdms` and written by `write_rsatoolbox`. Its pickle format
  (`file_type='pkl'`) is refused (`refuse_pickle`): unpickling can run code.

A .mat file holding several variables that could be RDMs is refused rather than its
first one read: which one is meant cannot be known, and the first in a file's order is an
accident of how it was saved.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, listed, reason

__all__ = ["npz_rdms", "mat_rdms", "mat_struct_entries", "square_rdm", "load_mat", "RsatoolboxRDMs", "refuse_pickle",
           "is_rsatoolbox", "rsatoolbox_rdms", "write_rsatoolbox"]


def npz_rdms(path: Path) -> np.ndarray:
    import zipfile

    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise InputError(f"{path} is not an .npz archive; save the RDMs with numpy.savez")
        with data:
            if not data.files:
                raise InputError(f"{path} holds no arrays; save the RDMs with numpy.savez")
            name, array = data.files[0], data[data.files[0]]
            if len(data.files) > 1:
                warnings.warn(f"{path} holds {len(data.files)} arrays: read the first, {name!r}, as Net2Brain does, and "
                              f"ignored {listed(data.files[1:])}", RuntimeWarning, stacklevel=2)
    except ValueError as error:  # pickled object arrays are refused by allow_pickle=False
        raise InputError(f"cannot read {path} without unpickling ({error}); save plain numeric arrays") from None
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise InputError(f"cannot read {path}: not a valid .npz file ({error}); save the RDMs with numpy.savez") from None
    if array.dtype.kind not in "fiu":
        raise InputError(f"{path}: the array {name!r} holds {array.dtype}, not numbers; save numeric RDMs")
    return array.astype(float)


def load_mat(path: Path, *, structs: bool = True, what: str = "MATLAB file") -> dict:
    """The variables of a MATLAB file, `InputError` when it cannot be read.

    Parameters
    ----------
    path : path
    structs : bool, default True
        Struct arrays as objects with attributes and singleton axes squeezed (RDM
        structs); False: plain arrays as MATLAB stores them.
    """
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        content = loadmat(str(path), squeeze_me=structs, struct_as_record=not structs)
    except (MatReadError, ValueError, TypeError, OSError, NotImplementedError) as error:
        # NotImplementedError: a MATLAB v7.3 file (HDF5 inside), which scipy does not read
        raise InputError(f"cannot read {what} {path}: {reason(error)}") from None
    return {k: v for k, v in content.items() if not k.startswith("__")}


def mat_struct_entries(path: Path) -> list:
    """The entries of the only struct (array) with a field `RDM`; [] when there is none."""
    found = {}
    for name, value in load_mat(path).items():
        if isinstance(value, np.ndarray) and value.dtype == object:
            entries = [e for e in value.ravel() if hasattr(e, "RDM")]
            if entries:
                found[name] = entries
        elif hasattr(value, "RDM"):
            found[name] = [value]
    return _only(path, found, "struct arrays with a field RDM") if found else []


def mat_rdms(path: Path) -> np.ndarray:
    """The RDMs of the only variable that holds any (the module docstring)."""
    found = {name: rdms for name, value in load_mat(path).items() if (rdms := _variable_rdms(value, path)) is not None}
    if not found:
        raise InputError(f"{path} holds no RDMs (a numeric (subjects, n, n) array or a struct array with a field RDM)")
    return _only(path, found, "variables that could be RDMs")


def _variable_rdms(value, path: Path) -> np.ndarray | None:
    if isinstance(value, np.ndarray) and value.dtype == object and value.size and hasattr(value.flat[0], "RDM"):
        rdms = np.array([[square_rdm(np.asarray(e.RDM, dtype=float), path) for e in np.atleast_1d(row)]
                         for row in (value if value.ndim == 2 else value[:, None])])
        return rdms.mean(axis=1)  # subjects x sessions: average the sessions
    if hasattr(value, "RDM"):
        return square_rdm(np.asarray(value.RDM, dtype=float), path)[None]
    if isinstance(value, np.ndarray) and value.dtype.kind in "fiu" and value.ndim >= 2:
        array = value.astype(float)
        if array.shape[-1] == array.shape[-2]:
            return array if array.ndim > 2 else array[None]
        if _is_condensed(array.shape[-1]):
            return np.stack([square_rdm(v, path) for v in array.reshape(-1, array.shape[-1])]).reshape(
                *array.shape[:-1], *square_rdm(array.reshape(-1, array.shape[-1])[0], path).shape
            )
    return None


def _only(path: Path, found: dict, what: str):
    """The single value of `found`; `InputError` naming them all when there are several."""
    if len(found) > 1:
        raise InputError(f"{path} holds {len(found)} {what} ({listed(found)}); keep only one in the file")
    return next(iter(found.values()))


def _is_condensed(length: int) -> bool:
    n = int(round((1 + np.sqrt(1 + 8 * length)) / 2))
    return n * (n - 1) // 2 == length


def square_rdm(matrix: np.ndarray, path: Path) -> np.ndarray:
    """A square RDM from a square matrix or a condensed upper triangle."""
    matrix = np.asarray(matrix, dtype=float)
    if matrix.ndim == 1:
        if not _is_condensed(matrix.size):
            raise InputError(f"{path}: a vector of {matrix.size} values is no condensed RDM")
        from scipy.spatial.distance import squareform

        return squareform(matrix, checks=False)
    return matrix


# ------------------------------------------------------------------ rsatoolbox

RSATOOLBOX_NAME_KEYS = ("name", "roi", "layer", "model")
RSATOOLBOX_STIMULUS_KEYS = ("stimulus", "stimuli", "image", "images", "conds", "condition", "conditions")
_SAVE_HDF5 = "save it with RDMs.save(path, file_type='hdf5')"


@dataclass(frozen=True)
class RsatoolboxRDMs:
    """The RDMs of a file written by rsatoolbox's `RDMs.save(..., file_type='hdf5')`.

    Attributes
    ----------
    matrices : array (rdms, n, n)
        Square RDMs, from the condensed `dissimilarities` (upper triangle, row by row).
    names : list of str or None
        Per RDM, the first rdm descriptor of `RSATOOLBOX_NAME_KEYS` the file has.
    rdm_descriptors : dict of str to list
        Every rdm descriptor, one value per RDM.
    stimuli : list of str or None
        The pattern descriptor of `RSATOOLBOX_STIMULUS_KEYS` the file has first, else the
        first one other than `index` (in HDF5's alphabetical order); None when it only
        has `index`.
    measure : str or None
        `dissimilarity_measure`.
    name : str or None
        A file-wide descriptor `name` or `roi` (rsatoolbox's `descriptors`).
    """

    matrices: np.ndarray
    names: list[str] | None
    rdm_descriptors: dict[str, list]
    stimuli: list[str] | None
    measure: str | None
    name: str | None


def refuse_pickle(path: Path) -> None:
    """`InputError` when `path` starts with a pickle's magic bytes (protocol 2 to 5):
    rsatoolbox's `file_type='pkl'`, which can run code when it is read."""
    try:
        with open(path, "rb") as file:
            head = file.read(2)
    except OSError:
        return  # the reader of the file's format says why it cannot be read
    if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        raise InputError(f"{path} is a pickle (rsatoolbox's pkl format), which can run code when read; "
                         "save it with file_type='hdf5'")


def is_rsatoolbox(path: Path) -> bool:
    """Whether `path` is an HDF5 file of rsatoolbox's RDM layout (a root dataset
    `dissimilarities` and no `kind` attribute of ours)."""
    import h5py

    try:
        if not h5py.is_hdf5(path):
            return False
        with h5py.File(path, "r") as file:
            return "kind" not in file.attrs and isinstance(file.get("dissimilarities"), h5py.Dataset)
    except OSError:
        return False  # locked or damaged: our reader says so


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _descriptors(file, group: str, count: int, path: Path) -> dict[str, list]:
    """The descriptors under `group`, each a list of `count` values (rsatoolbox stores a
    list numpy cannot make an array of as a group with the keys 0, 1, ...)."""
    import h5py

    found = {}
    node = file.get(group)
    if not isinstance(node, h5py.Group):
        return found
    items = dict(node.items())
    items.update({key: node.attrs[key] for key in node.attrs})
    for key, value in items.items():
        if isinstance(value, h5py.Group):
            value = [value[str(i)][()] for i in range(len(value))]
        elif isinstance(value, h5py.Dataset):
            if value.shape is None:  # rsatoolbox's None
                continue
            value = value[()]
        values = [value] if np.ndim(value) == 0 else list(np.asarray(value).ravel())
        if len(values) != count:
            raise InputError(f"{path}: {group} {key!r} has {len(values)} values for {count}; "
                             f"{_SAVE_HDF5} from a complete RDMs object")
        found[key] = values
    return found


def rsatoolbox_rdms(path: Path) -> RsatoolboxRDMs:
    """Read a file of `RDMs.save(..., file_type='hdf5')` (`is_rsatoolbox`); `InputError`
    when its dissimilarities are no numeric (rdms, n(n-1)/2) vectors or its
    descriptors do not fit them."""
    import h5py

    with h5py.File(path, "r") as file:
        dataset = file["dissimilarities"]
        if dataset.dtype.kind not in "fiu" or dataset.ndim not in (1, 2):
            raise InputError(f"{path}: dissimilarities hold {dataset.dtype} of shape {dataset.shape}; expected numeric "
                             f"(rdms, pairs) vectors: {_SAVE_HDF5}")
        vectors = np.atleast_2d(dataset[()].astype(float))
        if not vectors.shape[0] or not _is_condensed(vectors.shape[1]):
            raise InputError(f"{path}: dissimilarities of shape {dataset.shape} are no condensed RDMs "
                             f"(n(n-1)/2 values each): {_SAVE_HDF5}")
        matrices = np.stack([square_rdm(v, path) for v in vectors])
        n = matrices.shape[-1]
        rdm_descriptors = _descriptors(file, "rdm_descriptors", len(matrices), path)
        patterns = _descriptors(file, "pattern_descriptors", n, path)
        descriptors = {key: file["descriptors"].attrs[key] for key in file["descriptors"].attrs} \
            if isinstance(file.get("descriptors"), h5py.Group) else {}
        measure = file.attrs.get("dissimilarity_measure")
    key = next((k for k in RSATOOLBOX_STIMULUS_KEYS if k in patterns), None) or \
        next((k for k in sorted(patterns) if k != "index"), None)
    stimuli = [_text(s) for s in patterns[key]] if key else None
    if stimuli is not None and len(set(stimuli)) != len(stimuli):
        seen: set[str] = set()
        twice = next(s for s in stimuli if s in seen or seen.add(s))
        raise InputError(f"{path}: pattern descriptor {key!r} lists stimulus id {twice!r} twice; ids must be unique")
    name_key = next((k for k in RSATOOLBOX_NAME_KEYS if k in rdm_descriptors), None)
    names = [_text(v) for v in rdm_descriptors[name_key]] if name_key else None
    name = next((_text(descriptors[k]) for k in ("name", "roi") if k in descriptors), None)
    return RsatoolboxRDMs(matrices, names, rdm_descriptors, stimuli,
                          _text(measure) if measure is not None else None, name)


def write_rsatoolbox(tmp: Path, stimuli: Sequence[str], rdms: Mapping[str, np.ndarray], *, metric: str,
                     attrs: Mapping) -> None:
    """Write RDMs in rsatoolbox's HDF5 layout (what `RDMs.save` writes), so that
    `rsatoolbox.rdm.load_rdm` reads them.

    Every (n, n) matrix is one RDM, its rdm descriptor `name` the layer or ROI; stacks
    (subjects, n, n) and (subjects, time, n, n) give one RDM per subject [and time], with
    the rdm descriptors `subject` [and `time`] (indices). The stimulus ids are the pattern
    descriptor `stimulus`; `metric` is `dissimilarity_measure`; `attrs` become root
    attributes (rsatoolbox ignores them).

    Parameters
    ----------
    tmp : path
        The file to write (the caller writes atomically).
    stimuli : sequence of str
    rdms : mapping of str to array
    metric : str
    attrs : mapping
    """
    import h5py
    from scipy.spatial.distance import squareform

    vectors, names, subjects, times = [], [], [], []
    timed = any(m.ndim == 4 for m in rdms.values())
    for name, stack in rdms.items():
        stack = np.asarray(stack, dtype=float)
        grid = stack.reshape(-1, stack.shape[1] if stack.ndim == 4 else 1, *stack.shape[-2:])  # subject, time
        for s in range(grid.shape[0]):
            for t in range(grid.shape[1]):
                vectors.append(squareform(grid[s, t], checks=False))
                names.append(name)
                subjects.append(s)
                times.append(t)
    with h5py.File(tmp, "w") as file:
        for key, value in attrs.items():
            file.attrs[key] = value
        file.attrs["dissimilarity_measure"] = metric
        file.create_dataset("dissimilarities", data=np.array(vectors))
        file.create_group("descriptors")
        group = file.create_group("rdm_descriptors")
        group["name"] = np.array([s.encode("utf-8") for s in names])
        group["index"] = np.arange(len(vectors))
        if any(m.ndim > 2 for m in rdms.values()):
            group["subject"] = np.array(subjects)
        if timed:
            group["time"] = np.array(times)
        patterns = file.create_group("pattern_descriptors")
        patterns["stimulus"] = np.array([s.encode("utf-8") for s in stimuli])
        patterns["index"] = np.arange(len(stimuli))
