"""A row of axial slices of a 3D map, with matplotlib alone: the report's view of a map
that has no brain picture (`net2brain_fovex.figures.brain` needs nilearn, an extra)."""
from __future__ import annotations

import io

import numpy as np

from .base import pyplot

__all__ = ["slice_montage", "montage_slices", "MONTAGE_SLICES", "MONTAGE_SIZE"]

MONTAGE_SLICES = 8
_DPI = 80
_FIGSIZE = (12.0, 2.2)
MONTAGE_SIZE = (int(_FIGSIZE[0] * _DPI), int(_FIGSIZE[1] * _DPI))  # (width, height) in pixels


def montage_slices(volume: np.ndarray, count: int = MONTAGE_SLICES) -> list[int]:
    """`count` axial slice indices (last axis), evenly spread over the slices that hold a
    finite non-zero value (all slices when none does), without repeats."""
    held = np.flatnonzero((np.isfinite(volume) & (volume != 0)).any(axis=(0, 1)))
    low, high = (held[0], held[-1]) if len(held) else (0, volume.shape[2] - 1)
    return sorted({int(round(i)) for i in np.linspace(low, high, count)})


def slice_montage(volume: np.ndarray, *, title: str) -> bytes:
    """PNG bytes of `MONTAGE_SIZE` pixels: the axial slices `montage_slices` picks of the
    3D `volume`, one colour scale (symmetric about 0 when the map has negative values, so
    that 0 is the middle colour), NaN transparent, a colour bar.

    Raises
    ------
    ValueError
        `volume` is not 3D.
    """
    volume = np.asarray(volume, dtype=float)
    if volume.ndim != 3:
        raise ValueError(f"a slice montage needs a 3D map, got shape {volume.shape}")
    finite = volume[np.isfinite(volume)]
    top = float(np.abs(finite).max()) if finite.size else 1.0
    negative = finite.size > 0 and finite.min() < 0
    low, high = (-top, top) if negative else (float(finite.min()) if finite.size else 0.0, top)
    plt = pyplot()
    slices = montage_slices(volume)
    fig, axes = plt.subplots(1, len(slices), figsize=_FIGSIZE, squeeze=False)
    for ax, index in zip(axes[0], slices, strict=True):
        image = ax.imshow(np.rot90(volume[:, :, index]), cmap="RdBu_r" if negative else "hot",
                          vmin=low, vmax=high if high > low else low + 1, interpolation="nearest")
        ax.set_title(f"k = {index}", fontsize=8)
        ax.axis("off")
    fig.colorbar(image, ax=axes[0].tolist(), fraction=0.015, pad=0.01)
    fig.suptitle(title, fontsize=9)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=_DPI)
    finally:
        plt.close(fig)
    return buffer.getvalue()
