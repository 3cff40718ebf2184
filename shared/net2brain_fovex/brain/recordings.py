"""Brain recordings as stimulus-by-feature patterns, for brain RDMs.

* fMRI: a 4D NIfTI per subject (one volume per stimulus, in stimulus order) and ROI
  masks (3D NIfTI, inside where finite and non-zero, same grid and affine). Voxels with a non-finite
  value for any stimulus are left out of the ROI (logged).
* Any recording: an array file per subject of responses (stimuli x channels), or
  (stimuli x channels x time) for MEG / EEG, which gives one RDM per time point:
  `.npy`; `.npz` (the array `key`, or the only array); `.mat` (the variable `key`, or
  the only numeric array of 2 or 3 dimensions); `.h5` / `.hdf5` (the dataset `key`, or
  the only dataset). Without `key`, a file with several candidates is refused, naming
  them, rather than one picked.
"""
from __future__ import annotations

import logging
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError, listed, reason
from ..io.hdf5 import locked, open_error
from ..io.paths import what_is_there
from .nifti import check_dimensions, check_same_grid, load_nifti, mask_voxels, nifti_header, roi_name
from .parameters import RDMParameters

__all__ = ["check_betas", "roi_patterns", "load_responses", "fmri_rdms", "response_rdms", "RESPONSE_SUFFIXES"]

log = logging.getLogger(__name__)
RESPONSE_SUFFIXES = (".npy", ".npz", ".mat", ".h5", ".hdf5")


def check_betas(betas: list[Path], masks: list[Path]) -> int:
    """Check every subject's 4D volume and every ROI mask from their headers, before any
    work (one volume per stimulus, the same number in every subject, masks on their
    grid), and return the number of stimuli. Damaged data show when they are decoded."""
    if not masks:
        raise InputError("`betas` needs at least one `mask` (a 3D NIfTI ROI mask)")
    names = [roi_name(Path(m)) for m in masks]
    if len(set(names)) != len(names):
        raise InputError("two `mask` files have the same name; ROIs are named after their mask files: rename one")
    mask_images = [(Path(m), nifti_header(m, "mask")) for m in masks]
    first = None
    for path in map(Path, betas):
        image = nifti_header(path, "response volume")
        check_dimensions(image, 4, f"response volume {path}")
        if first is not None and image.shape[3] != first[1].shape[3]:
            raise InputError(f"{path} holds {image.shape[3]} volumes, {first[0]} {first[1].shape[3]}; every subject "
                             "needs one volume per stimulus")
        first = first or (path, image)
        for mask_path, mask_image in mask_images:
            check_dimensions(mask_image, 3, f"mask {mask_path}")
            check_same_grid(mask_image, image, what=f"mask {mask_path}", reference_what=f"the volumes in {path}")
    if first is None:
        raise InputError("give at least one `betas` volume")
    return int(first[1].shape[3])


def roi_patterns(betas_path: Path, mask_paths: list[Path]) -> dict[str, np.ndarray]:
    """{roi: patterns (stimuli, voxels)} of one subject's 4D response volume."""
    betas = load_nifti(betas_path, "response volume")
    check_dimensions(betas, 4, f"response volume {betas_path}")
    data = np.moveaxis(np.asarray(betas.get_fdata(dtype=np.float32)), -1, 0)  # (stimuli, x, y, z)
    patterns = {}
    for mask_path in mask_paths:
        mask_image = load_nifti(mask_path, "mask")
        check_dimensions(mask_image, 3, f"mask {mask_path}")
        check_same_grid(mask_image, betas, what=f"mask {mask_path}", reference_what=f"the volumes in {betas_path}")
        inside = mask_voxels(mask_image, mask_path)
        values = data[:, inside]
        finite = np.isfinite(values).all(axis=0)
        if not finite.any():
            raise InputError(f"mask {mask_path} selects no usable voxel of {betas_path} (none inside, or all hold NaN "
                             "or infinite values); check the mask and the volume")
        if not finite.all():
            log.info("%s: %d voxel(s) of %s hold NaN or infinite values and are left out",
                     betas_path, int((~finite).sum()), roi_name(mask_path))
        patterns[roi_name(mask_path)] = values[:, finite]
    return patterns


def load_responses(path: Path, key: str | None = None) -> np.ndarray:
    """A subject's responses (stimuli, channels) or (stimuli, channels, time).

    The formats (the module docstring): `.npy`; `.npz` (the array `key`, or the only
    array); `.mat` (the variable `key`, or the only numeric array of 2 or 3 dimensions);
    `.h5` / `.hdf5` (the dataset `key`, or the only dataset). Pickled objects are refused.

    Parameters
    ----------
    path : path
        The response file.
    key : str, optional
        The array, variable or dataset to read (not used for `.npy`).

    Returns
    -------
    ndarray (stimuli, channels) or (stimuli, channels, time)
        float64 when stored as float64, else float32 (integers included).

    Raises
    ------
    InputError
        A missing, unreadable or unsupported file, no array `key` (or several candidates
        and no `key`), or values that are not finite numbers in 2 or 3 dimensions.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"response file {path} {what_is_there(path)}; give an array file ({', '.join(RESPONSE_SUFFIXES)})")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                array = data[_choose(path, key, data.files, "array")]
        elif suffix == ".mat":
            array = _mat_array(path, key)
        elif suffix in (".h5", ".hdf5"):
            array = _h5_array(path, key)
        else:
            raise InputError(f"response file {path}: unsupported type; use {', '.join(RESPONSE_SUFFIXES)}")
    except InputError:
        raise
    except (ValueError, OSError, EOFError, NotImplementedError, zipfile.BadZipFile) as error:
        # scipy's MatReadError is a ValueError; a MATLAB v7.3 file is NotImplementedError; a cut .npz BadZipFile
        hint = "; save plain numeric arrays (pickled objects are refused)" if "allow_pickle" in str(error) else ""
        raise InputError(f"cannot read response file {path}: {reason(error)}{hint}") from None
    array = np.asarray(array)
    if array.dtype.kind not in "fiu" or array.ndim not in (2, 3):
        raise InputError(
            f"{path}: responses must be numbers shaped (stimuli, channels) or (stimuli, channels, time), "
            f"got {array.dtype} {array.shape}"
        )
    if not np.isfinite(array).all():
        raise InputError(f"{path} holds NaN or infinite responses; remove or impute them first")
    return array.astype(np.float64 if array.dtype == np.float64 else np.float32)


def _mat_array(path: Path, key: str | None) -> np.ndarray:
    from .rdm_formats import load_mat

    content = load_mat(path, structs=False, what="response file")
    if key is not None:
        return content[_choose(path, key, list(content), "variable")]
    numeric = [name for name, value in content.items()
               if isinstance(value, np.ndarray) and value.dtype.kind in "fiu" and value.ndim in (2, 3)]
    if not numeric:
        raise InputError(f"{path} holds no numeric (stimuli, channels[, time]) array; it holds "
                         f"{', '.join(content) or 'nothing'}")
    return content[_choose(path, None, numeric, "numeric array")]


def _h5_array(path: Path, key: str | None) -> np.ndarray:
    import h5py

    try:
        file = h5py.File(path, "r")
    except OSError as error:
        if locked(error):
            raise open_error(path, error, "") from None
        raise  # reported by `load_responses` with the others
    with file:
        names: list[str] = []
        file.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
        return file[_choose(path, key, names, "dataset")][()]


def _choose(path: Path, key: str | None, names: list[str], what: str) -> str:
    """`key` when the file holds it, else the only candidate: never one of several picked
    by their order in the file."""
    if key is not None:
        if key not in names:
            raise InputError(f"{path} has no {what} {key!r}; it holds {listed(names) or 'nothing'}")
        return key
    if not names:
        raise InputError(f"{path} holds no {what}; save the responses in it")
    if len(names) > 1:
        raise InputError(f"{path} holds {len(names)} {what}s ({listed(names)}); choose one with `key`")
    return names[0]


def fmri_rdms(
    betas: Sequence[Path], masks: Sequence[Path], *, parameters: RDMParameters | None = None, device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, np.ndarray]:
    """{roi: (subjects, n, n)}: one RDM per subject and ROI mask (`parameters`: the
    metric, standardisation and precision; default the defaults).

    Every header is checked before any work (`check_betas`). Voxels with a non-finite value
    for any stimulus are left out of a subject's ROI (logged). Each ROI's patterns are held
    in memory whole: `parameters.memory` is not used.

    Parameters
    ----------
    betas : sequence of path
        One 4D NIfTI per subject, one volume per stimulus, in stimulus order.
    masks : sequence of path
        3D ROI masks on the volumes' grid (non-zero inside); each ROI is named after its
        file (`V1.nii.gz` -> `V1`).
    parameters : RDMParameters, optional
    device : str, default "cpu"
        Where the RDMs are computed.
    progress : callable (done, total), optional
        Called after each subject.

    Returns
    -------
    dict of str to ndarray (subjects, n, n)
        In the order of `masks`.

    Raises
    ------
    InputError
        No volume or no mask, two masks of one name, a volume that is not 4D or holds
        another number of volumes than the first, a mask that is not 3D, on another grid or
        without a usable voxel, or a file that cannot be read.
    """
    from .rdm import compute_rdm

    p = parameters or RDMParameters()

    check_betas(betas, masks)  # every header, before any work
    per_roi: dict[str, list[np.ndarray]] = {}
    counts = set()
    for index, path in enumerate(betas):
        for roi, patterns in roi_patterns(path, masks).items():
            counts.add(patterns.shape[0])
            per_roi.setdefault(roi, []).append(
                compute_rdm(patterns, p.metric, standardize=p.standardize, precision=p.precision, device=device))
        if progress:
            progress(index + 1, len(betas))
        if len(counts) > 1:
            raise InputError(f"{path} holds {patterns.shape[0]} volumes, earlier subjects {min(counts)}; every subject needs one volume per stimulus")
    return {roi: np.stack(stack) for roi, stack in per_roi.items()}


def response_rdms(
    files: Sequence[Path], key: str | None = None, *, parameters: RDMParameters | None = None, device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """(subjects, n, n), or (subjects, time, n, n) for (stimuli, channels, time)
    responses (`parameters` as for `fmri_rdms`).

    Parameters
    ----------
    files : sequence of path
        One response file per subject (`load_responses`), at least one, all with the same
        numbers of stimuli, dimensions and time points.
    key : str, optional
        The array inside each file (`load_responses`).
    parameters : RDMParameters, optional
        The metric, standardisation and precision (default: the defaults).
    device : str, default "cpu"
        Where the RDMs are computed.
    progress : callable (done, total), optional
        Called after each subject.

    Returns
    -------
    ndarray (subjects, n, n) or (subjects, time, n, n)
        One RDM per subject (and time point) over the channels.

    Raises
    ------
    InputError
        No file, a file that cannot be read (`load_responses`), fewer than 2 stimuli, or
        another number of stimuli, dimensions or time points than the first.
    """
    from .rdm import compute_rdms

    p = parameters or RDMParameters()

    if not files:
        raise InputError("give at least one `responses` file (one per subject)")
    stacks, first = [], None
    for index, path in enumerate(files):
        responses = load_responses(path, key)
        if responses.shape[0] < 2 or responses.shape[1] < 1 or (responses.ndim == 3 and responses.shape[2] < 1):
            raise InputError(f"{path} holds responses of shape {responses.shape}; an RDM needs at least 2 stimuli "
                             "(rows) and 1 channel (and 1 time point)")
        # stimuli, dimensions and time points must agree (the channels may differ between subjects)
        layout = (responses.shape[0], responses.ndim, responses.shape[2] if responses.ndim == 3 else None)
        if first is not None and layout != first[1]:
            raise InputError(
                f"{path} holds responses of shape {responses.shape}; the first subject's ({first[0]}) had shape "
                f"{first[2]}: every subject needs the same stimuli (rows) and time points"
            )
        if first is None:
            first = (path, layout, responses.shape)
        batch = responses[None] if responses.ndim == 2 else np.moveaxis(responses, -1, 0)  # (T, n, channels)
        rdms = compute_rdms(np.ascontiguousarray(batch), p.metric, standardize=p.standardize, precision=p.precision,
                            device=device)
        stacks.append(rdms[0] if responses.ndim == 2 else rdms)
        if progress:
            progress(index + 1, len(files))
    return np.stack(stacks)
