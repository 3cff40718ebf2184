"""NIfTI files: reading headers and volumes, checking dimensions and grids, masks, and
writing maps."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, reason
from ..io.atomic import atomic_output
from ..io.paths import what_is_there

__all__ = ["roi_name", "nifti_header", "load_nifti", "check_dimensions", "check_same_grid", "Volume", "load_volume",
           "load_mask", "mask_voxels", "usable_voxels", "VOLUMES_AT_ONCE", "usable_voxels_of", "masked_responses", "save_map", "save_series", "save_binary", "header_bytes", "image_from_header"]


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
        raise InputError(f"{what} {path} {what_is_there(path)}; give a NIfTI file (.nii or .nii.gz)")
    try:
        return nib.load(str(path))
    except Exception as error:  # nibabel raises many kinds for damaged files
        raise InputError(f"cannot read {what} {path} as NIfTI: {reason(error)}; replace the file") from None


def load_nifti(path: Path, what: str):
    """A NIfTI image with its data decoded once (a truncated file fails here)."""
    image = nifti_header(path, what)
    try:
        image.get_fdata(dtype=np.float32)  # decode now, so a truncated file fails here
        return image
    except Exception as error:  # nibabel raises many kinds for damaged files
        raise InputError(f"cannot read {what} {path} as NIfTI: {reason(error)}; replace the file") from None


def check_dimensions(image, ndim: int, what: str) -> None:
    """`image` has `ndim` axes (a 3D mask, a 4D series with one volume per stimulus);
    `what` names it in the message ("mask V1.nii.gz")."""
    if len(image.shape) != ndim:
        expected = "a 4D volume with one volume per stimulus" if ndim == 4 else f"a {ndim}D volume"
        raise InputError(f"{what} has {len(image.shape)} dimensions; expected {expected}")


def check_same_grid(image, reference, *, what: str, reference_what: str) -> None:
    """The same voxel grid: shape (first three axes) and affine (nilearn's
    `check_same_fov`); `what` and `reference_what` name them in the message."""
    if tuple(image.shape[:3]) != tuple(reference.shape[:3]):
        raise InputError(f"{what} has shape {tuple(image.shape[:3])}, {reference_what} {tuple(reference.shape[:3])}: "
                         "resample them onto one grid")
    if not np.allclose(image.affine, reference.affine, atol=1e-3):
        raise InputError(f"{what} and {reference_what} have different affines: resample them onto one grid")


@dataclass
class Volume:
    """A subject's responses: the image (for affine and header) and (X, Y, Z, stimuli) data."""

    path: Path
    image: object
    data: np.ndarray


def _check_series(image, path: Path, stimuli: int, reference) -> None:
    """A response series: 4D, a volume per stimulus, on the grid of `reference` when given."""
    check_dimensions(image, 4, f"response volume {path}")
    if image.shape[3] != stimuli:
        raise InputError(f"{path} holds {image.shape[3]} volumes, but there are {stimuli} stimuli; give one volume per stimulus")
    if reference is not None:
        check_same_grid(image, reference, what=f"{path}", reference_what=f"{reference.get_filename()}")


def load_volume(path: Path, *, stimuli: int, order: np.ndarray | None = None, reference=None) -> Volume:
    """A 4D response volume with one volume per stimulus (reordered by `order`), on the
    grid of `reference` when given.

    Parameters
    ----------
    path : path
        A 4D NIfTI file.
    stimuli : int
        The number of volumes it must hold.
    order : array of int, optional
        Volume indices: volume `order[i]` becomes stimulus i.
    reference : nibabel image, optional
        An image whose grid (shape of the first three axes, affine) the volume must share.

    Returns
    -------
    Volume
        With the data as float32 (X, Y, Z, stimuli).

    Raises
    ------
    InputError
        A missing or unreadable file, not 4D, another number of volumes than `stimuli`, or
        another grid than `reference`.
    """
    image = nifti_header(path, "response volume")
    _check_series(image, path, stimuli, reference)
    try:
        data = _decoded(image, Path(path))
    except Exception as error:  # nibabel and the decompressor raise many kinds for damaged files
        raise InputError(f"cannot read response volume {path} as NIfTI: {reason(error)}; replace the file") from None
    if order is not None:
        data = data[..., order]
    return Volume(Path(path), image, data)


def _decoded(image, path: Path) -> np.ndarray:
    """The float32 data of `image` (read from `path`), as `image.get_fdata(dtype=float32)`
    gives them (nibabel's own reader, its scaling included), with a .nii.gz stream
    decompressed by ISA-L (`isal`): 1.4 against 0.95 s for a 92-volume series on a 2 mm
    grid, a tenth of a whole-brain searchlight's time on two cores."""
    if not path.name.endswith(".gz"):
        return np.asarray(image.get_fdata(dtype=np.float32))
    from isal import igzip

    proxy = image.dataobj  # its spec, not the image's header: nibabel resets the header's data offset
    spec = (proxy.shape, proxy.dtype, proxy.offset, proxy.slope, proxy.inter)
    with igzip.open(path, "rb") as stream:
        return np.asarray(type(proxy)(stream, spec, mmap=False, order=proxy.order), dtype=np.float32)


def mask_voxels(image, path: Path) -> np.ndarray:
    """The voxels inside a mask image: finite and non-zero.

    A NaN compares unequal to 0, so a plain `!= 0` would count NaN (and infinite) voxels
    as inside; masks saved with NaN for "outside" would silently select the whole volume.
    A warning says how many non-finite voxels were left out.
    """
    data = np.asarray(image.get_fdata())
    finite = np.isfinite(data)
    if not finite.all():
        warnings.warn(f"mask {path} holds {int((~finite).sum())} NaN or infinite voxels; they count as outside the mask",
                      RuntimeWarning, stacklevel=2)
    return finite & (data != 0)


def load_mask(path: Path, reference) -> np.ndarray:
    """A 3D mask (inside: finite and non-zero, `mask_voxels`) on the grid of `reference`.

    Parameters
    ----------
    path : path
        A 3D NIfTI file.
    reference : nibabel image
        The image whose grid (shape of the first three axes, affine) the mask must share.

    Returns
    -------
    ndarray (X, Y, Z) bool

    Raises
    ------
    InputError
        A missing or unreadable file, not 3D, another grid than `reference`, or no voxel
        inside.
    """
    image = load_nifti(path, "mask")
    check_dimensions(image, 3, f"mask {path}")
    check_same_grid(image, reference, what=f"mask {path}", reference_what=f"{reference.get_filename()}")
    mask = mask_voxels(image, path)
    if not mask.any():
        raise InputError(f"mask {path} is empty: no voxel is finite and non-zero")
    return mask


def usable_voxels(data: np.ndarray) -> np.ndarray:
    """Voxels whose responses are finite for every stimulus and not all equal.

    From the largest and the smallest response alone (two passes, a third of the time of
    an element-wise finite test and NaN-aware extremes): a NaN makes both NaN, an
    infinity one of them infinite, so both are finite exactly when every response is."""
    high, low = data.max(axis=-1), data.min(axis=-1)
    return np.isfinite(high) & np.isfinite(low) & (high > low)


VOLUMES_AT_ONCE = 32  # volumes the streaming readers decode at a time: their memory is that many volumes


def _volume_blocks(path: Path, stimuli: int, reference):
    """(first volume, float32 (X, Y, Z, k) block) of a 4D response volume, read forward a
    block at a time from one open file: the memory of `VOLUMES_AT_ONCE` volumes, not of the
    series (a 10,000-volume series on a 2 mm grid is 36 GB), and a gzip stream decompressed
    once. Float32 data are read exactly; scaled integers are scaled in float64 and rounded."""
    import nibabel as nib

    image = nifti_header(path, "response volume")
    _check_series(image, path, stimuli, reference)
    image = nib.load(str(path), keep_file_open=True)  # so that each block continues the stream
    try:
        for start in range(0, stimuli, VOLUMES_AT_ONCE):
            yield start, np.asarray(image.dataobj[..., start:start + VOLUMES_AT_ONCE], dtype=np.float32)
    except Exception as error:  # nibabel raises many kinds for damaged (truncated) files
        raise InputError(f"cannot read response volume {path} as NIfTI: {reason(error)}; replace the file") from None


def usable_voxels_of(path: Path, *, stimuli: int, reference=None) -> tuple[np.ndarray, np.ndarray]:
    """`usable_voxels` of a 4D response volume read a block at a time: (finite, varying),
    (X, Y, Z) bool each, finite for every stimulus and not all equal."""
    finite = low = high = None
    for _, block in _volume_blocks(path, stimuli, reference):
        block_finite = np.isfinite(block).all(axis=-1)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN voxel is simply not usable
            block_low, block_high = np.nanmin(block, axis=-1), np.nanmax(block, axis=-1)
        if finite is None:
            finite, low, high = block_finite, block_low, block_high
        else:  # fmin / fmax: a voxel NaN so far takes the block's value
            finite &= block_finite
            low, high = np.fmin(low, block_low), np.fmax(high, block_high)
    return finite, finite & (high > low)


def masked_responses(path: Path, *, stimuli: int, mask: np.ndarray, order: np.ndarray | None = None,
                     reference=None) -> np.ndarray:
    """A subject's (stimuli, voxels) float32 responses at the `mask` voxels (C order), read
    a block of volumes at a time, the stimuli reordered by `order` (volume `order[i]` is
    stimulus i, as `load_volume`)."""
    responses = np.empty((stimuli, int(mask.sum())), dtype=np.float32)
    row = np.arange(stimuli) if order is None else np.argsort(order)  # volume v -> its stimulus
    for start, block in _volume_blocks(path, stimuli, reference):
        responses[row[start:start + block.shape[3]]] = block[mask].T
    return responses


def save_map(values: np.ndarray, mask: np.ndarray, path: Path, *, reference) -> Path:
    """A 3D float32 map: `values` at the mask voxels (C order), NaN elsewhere; the
    reference's affine and header (with its data type and dimensions set for 3D).

    The header's scaling (`scl_slope`, `scl_inter`) is unset, so values are stored as they
    are. The file is written atomically; an existing one is replaced.

    Parameters
    ----------
    values : array (k,)
        One value per mask voxel, k = `mask.sum()`.
    mask : array (X, Y, Z) bool
    path : path
        The NIfTI file to write (`.nii` or `.nii.gz`); its folder must exist.
    reference : nibabel image
        Gives the affine and the header.

    Returns
    -------
    Path
        `path`.

    Raises
    ------
    OutputError
        The folder is missing or not writable, or the write fails.
    """
    import nibabel as nib

    volume = np.full(mask.shape, np.nan, dtype=np.float32)
    volume[mask] = values
    return _save(nib.Nifti1Image(volume, reference.affine, header=_header_3d(reference, np.float32)), path)


def save_series(values: np.ndarray, mask: np.ndarray, path: Path, *, reference) -> Path:
    """A 4D float32 series, a volume per row of `values` (stimuli, k) at the mask voxels
    (C order), NaN elsewhere; otherwise as `save_map`."""
    import nibabel as nib

    series = np.full((*mask.shape, values.shape[0]), np.nan, dtype=np.float32)
    series[mask] = values.T
    header = _header_3d(reference, np.float32)
    header.set_data_shape(series.shape)
    return _save(nib.Nifti1Image(series, reference.affine, header=header), path)


def save_binary(selected: np.ndarray, path: Path, *, reference) -> Path:
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


# ------------------------------------------------------------------ headers as bytes


def _nifti_classes() -> dict:
    """NIfTI header class name -> (header class, image class)."""
    import nibabel as nib

    return {"Nifti1Header": (nib.nifti1.Nifti1Header, nib.Nifti1Image),
            "Nifti1PairHeader": (nib.nifti1.Nifti1PairHeader, nib.Nifti1Pair),
            "Nifti2Header": (nib.nifti2.Nifti2Header, nib.Nifti2Image),
            "Nifti2PairHeader": (nib.nifti2.Nifti2PairHeader, nib.Nifti2Pair)}


def header_bytes(image) -> tuple[str, bytes, bytes]:
    """An image's header as (class name, header bytes, extension bytes), to store in a
    file and rebuild with `image_from_header`; a non-NIfTI header (Analyze) becomes the
    NIfTI-1 header that maps are written with."""
    import io

    import nibabel as nib

    header = image.header
    if type(header).__name__ not in _nifti_classes():
        header = nib.Nifti1Header.from_header(header)
    extensions = io.BytesIO()
    if len(header.extensions):
        header.extensions.write_to(extensions, byteswap=False)
    return type(header).__name__, header.binaryblock, extensions.getvalue()


def image_from_header(class_name: str, header: bytes, extensions: bytes, affine: np.ndarray):
    """An image without data (no memory) whose header and affine are the stored ones
    (`header_bytes`), bytes as they were: the reference of maps written later."""
    import io

    classes = _nifti_classes()
    if class_name not in classes:
        raise InputError(f"a stored reference header is a {class_name}, not a NIfTI header; write it again")
    header_class, image_class = classes[class_name]
    rebuilt = header_class(header, check=False)
    if extensions:
        rebuilt.extensions = header_class.exts_klass.from_fileobj(io.BytesIO(extensions), len(extensions), False)
    data = np.broadcast_to(np.zeros((), dtype=rebuilt.get_data_dtype()), rebuilt.get_data_shape())
    return image_class(data, affine, header=rebuilt)
