"""The encoding figures: the layer profile per ROI (`encoding_profile_figure`) and the
unique and shared R^2 of a variance partitioning per ROI (`partition_figure`).

Both draw from the rows of `encode_to_file`'s summary.csv; matplotlib is imported on first
use (`figures.base`), and each figure is written atomically in the format its suffix names.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .base import pyplot, save_figure

__all__ = ["encoding_profile_figure", "partition_figure"]

_DPI = 150


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


def partition_figure(rows: Sequence[dict], path: Path) -> Path:
    """Per ROI, bars of the mean unique R^2 of every feature space and the mean shared R^2 of
    every combination (the regions of the Venn diagram), of the group with several subjects,
    written to `path` (PNG, PDF or SVG by its suffix).

    Parameters
    ----------
    rows : sequence of dict
        The summary rows of a partition run (`PARTITION_COLUMNS`).
    path : path

    Returns
    -------
    Path
    """
    plt = pyplot()
    who = "group" if any(row["subject"] == "group" for row in rows) else rows[0]["subject"]
    chosen = [row for row in rows if row["subject"] == who and _untimed(row) and row["measure"] != "r2"]
    rois = list(dict.fromkeys(row["roi"] for row in chosen))
    parts = list(dict.fromkeys((row["measure"], row["spaces"]) for row in chosen))
    values = {(row["roi"], row["measure"], row["spaces"]): row["mean_r2"] for row in chosen}
    fig, ax = plt.subplots(figsize=(min(4 + 1.2 * len(rois) * len(parts) / 3, 20), 4.5))
    width = 0.8 / max(len(parts), 1)
    for index, (measure, spaces) in enumerate(parts):
        heights = [values.get((roi, measure, spaces), np.nan) for roi in rois]
        ax.bar(np.arange(len(rois)) + (index - (len(parts) - 1) / 2) * width, heights, width,
               label=f"{measure} {spaces}", hatch="//" if measure == "shared" else None)
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xticks(np.arange(len(rois)), rois)
    ax.set_ylabel("mean held-out R^2" + (" (group)" if who == "group" else f" ({who})"))
    ax.set_title("variance partitioning per ROI")
    ax.legend(fontsize="small")
    return save_figure(fig, path, _DPI)
