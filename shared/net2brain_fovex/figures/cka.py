"""CKA heat maps: layers of one model against layers of another, or against ROIs."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import pyplot, save_figure

__all__ = ["cka_heatmap"]

_DPI = 150
_MAX_TICK_LABELS = 60


def cka_heatmap(matrix: np.ndarray, path: Path, *, rows: list[str], columns: list[str], title: str) -> Path:
    """Write a heat map of CKA values `matrix` (rows, columns) to `path` and return it.

    Magma colours from 0 to 1 (NaN in grey), a colour bar labelled "CKA", the row and
    column names as ticks (up to 60 each). Written atomically, in the format the suffix
    names; an existing file is replaced.

    Parameters
    ----------
    matrix : array (rows, columns)
    path : path
        The figure file; its folder must exist.
    rows, columns : list of str
        The names of the rows (layers) and columns (layers or ROIs).
    title : str

    Returns
    -------
    Path
        `path`.

    Raises
    ------
    ValueError
        `matrix` not 2-D, or names that do not match its shape.
    """
    matrix = np.asarray(matrix, dtype=float)
    if matrix.ndim != 2 or matrix.shape != (len(rows), len(columns)):
        raise ValueError(f"a CKA matrix of shape {matrix.shape} for {len(rows)} rows and {len(columns)} columns")
    import matplotlib

    plt = pyplot()
    cmap = matplotlib.colormaps["magma"].with_extremes(bad="grey")
    width = min(16.0, 3 + 0.35 * len(columns))
    height = min(16.0, 2.5 + 0.3 * len(rows))
    fig, ax = plt.subplots(figsize=(max(width, 5.0), max(height, 4.0)))
    image = ax.imshow(matrix, cmap=cmap, vmin=0, vmax=1, interpolation="nearest", aspect="auto")
    fig.colorbar(image, ax=ax, label="CKA")
    ax.set_title(title)
    if len(columns) <= _MAX_TICK_LABELS:
        ax.set_xticks(range(len(columns)), columns, rotation=90, fontsize=7)
    else:
        ax.set_xticks([])
    if len(rows) <= _MAX_TICK_LABELS:
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
    else:
        ax.set_yticks([])
    return save_figure(fig, path, _DPI)
