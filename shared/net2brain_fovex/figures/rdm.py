"""RDM pictures: the heat map (ordered by category, blocks marked) beside a classical MDS
embedding of the same RDM (points coloured by category, or the stimulus images)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import pyplot, save_figure

__all__ = ["rdm_figure", "RDMPicture", "RDM_FIGURE_SIZE"]

_DPI = 150
_FIGSIZE = (13.0, 6.0)
RDM_FIGURE_SIZE = (int(_FIGSIZE[0] * _DPI), int(_FIGSIZE[1] * _DPI))  # (width, height) of the PNG in pixels
# Beyond this many stimuli the tick labels overlap into an unreadable block.
_MAX_TICK_LABELS = 40
THUMBNAIL = 28  # pixels of a stimulus image's longer side in the MDS panel


@dataclass(frozen=True)
class RDMPicture:
    """What `rdm_figure` drew: the file, the stimulus order of the heat map (indices
    into the RDM's stimuli) and the MDS coordinates (n, 2) in the RDM's own order (None
    when the RDM is not complete)."""

    path: Path
    order: list[int]
    coordinates: np.ndarray | None


def rdm_figure(matrix: np.ndarray, path: Path, *, title: str, stimuli: Sequence[str],
               categories: dict[str, str] | None = None,
               thumbnails: Sequence[Path] | None = None) -> RDMPicture:
    """Write the picture of the square RDM `matrix` to `path` and return what it drew.

    A PNG of `RDM_FIGURE_SIZE`: 13 x 6 inches at 150 dpi, 1950 x 900 pixels.

    Left, the heat map (viridis, NaN grey, a colour bar), its stimuli grouped by category
    (`net2brain_fovex.brain.categories.category_order`) with white lines between the
    blocks and the category names at their centres; without categories in the RDM's
    order, named when there are at most 40. Right, the classical MDS of the RDM
    (`net2brain_fovex.brain.mds.classical_mds`): a point per stimulus coloured by
    category with a legend, and the stimulus images at the points when `thumbnails`
    are given. An RDM with NaN has no MDS; the panel says so.

    Parameters
    ----------
    matrix : array (n, n)
    path : path
        The picture; an existing one is replaced (atomically).
    title : str
    stimuli : sequence of str
        The n stimulus ids.
    categories : dict, optional
        Stimulus id -> category, in the labels file's order (`read_categories`).
    thumbnails : sequence of path, optional
        An image file per stimulus, in the RDM's order.

    Returns
    -------
    RDMPicture

    Raises
    ------
    ValueError
        `matrix` not square, or `stimuli` or `thumbnails` not n.
    OutputError
        The folder is not writable, or the write fails.
    """
    from ..brain.categories import category_order
    from ..brain.mds import classical_mds

    matrix = np.asarray(matrix, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"an RDM must be a square matrix, got shape {matrix.shape}")
    n = len(matrix)
    for what, values in (("stimulus ids", stimuli), ("thumbnails", thumbnails)):
        if values is not None and len(values) != n:
            raise ValueError(f"{len(values)} {what} for an RDM of {n} stimuli")
    order, blocks = category_order(stimuli, categories) if categories else (list(range(n)), [])
    coordinates = classical_mds(matrix) if n > 2 and np.isfinite(matrix).all() else None
    plt = pyplot()
    fig, (heat, scatter) = plt.subplots(1, 2, figsize=_FIGSIZE, gridspec_kw={"width_ratios": [1.15, 1]})
    _heat_map(fig, heat, matrix[np.ix_(order, order)], [stimuli[i] for i in order], blocks)
    _embedding(scatter, coordinates, stimuli, categories, thumbnails)
    fig.suptitle(title)
    save_figure(fig, path, _DPI)
    return RDMPicture(Path(path), order, coordinates)


def _heat_map(fig, ax, matrix: np.ndarray, names: list[str], blocks: list[tuple[str, int, int]]) -> None:
    import matplotlib

    # with_extremes, not set_bad: matplotlib 3.11 marks set_bad for deprecation.
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="grey")
    image = ax.imshow(matrix, cmap=cmap, interpolation="nearest")
    fig.colorbar(image, ax=ax, label="dissimilarity", fraction=0.046, pad=0.04)
    if blocks:
        for _, _, end in blocks[:-1]:
            ax.axhline(end - 0.5, color="white", linewidth=1.2)
            ax.axvline(end - 0.5, color="white", linewidth=1.2)
        centres = [(start + end - 1) / 2 for _, start, end in blocks]
        ax.set_xticks(centres, [name for name, _, _ in blocks], rotation=90, fontsize=8)
        ax.set_yticks(centres, [name for name, _, _ in blocks], fontsize=8)
    elif len(names) <= _MAX_TICK_LABELS:
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
        ax.set_yticks(range(len(names)), names, fontsize=6)
    else:
        ax.set_xticks([])
        ax.set_yticks([])


def _embedding(ax, coordinates: np.ndarray | None, stimuli: Sequence[str], categories: dict[str, str] | None,
               thumbnails: Sequence[Path] | None) -> None:
    ax.set_title("classical MDS", fontsize=10)
    if coordinates is None:
        ax.text(0.5, 0.5, "MDS needs a complete RDM\n(no NaN) of 3 or more stimuli", ha="center",
                va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    import matplotlib

    colours = [matplotlib.colormaps["tab10"](0)] * len(stimuli)
    if categories:
        names = list(dict.fromkeys(categories.values()))
        palette = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
        for index, name in enumerate(names):
            members = [i for i, s in enumerate(stimuli) if categories[s] == name]
            ax.scatter(coordinates[members, 0], coordinates[members, 1], color=palette(index % palette.N), label=name,
                       s=30, zorder=2)
            for member in members:
                colours[member] = palette(index % palette.N)
        ax.legend(fontsize=7, loc="best", framealpha=0.8)
    else:
        ax.scatter(coordinates[:, 0], coordinates[:, 1], s=30, zorder=2)
    if thumbnails is not None:
        _draw_thumbnails(ax, coordinates, thumbnails, colours)
    ax.set_xlabel("dimension 1")
    ax.set_ylabel("dimension 2")
    ax.set_aspect("equal", adjustable="datalim")


def _draw_thumbnails(ax, coordinates: np.ndarray, thumbnails: Sequence[Path], colours: list) -> None:
    """Each stimulus image at its point, framed in its category's colour (the image
    would hide the point's)."""
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage
    from PIL import Image

    for (x, y), path, colour in zip(coordinates, thumbnails, colours, strict=True):
        with Image.open(path) as image:
            small = image.convert("RGB")
            small.thumbnail((THUMBNAIL, THUMBNAIL))
        ax.add_artist(AnnotationBbox(OffsetImage(np.asarray(small), zoom=1.0), (x, y), zorder=3, pad=0.15,
                                     bboxprops={"edgecolor": colour, "linewidth": 2}))
