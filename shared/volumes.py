"""NIfTI volumes for the searchlight: response volumes, masks, and result maps."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .brain_data import load_nifti
from .errors import InputError
from .storage import atomic_output


@dataclass
class Volume:
    """A subject's responses: the image (for affine and header) and (X, Y, Z, stimuli) data."""

    path: Path
    image: object
    data: np.ndarray

def load_volume(path: Path, stimuli: int, order: np.ndarray | None = None, reference=None) -> Volume:
    """A 4D response volume with one volume per stimulus (reordered by `order`), on the
    grid of `reference` when given."""
    image = load_nifti(path, "response volume")
    if image.ndim != 4:
        raise InputError(f"{path} has {image.ndim} dimensions; expected a 4D volume with one volume per stimulus")
    if image.shape[3] != stimuli:
        raise InputError(f"{path} holds {image.shape[3]} volumes, but there are {stimuli} stimuli; give one volume per stimulus")
    if reference is not None:
        check_grid(image, reference, f"{path}", f"{reference.get_filename()}")
    data = np.asarray(image.get_fdata(dtype=np.float32))
    if order is not None:
        data = data[..., order]
    return Volume(Path(path), image, data)


def check_grid(image, reference, what: str, reference_name: str) -> None:
    """Same voxel grid: shape (first three axes) and affine."""
    if tuple(image.shape[:3]) != tuple(reference.shape[:3]):
        raise InputError(f"{what} has shape {image.shape[:3]}, {reference_name} {reference.shape[:3]}; use volumes on one grid")
    if not np.allclose(image.affine, reference.affine, atol=1e-3):
        raise InputError(f"{what} and {reference_name} have different affines; resample them onto one grid")


def load_mask(path: Path, reference) -> np.ndarray:
    """A 3D mask (non-zero inside) on the grid of `reference`."""
    image = load_nifti(path, "mask")
    if image.ndim != 3:
        raise InputError(f"mask {path} has {image.ndim} dimensions; expected a 3D volume")
    check_grid(image, reference, f"mask {path}", f"{reference.get_filename()}")
    mask = np.asarray(image.get_fdata()) != 0
    if not mask.any():
        raise InputError(f"mask {path} is empty: no voxel is non-zero")
    return mask


def usable_voxels(data: np.ndarray) -> np.ndarray:
    """Voxels whose responses are finite for every stimulus and not all equal."""
    import warnings

    finite = np.isfinite(data).all(axis=-1)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN voxel is simply not usable
        varying = np.nanmax(data, axis=-1) > np.nanmin(data, axis=-1)
    return finite & varying


def save_map(values: np.ndarray, mask: np.ndarray, reference, path: Path) -> Path:
    """A 3D float32 map: `values` at the mask voxels (C order), NaN elsewhere; the
    reference's affine and header (with its data type and dimensions set for 3D)."""
    import nibabel as nib

    volume = np.full(mask.shape, np.nan, dtype=np.float32)
    volume[mask] = values
    return _save(nib.Nifti1Image(volume, reference.affine, header=_header_3d(reference, np.float32)), path)


def save_binary(selected: np.ndarray, reference, path: Path) -> Path:
    """A 3D uint8 mask volume."""
    import nibabel as nib

    return _save(nib.Nifti1Image(selected.astype(np.uint8), reference.affine, header=_header_3d(reference, np.uint8)), path)


def _header_3d(reference, dtype):
    header = reference.header.copy()
    header.set_data_dtype(dtype)
    header.set_data_shape(reference.shape[:3])
    header["scl_slope"], header["scl_inter"] = np.nan, np.nan  # values are stored as they are
    return header


def _save(image, path: Path) -> Path:
    import nibabel as nib

    with atomic_output(path) as tmp:
        nib.save(image, str(tmp))
    return path
