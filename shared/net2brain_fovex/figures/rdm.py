"""RDM heat maps."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import pyplot, save_figure

__all__ = ["rdm_heatmap"]

_DPI = 150
# Beyond this many stimuli the tick labels overlap into an unreadable block.
_MAX_TICK_LABELS = 40


def rdm_heatmap(matrix: np.ndarray, path: Path, *, title: str, labels: list[str] | None = None) -> Path:
    """Write a heat map of the square RDM `matrix` to the PNG `path` and return `path`.

    Viridis colours, NaN in grey, a colour bar labelled "dissimilarity". The PNG is written
    atomically; an existing one is replaced.

    Parameters
    ----------
    matrix : array (n, n)
    path : path
        The PNG file; its folder must exist.
    title : str
    labels : list of str, optional
        n stimulus names for the ticks, shown only for n <= 40 (no ticks otherwise).

    Returns
    -------
    Path
        `path`.

    Raises
    ------
    ValueError
        `matrix` not square, or `labels` not n names.
    OutputError
        The folder is missing or not writable, or the write fails.
    """
    matrix = np.asarray(matrix, dtype=float)
    n = _check_square(matrix)
    if labels is not None and len(labels) != n:
        raise ValueError(f"{len(labels)} labels for an RDM of {n} stimuli")
    import matplotlib

    plt = pyplot()
    # with_extremes, not set_bad: matplotlib 3.11 marks set_bad for deprecation.
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="grey")
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(matrix, cmap=cmap, interpolation="nearest")
    fig.colorbar(image, ax=ax, label="dissimilarity")
    ax.set_title(title)
    _stimulus_ticks(ax, labels if n <= _MAX_TICK_LABELS else None)
    return save_figure(fig, path, _DPI)


def _check_square(matrix: np.ndarray) -> int:
    """The size n of an (n, n) matrix; ValueError for any other shape."""
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"an RDM must be a square matrix, got shape {matrix.shape}")
    return matrix.shape[0]


def _stimulus_ticks(ax, labels: list[str] | None) -> None:
    """Label both axes with the stimulus names, or show no ticks when there are none."""
    if labels is None:
        ax.set_xticks([])
        ax.set_yticks([])
        return
    positions = range(len(labels))
    ax.set_xticks(positions, labels, rotation=90, fontsize=6)
    ax.set_yticks(positions, labels, fontsize=6)
