"""RDM files of the neighbouring tools: Net2Brain's .npz and MATLAB .mat files.

* Net2Brain's .npz: the first array, (subjects, n, n) or (subjects, time, n, n), as
  Net2Brain reads it; a warning names the arrays a file holds beside it.
* MATLAB .mat: the only variable that holds RDMs: a numeric array (subjects, n, n),
  (subjects, time, n, n) or condensed vectors (subjects, n(n-1)/2); or a struct array
  with a field `RDM` (the layout of the MATLAB RSA toolbox). A 1-D struct array is one
  entry per subject; a 2-D one is read as subjects x sessions and the sessions are
  averaged. Model RDMs come as a struct array with fields `RDM` and `name`.

A .mat file holding several variables that could be RDMs is refused rather than its
first one read: which one is meant cannot be known, and the first in a file's order is an
accident of how it was saved.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import InputError, listed, reason

__all__ = ["npz_rdms", "mat_rdms", "mat_struct_entries", "square_rdm", "load_mat"]


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
