"""Ground truth for evaluating explanations: object boxes and human fixations.

Both are given in the pixels of the original image files, as annotations come
(ImageNet boxes, MIT1003 fixations), and are carried onto the model's input (resized
and centre-cropped, `Preprocessing.geometry`) before they meet the maps.

* Boxes: a CSV with the columns image, x0, y0, x1, y1 (x1 and y1 exclusive, 0 <= x0 <
  x1 <= width, 0 <= y0 < y1 <= height); an image may have several rows (several objects,
  their union is the region).
* Fixations: a CSV with the columns image, row, col (further columns, such as a subject,
  are ignored), or a folder of fixation-map images (the image's size), named like the
  stimulus (`street.jpg` -> `street.png` or `street_fixPts.jpg`); stimuli without a map
  are left out.
* The MIT1003 data set (Judd et al., "Learning to predict where humans look", ICCV
  2009) as it comes: its root folder (or its ALLFIXATIONMAPS folder itself), whose
  ALLFIXATIONMAPS holds for each stimulus ALLSTIMULI/<name>.jpeg the fixation points
  `<name>_fixPts.jpg` and the fixation density `<name>_fixMap.jpg`. Stimuli are matched
  by <name>, their file name without its extension; every evaluated stimulus needs
  both maps (a missing one is named).

In a fixation-point map, the fixated pixels are the non-zero ones; in a JPEG, the ones
above half the range (> 127.5 of 255), because compression spreads faint non-zero
values (up to about 40) around each point while the points keep about 240 or more.

The `image` column holds stimulus ids (the file name within the images folder).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InputError
from ..extraction.stimuli import IMAGE_EXTENSIONS, Stimulus, pixel_values
from ..io.tables import read_csv_rows
from ..models.preprocessing import Preprocessing

__all__ = ["read_boxes", "read_fixations", "read_density_maps", "boxes_to_input", "points_to_input",
           "density_to_input", "mit1003_maps", "image_size"]

MIT1003_MAPS = "ALLFIXATIONMAPS"  # the data set's folder of fixation maps
POINTS, DENSITY = "_fixPts", "_fixMap"  # the data set's suffixes: fixation points, fixation density
LOSSY = (".jpg", ".jpeg")  # formats whose maps are thresholded at half the range


def read_boxes(path: str | Path, stimuli: Sequence[Stimulus]) -> dict[str, np.ndarray]:
    """Boxes per stimulus id, (k, 4) int64 in original pixels, checked against the images.

    Parameters
    ----------
    path : path
        A UTF-8 CSV with the columns image, x0, y0, x1, y1 (x1 and y1 exclusive; the module
        docstring), one row per box.
    stimuli : sequence of Stimulus
        The evaluated images: the `image` column holds their ids; their files give the sizes.

    Returns
    -------
    dict of str to ndarray (k, 4) int64
        (x0, y0, x1, y1) per box, in file order; only stimuli with a box appear.

    Raises
    ------
    InputError
        A missing file or column, a value that is not a whole number, an empty or
        inverted box, a box outside its image, or an image that is not among the stimuli.
        Also a file that is empty, has no rows or is not UTF-8 CSV, and an unreadable image.
    """
    rows = read_csv_rows(path, ("image", "x0", "y0", "x1", "y1"))
    paths = {s.id: s.path for s in stimuli}
    boxes: dict[str, list] = {}
    for line, row in rows:
        where = f"{path}, line {line}"
        image = _known_image(row["image"], paths, where)
        x0, y0, x1, y1 = (_whole_number(row[key], key, where) for key in ("x0", "y0", "x1", "y1"))
        width, height = image_size(paths[image])
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise InputError(
                f"{where}: box ({x0}, {y0}, {x1}, {y1}) is empty or outside {image} ({width} x {height} px); "
                "boxes are x0, y0, x1, y1 in the image's pixels with 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height"
            )
        boxes.setdefault(image, []).append((x0, y0, x1, y1))
    return {image: np.array(values, dtype=np.int64) for image, values in boxes.items()}


def read_fixations(path: str | Path, stimuli: Sequence[Stimulus]) -> dict[str, np.ndarray]:
    """Fixations per stimulus id, (k, 2) float64 (row, col) in original pixels.

    Parameters
    ----------
    path : path
        A UTF-8 CSV with the columns image, row, col (further columns ignored), a folder
        of fixation-map images, or an MIT1003 folder (the module docstring).
    stimuli : sequence of Stimulus
        The evaluated images: their ids name the rows or the maps; their files give the sizes.

    Returns
    -------
    dict of str to ndarray (k, 2) float64
        From a CSV: the points in file order, for the stimuli that have a row; a point may
        lie anywhere within its image's pixels (-0.5 <= row < height - 0.5, the same for
        col). From a folder: the fixated pixels of each map, in row-major order; stimuli
        without a map are left out (in an MIT1003 folder they are refused), and maps of
        no stimulus are ignored.

    Raises
    ------
    InputError
        A missing file or column, a coordinate that is not a number or lies outside its
        image, an unknown image, a fixation map of another size than its image, or a
        stimulus without its maps in an MIT1003 folder.
        Also a CSV that is empty or has no rows, a folder without images, and an unreadable
        image or map.
    """
    path = Path(path)
    if path.is_dir():
        folder = mit1003_maps(path)
        if folder is not None:
            found = _mit1003_files(path, folder, stimuli, POINTS)
            return {s.id: _fixated_pixels(found[s.id], s) for s in stimuli}
        return _fixation_maps(path, stimuli)
    paths = {s.id: s.path for s in stimuli}
    points: dict[str, list] = {}
    for line, row in read_csv_rows(path, ("image", "row", "col")):
        where = f"{path}, line {line}"
        image = _known_image(row["image"], paths, where)
        try:
            r, c = float(row["row"]), float(row["col"])
        except ValueError:
            raise InputError(f"{where}: row and col must be numbers, got {row['row']!r} and {row['col']!r}") from None
        width, height = image_size(paths[image])
        if not (math.isfinite(r) and math.isfinite(c) and -0.5 <= r < height - 0.5 and -0.5 <= c < width - 0.5):
            raise InputError(
                f"{where}: fixation (row {r}, col {c}) lies outside {image} ({width} x {height} px); "
                "rows and cols are pixel indices of the original image"
            )
        points.setdefault(image, []).append((r, c))
    return {image: np.array(values, dtype=np.float64) for image, values in points.items()}


def boxes_to_input(boxes: np.ndarray, size: tuple[int, int], preprocessing: Preprocessing) -> np.ndarray:
    """Boxes (k, 4) of an image of `size` (width, height) in input pixels: every input
    pixel the box touches, clipped to the crop (a box outside the crop becomes empty)."""
    x_scale, y_scale, left, top = preprocessing.geometry(*size)
    crop = preprocessing.crop
    x = np.stack([np.floor(boxes[:, 0] * x_scale - left), np.ceil(boxes[:, 2] * x_scale - left)], axis=1)
    y = np.stack([np.floor(boxes[:, 1] * y_scale - top), np.ceil(boxes[:, 3] * y_scale - top)], axis=1)
    x, y = np.clip(x, 0, crop).astype(np.int64), np.clip(y, 0, crop).astype(np.int64)
    return np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], axis=1)


def points_to_input(points: np.ndarray, size: tuple[int, int], preprocessing: Preprocessing) -> np.ndarray:
    """Points (k, 2) (row, col) of an image of `size` (width, height) in input pixels,
    pixel centre to pixel centre (points outside the crop are kept; callers drop them)."""
    x_scale, y_scale, left, top = preprocessing.geometry(*size)
    rows = (points[:, 0] + 0.5) * y_scale - 0.5 - top
    cols = (points[:, 1] + 0.5) * x_scale - 0.5 - left
    return np.stack([rows, cols], axis=1)


def read_density_maps(path: str | Path, stimuli: Sequence[Stimulus]) -> dict[str, Path] | None:
    """The fixation-density maps of an MIT1003 folder per stimulus id, checked; None
    for other fixations (a CSV, a plain folder of maps).

    Parameters
    ----------
    path : path
        What `read_fixations` takes.
    stimuli : sequence of Stimulus
        The evaluated images, matched by their file names without extension.

    Returns
    -------
    dict of str to Path, or None
        `ALLFIXATIONMAPS/<name>_fixMap.jpg` of every stimulus.

    Raises
    ------
    InputError
        A stimulus without its map, or a map of another size than its image (read from
        the headers).
    """
    path = Path(path)
    folder = mit1003_maps(path) if path.is_dir() else None
    if folder is None:
        return None
    found = _mit1003_files(path, folder, stimuli, DENSITY)
    for stimulus in stimuli:
        _check_size(found[stimulus.id], image_size(found[stimulus.id]), stimulus)
    return found


def density_to_input(path: Path, preprocessing: Preprocessing) -> np.ndarray:
    """A fixation-density image (the size of its stimulus) carried onto the input as the
    stimulus is (`Preprocessing.crop_image`: resize, centre crop), its grey level
    clipped at 0 (interpolation can overshoot) and divided by its sum: (crop, crop)
    float64 summing to 1, or all 0 where nothing of it is left."""
    grey = pixel_values(path).mean(axis=-1, dtype=np.float32)
    values = preprocessing.crop_image(Image.fromarray(grey))[0].numpy().astype(np.float64).clip(min=0)
    total = values.sum()
    return values / total if total > 0 else values


def mit1003_maps(path: Path) -> Path | None:
    """The ALLFIXATIONMAPS folder of an MIT1003 layout at `path` (its root or that folder), else None."""
    if (path / MIT1003_MAPS).is_dir():
        return path / MIT1003_MAPS
    return path if path.name == MIT1003_MAPS else None


def _mit1003_files(given: Path, folder: Path, stimuli: Sequence[Stimulus], suffix: str) -> dict[str, Path]:
    """`<name><suffix>.<ext>` of every stimulus in an MIT1003 fixation-map folder, or an
    `InputError` naming the first stimulus without one."""
    candidates: dict[str, Path] = {}
    for candidate in sorted(folder.iterdir()):  # sorted: .jpg before .png where both exist
        if candidate.suffix.lower() in IMAGE_EXTENSIONS:
            candidates.setdefault(candidate.stem, candidate)
    found = {}
    for stimulus in stimuli:
        name = f"{Path(stimulus.id).stem}{suffix}"
        if name not in candidates:
            kind = "fixation points" if suffix == POINTS else "fixation density"
            raise InputError(
                f"MIT1003 folder {given} has no {kind} map {folder / name}.jpg for stimulus {stimulus.id}; "
                f"{MIT1003_MAPS} needs <name>{POINTS}.jpg and <name>{DENSITY}.jpg for every evaluated image"
            )
        found[stimulus.id] = candidates[name]
    return found


def _fixation_maps(folder: Path, stimuli: Sequence[Stimulus]) -> dict[str, np.ndarray]:
    candidates = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS}
    if not candidates:
        raise InputError(f"{folder} holds no fixation-map images; give a folder of maps or a CSV (image, row, col)")
    points = {}
    for stimulus in stimuli:
        stem = Path(stimulus.id).stem
        found = candidates.get(stem) or candidates.get(f"{stem}{POINTS}")
        if found is not None:
            points[stimulus.id] = _fixated_pixels(found, stimulus)
    return points


def _fixated_pixels(path: Path, stimulus: Stimulus) -> np.ndarray:
    """The fixated pixels (k, 2) (row, col) float64 of a fixation-point map of `stimulus`,
    row-major, after checking that the map has the image's size (module docstring)."""
    values = pixel_values(path).max(axis=-1)  # a fixation map of any depth, in [0, 255]
    fixated = values > 127.5 if path.suffix.lower() in LOSSY else values > 0
    _check_size(path, (fixated.shape[1], fixated.shape[0]), stimulus)
    return np.argwhere(fixated).astype(np.float64)


def _check_size(path: Path, size: tuple[int, int], stimulus: Stimulus) -> None:
    """An `InputError` when a fixation map of `size` (width, height) is not its image's size."""
    width, height = image_size(stimulus.path)
    if size != (width, height):
        raise InputError(
            f"fixation map {path} is {size[0]} x {size[1]} px but {stimulus.id} is "
            f"{width} x {height} px; a fixation map must have its image's size"
        )


def _known_image(name: str | None, paths: dict[str, Path], where: str) -> str:
    if name not in paths:
        raise InputError(f"{where}: image {name!r} is not among the evaluated images; use the stimulus ids (file names)")
    return name


def _whole_number(value: str | None, key: str, where: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {key} must be a whole number of pixels, got {value!r}") from None
    if not number.is_integer():
        raise InputError(f"{where}: {key} must be a whole number of pixels, got {value!r}")
    return int(number)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file, from its header."""
    try:
        with Image.open(path) as image:
            return image.size
    except OSError as error:
        raise InputError(f"{path} is not a readable image ({error}); replace or remove it") from None
