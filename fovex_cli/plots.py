"""Overlay PNGs of attribution maps, with FovEx's numbered scan path.

matplotlib is imported on first use, on the "Agg" backend; every PNG is written through
`atomic_output`.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from shared.storage import atomic_output, check_new_output


def overlay(image: np.ndarray, attribution: np.ndarray, path: Path, title: str, fixations: np.ndarray | None = None,
            box: Sequence[int] | None = None) -> Path:
    """The map (jet, half transparent) over the image (H, W, 3 uint8); fixations (k, 2)
    in pixels (row, col) drawn as a numbered path; an optional box (x0, y0, x1, y1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    height, width = attribution.shape
    figure, axes = plt.subplots(figsize=(4, 4 * height / width + 0.4))
    try:
        axes.imshow(image)
        axes.imshow(attribution, cmap="jet", alpha=0.45, vmin=0, vmax=1)
        if box is not None:
            x0, y0, x1, y1 = box
            axes.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor="white", linewidth=1.5))
        if fixations is not None:
            rows, cols = fixations[:, 0], fixations[:, 1]
            axes.plot(cols, rows, "-", color="white", linewidth=1.2)
            axes.scatter(cols, rows, s=90, facecolor="black", edgecolor="white", zorder=3)
            for number, (row, col) in enumerate(fixations, start=1):
                axes.text(col, row, str(number), color="white", fontsize=7, ha="center", va="center", zorder=4)
        axes.set_title(title, fontsize=8)
        axes.set_axis_off()
        figure.tight_layout()
        with atomic_output(path) as tmp:
            figure.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(figure)
    return path


def overlay_path(stimulus, folder: Path) -> Path:
    """The overlay of a stimulus: `<folder>/<file name without its suffix>.png`."""
    return folder / (Path(stimulus.id).name.rsplit(".", 1)[0] + ".png")


def check_overlays(stimuli, folder: Path, overwrite: bool) -> None:
    """Refuse, before any work, overlays that cannot be written: `folder` is a file, an
    overlay exists (without `overwrite`), or two stimuli would share an overlay name."""
    from shared.errors import OutputError

    if folder.exists() and not folder.is_dir():
        raise OutputError(f"--png-dir {folder} is a file, not a folder; give a folder for the overlays")
    existing = next(p for p in (folder, *folder.parents) if p.exists() or p == Path(p.anchor or "."))
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"--png-dir {folder} cannot be created in {existing}; choose a writable folder")
    seen: dict[Path, str] = {}
    for stimulus in stimuli:
        path = overlay_path(stimulus, folder)
        if path in seen:
            raise OutputError(f"--png-dir: the overlays of {seen[path]} and {stimulus.id} would both be {path}; "
                              "rename one of the images")
        seen[path] = stimulus.id
        if folder.is_dir():
            check_new_output(path, overwrite)


def write_overlays(attribution_file: Path, stimuli, preprocessing, folder: Path, overwrite: bool,
                   boxes: dict[str, Sequence[int]] | None = None) -> list[Path]:
    """One overlay per image of an attribution file, named after the image (`<id>.png`)."""
    from shared.attribution.explain import read_attributions
    from shared.stimuli import load_image

    content = read_attributions(attribution_file)
    method = content["attrs"]["method"]
    paths = []
    for index, stimulus in enumerate(stimuli):
        path = check_new_output(overlay_path(stimulus, folder), overwrite)
        image = preprocessing.crop_image(load_image(stimulus.path)).permute(1, 2, 0).numpy()
        fixations = content["fixations"][index] if "fixations" in content else None
        title = f"{stimulus.id}: {method}, class {int(content['targets'][index])} (p = {content['scores'][index]:.2f})"
        box = boxes.get(stimulus.id) if boxes else None
        paths.append(overlay(image, content["maps"][index], path, title, fixations, box))
    return paths


def summary_table(summary: Sequence[dict], labels: Sequence[str], metrics: Sequence[str]):
    """A rich table of mean +- SEM, metrics as rows and methods as columns; the best
    mean of each row is bold and starred (by the metric's direction of better)."""
    from rich.table import Table

    from shared.evaluation import METRICS

    cells = {(row["method"], row["metric"]): row for row in summary}
    table = Table(title="explanation metrics (mean +- SEM; * best)")
    table.add_column("metric")
    table.add_column("better")
    for label in labels:
        table.add_column(label, justify="right")
    for name in metrics:
        means = [cells[label, name]["mean"] for label in labels]
        finite = [m for m in means if np.isfinite(m)]
        best = (min(finite) if METRICS[name].better == "lower" else max(finite)) if finite else None
        row = [name, METRICS[name].better]
        for label, mean in zip(labels, means):
            text = f"{mean:.4g} +- {cells[label, name]['sem']:.2g}"
            row.append(f"[bold]{text} *[/bold]" if best is not None and len(labels) > 1 and mean == best else text)
        table.add_row(*row)
    return table


def curves_figure(values: dict[str, dict[str, np.ndarray]], path: Path) -> Path:
    """Mean deletion and insertion curves per method (label: its values from
    `shared.evaluation.read_curves`), with each mean area in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k in ("deletion", "insertion") if any(f"{k}_curve" in v for v in values.values())]
    figure, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 4), squeeze=False)
    try:
        for axis, kind in zip(axes[0], kinds):
            for label, content in values.items():
                curve = content[f"{kind}_curve"].mean(axis=0)
                fraction = np.linspace(0, 1, len(curve))
                axis.plot(fraction, curve, label=f"{label} (AUC {np.nanmean(content[kind]):.3f})")
            axis.set_title(f"{kind} ({'lower' if kind == 'deletion' else 'higher'} is better)")
            axis.set_xlabel("fraction of pixels " + ("deleted" if kind == "deletion" else "inserted"))
            axis.set_ylabel("probability of the explained class")
            axis.set_ylim(0, None)
            axis.legend(fontsize=8)
        figure.tight_layout()
        with atomic_output(path) as tmp:
            figure.savefig(tmp, format="png", dpi=120)
    finally:
        plt.close(figure)
    return path
