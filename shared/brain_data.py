"""Brain recordings as stimulus-by-feature patterns, for brain RDMs.

* fMRI: a 4D NIfTI per subject (one volume per stimulus, in stimulus order) and ROI
  masks (3D NIfTI, non-zero inside, same grid and affine). Voxels with a non-finite
  value for any stimulus are left out of the ROI (logged).
* Any recording: an array file per subject of responses (stimuli x channels), or
  (stimuli x channels x time) for MEG / EEG, which gives one RDM per time point:
  `.npy`; `.npz` (the array `key`, or the first); `.mat` (the variable `key`, or the
  first numeric array of 2 or 3 dimensions); `.h5` / `.hdf5` (the dataset `key`, or the
  only dataset).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .errors import InputError

log = logging.getLogger(__name__)
RESPONSE_SUFFIXES = (".npy", ".npz", ".mat", ".h5", ".hdf5")


def roi_name(mask_path: Path) -> str:
    """`V1.nii.gz` -> `V1`."""
    name = mask_path.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return mask_path.stem


def nifti_header(path: Path, what: str):
    """A NIfTI image with its header read and its data not yet decoded (cheap: for
    checking shapes and grids before any work)."""
    import nibabel as nib

    path = Path(path)
    if path.is_dir():
        raise InputError(f"{what} {path} is a folder; give a NIfTI file (.nii or .nii.gz)")
    if not path.is_file():
        raise InputError(f"{what} {path} does not exist; give a NIfTI file (.nii or .nii.gz)")
    try:
        return nib.load(str(path))
    except Exception as error:  # nibabel raises many kinds for damaged files
        raise InputError(f"cannot read {what} {path} as NIfTI: {_reason(error)}; replace the file") from None


def _reason(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def load_nifti(path: Path, what: str):
    image = nifti_header(path, what)
    try:
        image.get_fdata(dtype=np.float32)  # decode now, so a truncated file fails here
        return image
    except Exception as error:  # nibabel raises many kinds for damaged files
        raise InputError(f"cannot read {what} {path} as NIfTI: {_reason(error)}; replace the file") from None


def check_mask_grid(mask_path: Path, mask_image, betas_path: Path, betas_image) -> None:
    """An ROI mask is a 3D volume on the grid (shape and affine) of the response volumes."""
    if tuple(mask_image.shape[:3]) != tuple(betas_image.shape[:3]) or len(mask_image.shape) != 3:
        raise InputError(f"mask {mask_path} has shape {tuple(mask_image.shape)}; the volumes in {betas_path} are "
                         f"{tuple(betas_image.shape[:3])}: resample the mask onto their grid")
    if not np.allclose(mask_image.affine, betas_image.affine, atol=1e-3):
        raise InputError(f"mask {mask_path} is not on the grid of {betas_path} (the affines differ); resample it first")


def check_betas(betas: list[Path], masks: list[Path]) -> int:
    """Check every subject's 4D volume and every ROI mask from their headers, before any
    work (one volume per stimulus, the same number in every subject, masks on their
    grid), and return the number of stimuli. Damaged data show when they are decoded."""
    if not masks:
        raise InputError("--betas needs at least one --mask (a 3D NIfTI ROI mask)")
    names = [roi_name(Path(m)) for m in masks]
    if len(set(names)) != len(names):
        raise InputError("two --mask files have the same name; ROIs are named after their mask files: rename one")
    mask_images = [(Path(m), nifti_header(m, "mask")) for m in masks]
    first = None
    for path in map(Path, betas):
        image = nifti_header(path, "response volume")
        if len(image.shape) != 4:
            raise InputError(f"{path} has {len(image.shape)} dimensions; expected a 4D volume with one volume per stimulus")
        if first is not None and image.shape[3] != first[1].shape[3]:
            raise InputError(f"{path} holds {image.shape[3]} volumes, {first[0]} {first[1].shape[3]}; every subject "
                             "needs one volume per stimulus")
        first = first or (path, image)
        for mask_path, mask_image in mask_images:
            check_mask_grid(mask_path, mask_image, path, image)
    if first is None:
        raise InputError("give at least one --betas volume")
    return int(first[1].shape[3])


def roi_patterns(betas_path: Path, mask_paths: list[Path]) -> dict[str, np.ndarray]:
    """{roi: patterns (stimuli, voxels)} of one subject's 4D response volume."""
    betas = load_nifti(betas_path, "response volume")
    if betas.ndim != 4:
        raise InputError(f"{betas_path} has {betas.ndim} dimensions; expected a 4D volume with one volume per stimulus")
    data = np.moveaxis(np.asarray(betas.get_fdata(dtype=np.float32)), -1, 0)  # (stimuli, x, y, z)
    patterns = {}
    for mask_path in mask_paths:
        mask_image = load_nifti(mask_path, "mask")
        check_mask_grid(mask_path, mask_image, betas_path, betas)
        inside = np.asarray(mask_image.get_fdata()) != 0
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
    """A subject's responses (stimuli, channels) or (stimuli, channels, time)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"response file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                name = key or (data.files[0] if data.files else None)
                if name not in data.files:
                    raise InputError(f"{path} has no array {name!r}; it holds {', '.join(data.files) or 'nothing'}")
                array = data[name]
        elif suffix == ".mat":
            array = _mat_array(path, key)
        elif suffix in (".h5", ".hdf5"):
            array = _h5_array(path, key)
        else:
            raise InputError(f"response file {path}: unsupported type; use {', '.join(RESPONSE_SUFFIXES)}")
    except InputError:
        raise
    except (ValueError, OSError, EOFError) as error:
        hint = "; save plain numeric arrays (pickled objects are refused)" if "allow_pickle" in str(error) else ""
        raise InputError(f"cannot read response file {path}: {str(error).splitlines()[0]}{hint}") from None
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
    from scipy.io import loadmat

    content = {k: v for k, v in loadmat(str(path)).items() if not k.startswith("__")}
    if key is not None:
        if key not in content:
            raise InputError(f"{path} has no variable {key!r}; it holds {', '.join(content)}")
        return content[key]
    for value in content.values():
        if isinstance(value, np.ndarray) and value.dtype.kind in "fiu" and value.ndim in (2, 3):
            return value
    raise InputError(f"{path} holds no numeric (stimuli, channels[, time]) array; name one with --key")


def _h5_array(path: Path, key: str | None) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as file:
        names: list[str] = []
        file.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
        if key is None:
            if len(names) != 1:
                raise InputError(f"{path} holds {len(names)} datasets ({', '.join(names[:5])}); choose one with --key")
            key = names[0]
        if key not in names:
            raise InputError(f"{path} has no dataset {key!r}; it holds {', '.join(names[:5])}")
        return file[key][()]


def fmri_rdms(
    betas: list[Path], masks: list[Path], metric: str, standardize: bool = False,
    precision: str = "single", device: str = "cpu", progress=None,
) -> dict[str, np.ndarray]:
    """{roi: (subjects, n, n)}: one RDM per subject and ROI mask."""
    from .rdm import compute_rdm

    check_betas(betas, masks)  # every header, before any work
    per_roi: dict[str, list[np.ndarray]] = {}
    counts = set()
    for index, path in enumerate(betas):
        for roi, patterns in roi_patterns(path, masks).items():
            counts.add(patterns.shape[0])
            per_roi.setdefault(roi, []).append(compute_rdm(patterns, metric, standardize, precision, device))
        if progress:
            progress(index + 1, len(betas))
        if len(counts) > 1:
            raise InputError(f"{path} holds {patterns.shape[0]} volumes, earlier subjects {min(counts)}; every subject needs one volume per stimulus")
    return {roi: np.stack(stack) for roi, stack in per_roi.items()}


def response_rdms(
    files: list[Path], key: str | None, metric: str, standardize: bool = False,
    precision: str = "single", device: str = "cpu", progress=None,
) -> np.ndarray:
    """(subjects, n, n), or (subjects, time, n, n) for (stimuli, channels, time) responses."""
    from .rdm import compute_rdms

    stacks, shape = [], None
    for index, path in enumerate(files):
        responses = load_responses(path, key)
        if shape is not None and (responses.shape[0], responses.ndim) != shape:
            raise InputError(
                f"{path} holds responses of shape {responses.shape}; the first subject's had {shape[0]} stimuli "
                f"and {shape[1]} dimensions"
            )
        shape = (responses.shape[0], responses.ndim)
        batch = responses[None] if responses.ndim == 2 else np.moveaxis(responses, -1, 0)  # (T, n, channels)
        rdms = compute_rdms(np.ascontiguousarray(batch), metric, standardize, precision, device)
        stacks.append(rdms[0] if responses.ndim == 2 else rdms)
        if progress:
            progress(index + 1, len(files))
    return np.stack(stacks)
