"""The encoding figures: the layer profile per ROI (`encoding_profile_figure`) and a Venn
diagram per ROI of the unique and shared R^2 of a variance partitioning (`partition_figure`).

Both draw from the rows of `encode_to_file`'s summary.csv; matplotlib is imported on first
use (`figures.base`), and each figure is written atomically in the format its suffix names.
"""
from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .base import pyplot, save_figure

__all__ = ["encoding_profile_figure", "partition_figure"]

_DPI = 150
_VENN_PIXELS = 400  # the raster of a Venn panel's coloured regions, per side


def _untimed(row: dict) -> bool:
    return row.get("time", "") in ("", "mean")


def profile_values(rows: Sequence[dict], layers: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    """Per ROI (mean r per layer, its SEM across subjects, subjects): the mean over the
    subjects' ROI means (SEM NaN with one subject); time-resolved rows use `time` mean."""
    subjects = list(dict.fromkeys(row["subject"] for row in rows if row["subject"] != "group"))
    table = {(row["roi"], row["layer"], row["subject"]): row["mean_r"] for row in rows if _untimed(row)}
    profiles = {}
    for roi in dict.fromkeys(row["roi"] for row in rows):
        values = np.array([[table.get((roi, layer, s), np.nan) for layer in layers] for s in subjects], dtype=float)
        mean = values.mean(axis=0)
        sem = values.std(axis=0, ddof=1) / np.sqrt(len(subjects)) if len(subjects) > 1 else np.full(len(layers), np.nan)
        profiles[roi] = (mean, sem, len(subjects))
    return profiles


def encoding_profile_figure(rows: Sequence[dict], layers: Sequence[str], path: Path) -> Path:
    """Mean held-out r per layer, a line per ROI, with the SEM across subjects shaded when
    there are several (`profile_values`), written to `path` (PNG, PDF or SVG by its suffix).

    Parameters
    ----------
    rows : sequence of dict
        The summary rows (`SUMMARY_COLUMNS`).
    layers : sequence of str
        The layers, in the order of the x axis.
    path : path

    Returns
    -------
    Path
    """
    plt = pyplot()
    profiles = profile_values(rows, layers)
    fig, ax = plt.subplots(figsize=(min(5 + 0.5 * len(layers), 20), 4.5))
    x = np.arange(len(layers))
    subjects = 1
    for roi, (mean, sem, subjects) in profiles.items():
        (line,) = ax.plot(x, mean, marker="o", label=roi)
        if subjects > 1:
            ax.fill_between(x, mean - sem, mean + sem, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xticks(x, list(layers), rotation=45 if len(layers) > 4 else 0, ha="right" if len(layers) > 4 else "center")
    ax.set_xlabel("layer")
    ax.set_ylabel("mean held-out r" + (f" (mean ± SEM of {subjects} subjects)" if subjects > 1 else ""))
    ax.set_title("encoding: layer profile per ROI")
    ax.legend(title="ROI", fontsize="small")
    return save_figure(fig, path, _DPI)


def partition_values(rows: Sequence[dict]) -> tuple[str, list[str], dict[str, dict[tuple[str, str], float]]]:
    """(whose rows, the feature spaces, per ROI the mean R^2 per (measure, spaces)) of a
    partition's summary rows: the group's with several subjects, else the subject's;
    time-resolved rows use `time` mean. The spaces in the order of their `unique` rows."""
    if not rows:
        raise ValueError("no summary rows of a variance partitioning to draw")
    who = "group" if any(row["subject"] == "group" for row in rows) else rows[0]["subject"]
    chosen = [row for row in rows if row["subject"] == who and _untimed(row)]
    spaces = list(dict.fromkeys(row["spaces"] for row in chosen if row["measure"] == "unique"))
    values: dict[str, dict[tuple[str, str], float]] = {}
    for row in chosen:
        values.setdefault(row["roi"], {})[row["measure"], row["spaces"]] = float(row["mean_r2"])
    return who, spaces, values


def r2_text(value: float) -> str:
    """The annotation of a region's mean R^2: 3 significant digits with its sign, `n/a` for NaN."""
    return "n/a" if not np.isfinite(value) else f"{value:.3g}"


def _venn_layout(count: int) -> np.ndarray:
    """Centres (count, 2) of `count` (2 or 3) unit circles, one unit apart (an equilateral triangle for 3)."""
    if count == 2:
        return np.array([[-0.5, 0.0], [0.5, 0.0]])
    height = np.sqrt(3) / 2
    return np.array([[-0.5, height / 3], [0.5, height / 3], [0.0, -2 * height / 3]])


def _label_anchors(centres: np.ndarray) -> np.ndarray:
    """Where the names of the circles go (count, 2): below the outer part of each of 2 circles;
    above the upper two of 3 and below the third."""
    if len(centres) == 2:
        return np.array([[1.8 * centres[0, 0], -1.06], [1.8 * centres[1, 0], -1.06]])
    top, bottom = centres[0, 1] + 1.04, centres[2, 1] - 1.04
    return np.array([[-0.75, top], [0.75, top], [0.0, bottom]])


def _venn_regions(count: int) -> list[tuple[int, ...]]:
    """Every region of a Venn diagram of `count` sets: the indices of the sets it lies in."""
    return [combo for size in range(1, count + 1) for combo in itertools.combinations(range(count), size)]


def _region_key(combo: tuple[int, ...], spaces: Sequence[str]) -> tuple[str, str]:
    """(measure, spaces) of a region's row: `unique` of one space, `shared` of several."""
    return ("unique" if len(combo) == 1 else "shared", "+".join(spaces[i] for i in combo))


def _venn_grid(centres: np.ndarray, size: int = _VENN_PIXELS):
    """The raster (size, size) of a diagram, origin lower: (extent, per pixel the bit mask of
    the circles it lies in, its distance to the nearest circle's edge, its point (x, y))."""
    low, high = centres.min(axis=0) - 1.02, centres.max(axis=0) + 1.02
    x, y = np.linspace(low[0], high[0], size), np.linspace(low[1], high[1], size)
    points = np.stack(np.meshgrid(x, y), axis=-1)  # (y, x, 2), origin lower
    distance = np.linalg.norm(points[:, :, None, :] - centres, axis=-1)  # (y, x, circles)
    bits = ((distance < 1.0) * (1 << np.arange(len(centres)))).sum(axis=-1)
    return (low[0], high[0], low[1], high[1]), bits, np.abs(distance - 1.0).min(axis=-1), points


def _mask_of(combo: tuple[int, ...]) -> int:
    return sum(1 << i for i in combo)


def _wrapped(name: str, width: int) -> str:
    """`name` on lines of about `width` characters, broken after `.`, `_`, `-`, `:` or `/`
    where it can be (layer paths), else within a part longer than `width`."""
    lines, current = [], ""
    for part in re.split(r"(?<=[._\-:/])", name):
        if len(current) + len(part) > width:
            lines.append(current)
            current = ""
        while len(part) > width:
            lines.append(part[:width])
            part = part[width:]
        current += part
    lines.append(current)
    return "\n".join(line for line in lines if line)


def _venn_panel(ax, spaces: Sequence[str], values: dict[tuple[str, str], float], cmap, norm) -> None:
    """One ROI's Venn diagram: every region coloured by its mean R^2 (grey when missing),
    annotated with it at the region's innermost point, the circles labelled with the spaces."""
    from matplotlib.patches import Circle

    centres = _venn_layout(len(spaces))
    extent, bits, edge, points = _venn_grid(centres)
    image = np.zeros((*bits.shape, 4))
    for combo in _venn_regions(len(spaces)):
        inside = bits == _mask_of(combo)
        key = _region_key(combo, spaces)
        value = values.get(key, np.nan)
        colour = cmap(norm(value)) if np.isfinite(value) else (0.85, 0.85, 0.85, 1.0)
        image[inside] = colour
        where = np.unravel_index(np.argmax(np.where(inside, edge, -1.0)), edge.shape)  # the pole of the region
        dark = np.isfinite(value) and abs(norm(value) - 0.5) > 0.35
        ax.text(*points[where], r2_text(value), ha="center", va="center", fontsize=8,
                color="white" if dark else "black", gid=f"{key[0]} {key[1]}", parse_math=False)
    ax.imshow(image, origin="lower", extent=extent, interpolation="nearest", zorder=1)
    for centre, anchor, name in zip(centres, _label_anchors(centres), spaces, strict=True):
        ax.add_patch(Circle(centre, 1.0, fill=False, edgecolor="black", linewidth=1.2, zorder=2))
        ax.text(*anchor, _wrapped(name, 16), ha="center",
                va="top" if anchor[1] < centre[1] else "bottom", fontsize=8, fontweight="bold", gid=f"space {name}",
                parse_math=False)
    ax.set_xlim(extent[0] - 0.05, extent[1] + 0.05)
    ax.set_ylim(extent[2] - 0.45, extent[3] + (0.45 if len(spaces) == 3 else 0.05))  # room for the names
    ax.set_aspect("equal")
    ax.axis("off")


def partition_figure(rows: Sequence[dict], path: Path) -> Path:
    """A Venn diagram per ROI of a variance partitioning of two or three feature spaces,
    written to `path` (PNG, PDF or SVG by its suffix).

    Each panel has a circle per feature space, labelled with its name; each region is
    annotated with its mean held-out R^2 (`r2_text`): the `unique` R^2 of a space where one
    circle lies alone, the `shared` R^2 of the spaces (`a+b`, `a+b+c`) where circles overlap,
    and coloured by it on one diverging scale centred at 0 for all panels (red positive, blue
    negative: shared variance can be negative), with a colour bar; missing values are grey.
    The title gives the ROI and the R^2 of all spaces together. The diagram's layout is
    fixed (the areas do not scale with the values, which may be negative). The values are
    the group's with several subjects, else the subject's; time-resolved data: `time` mean
    (`partition_values`).

    Parameters
    ----------
    rows : sequence of dict
        The summary rows of a partition run (`PARTITION_COLUMNS`).
    path : path

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        No rows, or other than two or three feature spaces.
    """
    import matplotlib
    from matplotlib.colors import Normalize

    who, spaces, values = partition_values(rows)
    if len(spaces) not in (2, 3):
        raise ValueError(f"a Venn diagram of a variance partitioning draws two or three feature spaces, got "
                         f"{len(spaces)} ({', '.join(spaces) or 'no unique rows'})")
    plt = pyplot()
    regions = [_region_key(combo, spaces) for combo in _venn_regions(len(spaces))]
    finite = np.array([v for roi in values.values() for k, v in roi.items() if k in regions and np.isfinite(v)])
    limit = float(np.abs(finite).max()) if finite.size and np.abs(finite).max() > 0 else 1.0
    norm, cmap = Normalize(-limit, limit), matplotlib.colormaps["RdBu_r"]
    rois = list(values)
    columns = min(len(rois), max(4, int(np.ceil(np.sqrt(len(rois))))))
    lines = int(np.ceil(len(rois) / columns))
    fig = plt.figure(figsize=(3.4 * columns + 1.0, 3.6 * lines))
    grid = fig.add_gridspec(lines, columns + 1, width_ratios=[1.0] * columns + [0.06])
    full = ("r2", "+".join(spaces))
    for index, roi in enumerate(rois):
        ax = fig.add_subplot(grid[index // columns, index % columns])
        _venn_panel(ax, spaces, values[roi], cmap, norm)
        title = roi.replace("$", r"\$")  # a plain name beside the mathtext
        ax.set_title(f"{title}\n$R^2$ of all: {r2_text(values[roi].get(full, np.nan))}", fontsize=10)
    subjects = len({row["subject"] for row in rows} - {"group"})
    colorbar = fig.colorbar(matplotlib.cm.ScalarMappable(norm, cmap), cax=fig.add_subplot(grid[:, -1]))
    colorbar.set_label("mean held-out $R^2$, unique and shared "
                       + (f"(group of {subjects} subjects)" if who == "group" else f"({who})"))
    return save_figure(fig, path, _DPI)
