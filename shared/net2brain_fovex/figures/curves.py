"""The mean deletion and insertion curves of `evaluate_to_file`, per method."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import InputError
from .base import pyplot, save_figure

__all__ = ["curves_figure"]


def curves_figure(values: dict[str, dict[str, np.ndarray]], path: Path) -> Path:
    """Mean deletion and insertion curves per method (label: its values from
    `net2brain_fovex.evaluate.evaluation.read_curves`), with each mean area in the legend.

    One panel per kind (deletion, insertion) that some label holds, with the labels that
    hold it. Each curve is the mean over images (NaN ignored) against the fraction of
    pixels, from 0 to 1; the legend's area is the mean over images with NaN ignored.

    Parameters
    ----------
    values : dict of str to dict of str to array
        Per label: `deletion_curve` / `insertion_curve` (images, steps + 1) and `deletion` /
        `insertion` (images,), the areas.
    path : path
        The PNG file; its folder must exist.

    Returns
    -------
    Path
        `path`.

    Raises
    ------
    InputError
        No label holds a curve.
    OutputError
        The folder is missing or not writable, or the write fails.
    """
    kinds = [k for k in ("deletion", "insertion") if any(f"{k}_curve" in v for v in values.values())]
    if not kinds:
        raise InputError("there are no deletion or insertion curves to draw; evaluate with those metrics")
    figure, axes = pyplot().subplots(1, len(kinds), figsize=(5 * len(kinds), 4), squeeze=False)
    try:
        for axis, kind in zip(axes[0], kinds, strict=True):
            for label, content in values.items():
                if f"{kind}_curve" not in content:
                    continue
                with warnings.catch_warnings():  # a step (or an area) NaN in every image stays NaN
                    warnings.simplefilter("ignore", RuntimeWarning)
                    curve, area = np.nanmean(content[f"{kind}_curve"], axis=0), np.nanmean(content[kind])
                axis.plot(np.linspace(0, 1, len(curve)), curve, label=f"{label} (AUC {area:.3f})")
            axis.set_title(f"{kind} ({'lower' if kind == 'deletion' else 'higher'} is better)")
            axis.set_xlabel("fraction of pixels " + ("deleted" if kind == "deletion" else "inserted"))
            axis.set_ylabel("probability of the explained class")
            axis.set_ylim(0, None)
            axis.legend(fontsize=8)
    except BaseException:
        pyplot().close(figure)
        raise
    return save_figure(figure, path, 120)
