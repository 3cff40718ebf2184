"""Overlay PNGs of attribution maps, with FovEx's numbered scan path.

matplotlib is imported on first use (`figures.base`); every PNG is written atomically.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError, listed
from ..io.atomic import check_new_output
from .base import pyplot, save_figure

__all__ = ["overlay", "overlay_path", "overlay_outputs", "write_overlays"]


def overlay(image: np.ndarray, attribution: np.ndarray, path: Path, *, title: str,
            fixations: np.ndarray | None = None, box: Sequence[int] | None = None) -> Path:
    """The map (jet, half transparent) over the image (H, W, 3 uint8); fixations (k, 2)
    in pixels (row, col) drawn as a numbered path; an optional box (x0, y0, x1, y1).

    Parameters
    ----------
    image : array (H, W, 3) uint8
        The model's input image (resized and centre-cropped).
    attribution : array (H, W)
        The map, on a colour scale from 0 to 1 (alpha 0.45).
    path : path
        The PNG file (written atomically, replacing an existing one); its folder must exist.
    title : str
    fixations : array (k, 2), optional
        The fixations in scan order, numbered from 1.
    box : sequence of 4 int, optional
        (x0, y0, x1, y1) in the image's pixels, x1 and y1 exclusive; drawn in white.

    Returns
    -------
    Path
        `path`.

    Raises
    ------
    OutputError
        The folder is missing or not writable, or the write fails.
    """
    from matplotlib.patches import Rectangle

    height, width = attribution.shape
    figure, axes = pyplot().subplots(figsize=(4, 4 * height / width + 0.4))
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
    except BaseException:
        pyplot().close(figure)
        raise
    return save_figure(figure, path, 100)


def overlay_path(stimulus, folder: Path) -> Path:
    """The overlay of a stimulus: `<folder>/<file name without its suffix>.png`."""
    return folder / (Path(stimulus.id).name.rsplit(".", 1)[0] + ".png")


def overlay_outputs(stimuli, folder: Path) -> list:
    """The overlays of `stimuli` in `folder`, as outputs to check with the run's others
    (`net2brain_fovex.io.outputs.check_outputs`); refused at once: a `folder` that is a
    file or cannot be created, and two stimuli that would share an overlay name."""
    from ..errors import OutputError
    from ..io.outputs import Output

    if folder.exists() and not folder.is_dir():
        raise OutputError(f"`png_dir` {folder} is a file, not a folder; give a folder for the overlays")
    existing = next(p for p in (folder, *folder.parents) if p.exists() or p == Path(p.anchor or "."))
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"`png_dir` {folder} cannot be created in {existing}; choose a writable folder")
    seen: dict[Path, str] = {}
    for stimulus in stimuli:
        path = overlay_path(stimulus, folder)
        if path in seen:
            raise OutputError(f"`png_dir`: the overlays of {seen[path]} and {stimulus.id} would both be {path}; "
                              "rename one of the images")
        seen[path] = stimulus.id
    return [Output("png_dir", path, "png", folder_made=True) for path in seen]


def write_overlays(attribution_file: Path, stimuli, folder: Path, *, preprocessing, overwrite: bool = False,
                   boxes: dict[str, Sequence[int]] | None = None) -> list[Path]:
    """One overlay per image of an attribution file, named after the image (`<id>.png`).

    Each title gives the stimulus id, the method, the explained class and its probability;
    FovEx's fixations are drawn as its scan path (`overlay`).

    Parameters
    ----------
    attribution_file : path
        A file written by `explain_to_file`.
    stimuli : sequence of Stimulus
        Stimuli of the file: each gets the map of its id.
    folder : path
        An existing folder; the overlay of `a/b.jpg` is `folder / "b.png"` (`overlay_path`).
    preprocessing : Preprocessing
        The model's: crops every image as it was cropped for the map.
    overwrite : bool, default False
        Replace existing overlays.
    boxes : dict of str to sequence of 4 int, optional
        One box (x0, y0, x1, y1) per stimulus id, in input pixels.

    Returns
    -------
    list of Path
        In the order of `stimuli`.

    Raises
    ------
    InputError
        An attribution file or an image that cannot be read, or a stimulus the file holds
        no map of.
    OutputError
        An overlay exists and `overwrite` is False, or `folder` is missing or not writable.
    """
    from ..explain.attributions import read_attributions
    from ..extraction.stimuli import load_image

    content = read_attributions(attribution_file)
    method = content["attrs"]["method"]
    rows = {stimulus_id: row for row, stimulus_id in enumerate(content["stimuli"])}
    missing = [stimulus.id for stimulus in stimuli if stimulus.id not in rows]
    if missing:
        raise InputError(f"{attribution_file} holds no map of {listed(missing)}; draw the overlays of its own stimuli")
    paths = []
    for stimulus in stimuli:
        index = rows[stimulus.id]
        path = check_new_output(overlay_path(stimulus, folder), overwrite)
        image = preprocessing.crop_image(load_image(stimulus.path)).permute(1, 2, 0).numpy()
        fixations = content["fixations"][index] if "fixations" in content else None
        title = f"{stimulus.id}: {method}, class {int(content['targets'][index])} (p = {content['scores'][index]:.2f})"
        box = boxes.get(stimulus.id) if boxes else None
        paths.append(overlay(image, content["maps"][index], path, title=title, fixations=fixations, box=box))
    return paths
