"""Brain pictures of statistical maps (nilearn): a glass brain and orthogonal slices cut at
the map's peak, thresholded, with a colour bar.

The background is nilearn's MNI152 template (shipped with nilearn, no download) when the
map's affine is in MNI space, that is its NIfTI sform code (else its qform code) is 4
(MNI152); otherwise a given `background` image, else the `fallback` (the mask of the map).
Only values above the threshold are drawn (the positive tail: scores, R^2, t).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError
from ..extras import require_library
from .base import pyplot, save_figure

__all__ = ["Peak", "find_peak", "in_mni_space", "require_nilearn", "check_background", "picture_background", "background_path",
           "recorded_background", "brain_figure", "PLOTS_EXTRA"]

PLOTS_EXTRA = "plots"  # the pyproject extra that installs nilearn
MNI_CODE = 4  # NIfTI xform code of MNI152 space


@dataclass(frozen=True)
class Peak:
    """The largest finite value of a map, its voxel (i, j, k) and its position in mm (affine @ voxel)."""

    value: float
    voxel: tuple[int, int, int]
    mm: tuple[float, float, float]


def find_peak(values: np.ndarray, voxels: np.ndarray, affine: np.ndarray) -> Peak | None:
    """The `Peak` of `values` (k,) at `voxels` (k, 3), the first of ties; None when no value is finite."""
    if not np.isfinite(values).any():
        return None
    best = int(np.nanargmax(values))
    voxel = voxels[best]
    mm = np.asarray(affine, dtype=float) @ np.append(voxel, 1.0)
    return Peak(float(values[best]), tuple(int(v) for v in voxel), tuple(round(float(c), 3) for c in mm[:3]))


def in_mni_space(image) -> bool:
    """Whether the image's sform code (or, without one, its qform code) says MNI152 (4)."""
    header = image.header
    code = int(header["sform_code"]) or int(header["qform_code"])
    return code == MNI_CODE


def require_nilearn() -> None:
    """A `ConfigError` naming the `plots` extra when nilearn does not import; called before any work."""
    require_library("nilearn", PLOTS_EXTRA, "`plot` (brain pictures)")


def check_background(path: str | Path):
    """The `background` image: a readable 3D NIfTI (any grid: nilearn draws both in mm)."""
    from ..brain.nifti import check_dimensions, nifti_header

    image = nifti_header(Path(path), "`background`")
    if len(image.shape) == 4 and image.shape[3] == 1:
        raise InputError(f"`background` {path} is 4D with one volume; give a 3D NIfTI")
    check_dimensions(image, 3, f"`background` {path}")
    return image


def picture_background(plot, background: str | Path | None):
    """The checked `background` image of the brain pictures that `plot` asks for (None: the
    fallback), once nilearn is found to import; callers run it before any work."""
    if background is not None and not plot:
        raise ConfigError("`background` is the image under the brain pictures; add `plot` or leave it out")
    if not plot:
        return None
    require_nilearn()
    return None if background is None else check_background(background)


def background_path(background) -> str | None:
    """The absolute path of a `picture_background` image, as a shard records it (the merge of
    the shards may run in another folder)."""
    return None if background is None else str(Path(background.get_filename()).resolve())


def recorded_background(plot, path: str | None, source: Path):
    """`picture_background` of the image path a shard file `source` recorded; a missing or
    unreadable image is an `InputError` naming the shard."""
    try:
        return picture_background(plot, path)
    except InputError as error:
        raise InputError(f"{source} draws its brain pictures over the image its run was given: {error}; "
                         "put that image back or rerun the shards") from None


def brain_figure(image, path: str | Path, *, threshold: float, title: str, background=None, fallback=None,
                 dpi: int = 100):
    """Draw the map `image` (a 3D nibabel image, NaN outside) as a glass brain and ortho slices
    cut at its peak, values above `threshold` only, with a colour bar; write it atomically to
    `path` (PNG). Returns (the figure's title text, the `Peak` or None, the background drawn:
    "MNI152", "background" or "fallback").

    The title is `title`, then the peak value and its position in mm. The background is the
    MNI152 template when `in_mni_space(image)`, else `background`, else `fallback`.
    """
    import nibabel as nib
    from nilearn import datasets, plotting

    plt = pyplot()
    data = np.asarray(image.get_fdata(), dtype=np.float32)
    finite = np.isfinite(data)
    voxels = np.argwhere(finite)
    peak = find_peak(data[finite], voxels, image.affine)
    # only the positive tail above the threshold: nilearn hides |v| < threshold, so the rest is set to 0
    shown = np.where(finite & (data > threshold), data, 0).astype(np.float32)
    drawn = nib.Nifti1Image(shown, image.affine)
    level = max(float(threshold), float(np.finfo(np.float32).tiny))
    if in_mni_space(image):
        bg, under = datasets.load_mni152_template(resolution=2), "MNI152"
    elif background is not None:
        bg, under = background, "background"
    else:
        bg, under = fallback, "fallback"
    if peak is None:
        text = f"{title}: no finite value"
        cut = tuple(float(c) for c in (np.asarray(image.affine) @ np.append(np.array(data.shape) / 2, 1.0))[:3])
    else:
        x, y, z = peak.mm
        text = f"{title}: peak {peak.value:.4g} at ({x:g}, {y:g}, {z:g}) mm, shown > {threshold:.4g}"
        cut = peak.mm
    vmax = max(float(np.max(shown)), level * 1.01)
    fig = plt.figure(figsize=(14, 4))
    glass = fig.add_axes([0.0, 0.0, 0.45, 0.88])
    slices = fig.add_axes([0.45, 0.0, 0.55, 0.88])
    plotting.plot_glass_brain(drawn, threshold=level, colorbar=True, plot_abs=False, vmin=0, vmax=vmax, axes=glass,
                              figure=fig, cmap="autumn")
    plotting.plot_stat_map(drawn, bg_img=bg if bg is not None else False, threshold=level, cut_coords=cut,
                           display_mode="ortho", colorbar=True, axes=slices, figure=fig, vmin=0, vmax=vmax,
                           cmap="autumn", black_bg=False, draw_cross=True)
    fig.suptitle(text)
    save_figure(fig, path, dpi, tight=False)
    return text, peak, under
