"""The mean deletion and insertion curves of `evaluate_to_file`, per method."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import pyplot, save_figure

__all__ = ["curves_figure"]


def curves_figure(values: dict[str, dict[str, np.ndarray]], path: Path) -> Path:
    """Mean deletion and insertion curves per method (label: its values from
    `net2brain_fovex.evaluate.evaluation.read_curves`), with each mean area in the legend.

    One panel per kind (deletion, insertion) that some label holds. Each curve is the mean
    over images against the fraction of pixels, from 0 to 1; the legend's area is the mean
    over images with NaN ignored.

    Parameters
    ----------
    values : dict of str to dict of str to array
        Per label: `deletion_curve` / `insertion_curve` (images, steps + 1) and `deletion` /
        `insertion` (images,), the areas. Every label must hold each kind that is drawn.
    path : path
        The PNG file; its folder must exist.

    Returns
    -------
    Path
        `path`.

    Raises
    ------
    OutputError
        The folder is missing or not writable, or the write fails.
    """
    kinds = [k for k in ("deletion", "insertion") if any(f"{k}_curve" in v for v in values.values())]
    figure, axes = pyplot().subplots(1, len(kinds), figsize=(5 * len(kinds), 4), squeeze=False)
    try:
        for axis, kind in zip(axes[0], kinds, strict=True):
            for label, content in values.items():
                curve = content[f"{kind}_curve"].mean(axis=0)
                fraction = np.linspace(0, 1, len(curve))
                axis.plot(fraction, curve, label=f"{label} (AUC {np.nanmean(content[kind]):.3f})")
            axis.set_title(f"{kind} ({'lower' if kind == 'deletion' else 'higher'} is better)")
            axis.set_xlabel("fraction of pixels " + ("deleted" if kind == "deletion" else "inserted"))
            axis.set_ylabel("probability of the explained class")
            axis.set_ylim(0, None)
            axis.legend(fontsize=8)
    except BaseException:
        pyplot().close(figure)
        raise
    return save_figure(figure, path, 120)
