"""Figures for `net2brain rdm` and `net2brain rsa`: RDM heat maps and RSA summaries.

matplotlib is imported inside the functions, on the "Agg" backend, so that importing this
module costs nothing and plotting works without a display. Every PNG is written through
`atomic_output`, so a file with the final name is always a complete figure.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shared.storage import atomic_output

_DPI = 150
# Beyond this many stimuli the tick labels overlap into an unreadable block.
_MAX_TICK_LABELS = 40
_STAR_LEVELS = ((0.001, "***"), (0.01, "**"), (0.05, "*"))


def significance_stars(p: float) -> str:
    """Stars for a p-value: *** below 0.001, ** below 0.01, * below 0.05, else ""."""
    if math.isnan(p):
        return ""
    return next((stars for level, stars in _STAR_LEVELS if p < level), "")


def rdm_heatmap(matrix: np.ndarray, title: str, path: Path, labels: list[str] | None = None) -> Path:
    """Write a heat map of the square RDM `matrix` to the PNG `path` and return `path`."""
    matrix = np.asarray(matrix, dtype=float)
    n = _check_square(matrix)
    if labels is not None and len(labels) != n:
        raise ValueError(f"{len(labels)} labels for an RDM of {n} stimuli")
    import matplotlib

    plt = _pyplot()
    # with_extremes, not set_bad: matplotlib 3.11 marks set_bad for deprecation.
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="grey")
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(matrix, cmap=cmap, interpolation="nearest")
    fig.colorbar(image, ax=ax, label="dissimilarity")
    ax.set_title(title)
    _stimulus_ticks(ax, labels if n <= _MAX_TICK_LABELS else None)
    return _save(fig, path)


def rsa_figure(results: Sequence[Any], path: Path, measure: str) -> Path:
    """Write the RSA summary (best layer per ROI; score per layer) to the PNG `path`."""
    plt = _pyplot()
    layers = list(dict.fromkeys(layer for result in results for layer in result.layers))
    width = 6 + 0.4 * len(layers) + 0.5 * len(results)
    fig, (best_ax, profile_ax) = plt.subplots(1, 2, figsize=(min(width, 24), 5))
    _best_layer_panel(best_ax, results, measure)
    _layer_profile_panel(profile_ax, results, layers, measure)
    return _save(fig, path)


def _pyplot():
    """pyplot on the display-free Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    """Write `fig` atomically to `path` as a PNG, close it and return `path`."""
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        fig.tight_layout()
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format="png", dpi=_DPI)
    finally:
        plt.close(fig)
    return path


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
