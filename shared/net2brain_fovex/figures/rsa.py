"""The RSA figure: the best layer per ROI with its noise ceiling, and the profiles over layers.

matplotlib is imported on first use (`figures.base`), so importing this module costs
nothing; every PNG is written atomically.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .base import pyplot, save_figure

__all__ = ["significance_stars", "rsa_figure"]

_DPI = 150
_STAR_LEVELS = ((0.001, "***"), (0.01, "**"), (0.05, "*"))


def significance_stars(p: float) -> str:
    """Stars for a p-value: *** below 0.001, ** below 0.01, * below 0.05, else ""."""
    if math.isnan(p):
        return ""
    return next((stars for level, stars in _STAR_LEVELS if p < level), "")


def rsa_figure(results: Sequence[Any], path: Path, measure: str) -> Path:
    """Write the RSA summary (best layer per ROI; score per layer) to the PNG `path`.

    Left: per ROI a bar for its best layer (the highest score, NaN ignored), with its SEM,
    the noise ceiling as a grey band and stars of `p_corrected` (`significance_stars`).
    Right: every ROI's score over the layers, with its SEM shaded.

    Parameters
    ----------
    results : sequence of ROIResult
        Untimed results, with arrays (layers,): `rsa_to_file` passes the aggregate over time
        of time-resolved ones. Used: roi, layers, score, sem, p_corrected, lnc and unc.
    path : path
        The PNG file; its folder must exist.
    measure : str
        The label of the score axes (`RSAParameters.measure`, as `spearman r^2`).

    Returns
    -------
    Path
        `path`.

    Raises
    ------
    OutputError
        The folder is missing or not writable, or the write fails.
    """
    plt = pyplot()
    layers = list(dict.fromkeys(layer for result in results for layer in result.layers))
    width = 6 + 0.4 * len(layers) + 0.5 * len(results)
    fig, (best_ax, profile_ax) = plt.subplots(1, 2, figsize=(min(width, 24), 5))
    _best_layer_panel(best_ax, results, measure)
    _layer_profile_panel(profile_ax, results, layers, measure)
    return save_figure(fig, path, _DPI)


def _best_index(score: np.ndarray) -> int | None:
    """Index of the highest score ignoring NaN; None when every score is NaN."""
    score = np.asarray(score, dtype=float)
    if np.isnan(score).all():
        return None
    return int(np.nanargmax(score))


def _best_layer_panel(ax, results: Sequence[Any], measure: str) -> None:
    """Per ROI a bar for its best layer, with SEM, noise ceiling and significance stars."""
    names = []
    for x, result in enumerate(results):
        best = _best_index(result.score)
        if best is None:
            names.append(f"{result.roi}\n(no score)")
            continue
        names.append(f"{result.roi}\n{result.layers[best]}")
        _noise_ceiling(ax, x, result.lnc[best], result.unc[best])
        ax.bar(x, result.score[best], width=0.6, yerr=result.sem[best], capsize=4, color="tab:blue", zorder=2)
        _stars(ax, x, result.score[best], result.sem[best], result.p_corrected[best])
    ax.set_xticks(range(len(results)), names)
    ax.set_xlim(-0.6, len(results) - 0.4)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel(measure)
    ax.set_title("best layer per ROI (grey: noise ceiling)")


def _noise_ceiling(ax, x: float, lower: float, upper: float) -> None:
    """A grey band from `lower` to `upper` behind the bar at `x`, when both are known."""
    from matplotlib.patches import Rectangle

    if not (np.isfinite(lower) and np.isfinite(upper)):
        return
    band = Rectangle((x - 0.4, lower), 0.8, upper - lower, color="lightgrey", zorder=1)
    ax.add_patch(band)


def _stars(ax, x: float, score: float, sem: float, p: float) -> None:
    """Write the significance stars of `p` just above the bar's error bar."""
    stars = significance_stars(float(p))
    if not stars:
        return
    top = score + (sem if np.isfinite(sem) else 0.0)
    ax.annotate(stars, (x, max(top, 0.0)), xytext=(0, 3), textcoords="offset points", ha="center", va="bottom")


def _layer_profile_panel(ax, results: Sequence[Any], layers: list[str], measure: str) -> None:
    """One line per ROI over the layers, with the SEM as a shaded band."""
    position = {layer: i for i, layer in enumerate(layers)}
    for result in results:
        x = [position[layer] for layer in result.layers]
        score = np.asarray(result.score, dtype=float)
        sem = np.asarray(result.sem, dtype=float)
        (line,) = ax.plot(x, score, marker="o", label=result.roi)
        ax.fill_between(x, score - sem, score + sem, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xticks(range(len(layers)), layers, rotation=45, ha="right")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlabel("layer")
    ax.set_ylabel(measure)
    ax.set_title("score per layer")
    if results:
        ax.legend(title="ROI", fontsize="small")
