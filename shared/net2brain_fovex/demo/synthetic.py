"""Synthetic data with known structure for the demos and tests.

`shape_stimuli` draws every combination of a few shapes, colours and positions on a
lightly textured background. The factors of each image are kept, so later steps can
plant ground truth on them (a "brain" region that codes shape, another colour, ...).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..checks import check_range
from ..errors import ConfigError, unknown_name
from ..io.atomic import atomic_output

__all__ = ["simulate_voxel_responses", "SHAPES", "COLOURS", "POSITIONS", "ShapeStimulus", "shape_stimuli", "write_shape_stimuli",
           "simulate_brain_rdms", "simulate_volumes"]

SHAPES = ("circle", "square", "triangle", "cross")
COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220)}
POSITIONS = {"left": (0.3, 0.5), "right": (0.7, 0.5)}


@dataclass(frozen=True)
class ShapeStimulus:
    """One generated image and the factors it was drawn from."""

    id: str
    shape: str
    colour: str
    position: str
    image: Image.Image


def shape_stimuli(size: int = 224, seed: int = 0) -> list[ShapeStimulus]:
    """All shape x colour x position combinations (4 x 3 x 2 = 24 images of `size` px),
    with seeded background texture so that no two images are identical.

    Parameters
    ----------
    size : int, default 224
        Width and height of each RGB image, in pixels.
    seed : int, default 0
        Seed of the background texture (grey Gaussian noise).

    Returns
    -------
    list of ShapeStimulus
        In the order of `SHAPES`, `COLOURS` and `POSITIONS`, the position varying fastest,
        with ids `stim_01_circle_red_left.png` .. `stim_24_cross_blue_right.png`.
    """
    rng = np.random.default_rng(seed)
    items = []
    combos = itertools.product(SHAPES, COLOURS, POSITIONS)
    for index, (shape, colour, position) in enumerate(combos, start=1):
        background = rng.normal(128, 12, (size, size, 1)).clip(0, 255).repeat(3, axis=2).astype(np.uint8)
        image = Image.fromarray(background)
        _draw(ImageDraw.Draw(image), shape, COLOURS[colour], POSITIONS[position], size)
        items.append(ShapeStimulus(f"stim_{index:02d}_{shape}_{colour}_{position}.png", shape, colour, position, image))
    return items


def _draw(draw: ImageDraw.ImageDraw, shape: str, colour: tuple, centre: tuple, size: int) -> None:
    cx, cy = centre[0] * size, centre[1] * size
    r = size * 0.16
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif shape == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    else:
        w = r / 3
        draw.rectangle([cx - r, cy - w, cx + r, cy + w], fill=colour)
        draw.rectangle([cx - w, cy - r, cx + w, cy + r], fill=colour)


def write_shape_stimuli(items: list[ShapeStimulus], folder: str | Path) -> Path:
    """Write the images as PNG files and their factors as `factors.csv` beside the folder
    (so the folder itself holds only stimuli). Returns the folder.

    `factors.csv` (in the folder's parent) has the columns stimulus, shape, colour and
    position, one row per item. Every file is written atomically; existing files of the
    same names are replaced.

    Parameters
    ----------
    items : list of ShapeStimulus
        As `shape_stimuli` makes them; each image is written as `folder / item.id`.
    folder : path
        Created (with its parents) when missing.

    Returns
    -------
    Path
        `folder`.

    Raises
    ------
    OutputError
        A file cannot be written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for item in items:
        with atomic_output(folder / item.id) as tmp:
            item.image.save(tmp, format="PNG")
    with atomic_output(folder.parent / "factors.csv") as tmp:
        rows = ["stimulus,shape,colour,position"] + [f"{i.id},{i.shape},{i.colour},{i.position}" for i in items]
        tmp.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def simulate_brain_rdms(
    model_rdms: dict[str, np.ndarray], generators: dict[str, str], *, subjects: int = 8, noise: float = 1.0,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Brain RDMs with a known answer: ROI `roi` of every subject is the RDM of layer
    `generators[roi]` (its upper triangle z-scored) plus independent Gaussian noise of
    standard deviation `noise`, shifted to be non-negative. Returns {roi: (subjects, n, n)}.

    The shift subtracts the smallest value over all the ROI's subjects (one constant for
    all of them); the diagonals are 0.

    Parameters
    ----------
    model_rdms : dict of str to array (n, n)
        The layers' RDMs.
    generators : dict of str to str
        ROI name -> the layer of `model_rdms` it is made from.
    subjects : int, default 8
    noise : float, default 1.0
        The noise's standard deviation, in units of the z-scored signal.
    seed : int, default 0
        Seed of the noise; the ROIs draw in the order of `generators`.

    Returns
    -------
    dict of str to ndarray (subjects, n, n)
        In the order of `generators`.

    Raises
    ------
    UnknownNameError
        A layer of `generators` that is not in `model_rdms`.
    ConfigError
        `subjects` below 1, `noise` negative or not finite, or `seed` out of range.
    """
    from scipy.spatial.distance import squareform

    from ..brain.rsa import upper_triangle

    for roi, layer in generators.items():
        if layer not in model_rdms:
            raise unknown_name(f"layer (the generator of ROI {roi!r})", layer, model_rdms)
    if isinstance(subjects, bool) or not isinstance(subjects, int) or subjects < 1:
        raise ConfigError(f"`subjects` must be a whole number of at least 1, got {subjects!r}")
    if not (isinstance(noise, (int, float)) and math.isfinite(noise) and noise >= 0):
        raise ConfigError(f"`noise` must be a finite number of 0 or more, got {noise!r}")
    check_range("seed", seed)
    rng = np.random.default_rng(seed)
    simulated = {}
    for roi, layer in generators.items():
        signal = upper_triangle(model_rdms[layer])
        signal = (signal - signal.mean()) / signal.std()
        noisy = signal + noise * rng.normal(size=(subjects, signal.size))
        noisy -= noisy.min()
        simulated[roi] = np.stack([squareform(vector) for vector in noisy])
    return simulated


def simulate_volumes(
    layer_rdms: dict[str, np.ndarray],
    plants: dict[str, tuple[int, int, int]],
    *,
    shape: tuple[int, int, int] = (16, 16, 12),
    voxel_size: float = 2.0,
    radius: float = 6.0,
    subjects: int = 4,
    noise: float = 0.5,
    seed: int = 0,
) -> tuple[list[np.ndarray], np.ndarray]:
    """4D response volumes (X, Y, Z, stimuli) with planted spheres, and their affine.

    Inside the sphere of `radius` mm around `plants[layer]`, every subject's voxel
    patterns are a random projection of stimulus coordinates whose correlations follow
    the layer's correlation-distance RDM D: S = 1 - D, stretched to (S - c) / (1 - c)
    with c its smallest off-diagonal value (the same order of dissimilarities, so the
    same Spearman comparison, but differences between stimuli as large as possible:
    deep layers of random networks have all correlations near 1), then embedded by its
    eigendecomposition. Every voxel also gets Gaussian noise of standard deviation
    `noise` (the signal has unit variance). Returns ([volume per subject], affine).

    Parameters
    ----------
    layer_rdms : dict of str to array (n, n)
        Correlation-distance RDMs per layer; n is taken from the first one.
    plants : dict of str to (int, int, int)
        Layer -> the voxel index of its sphere's centre. Spheres that overlap add up.
    shape : (int, int, int), default (16, 16, 12)
        The grid of the volumes.
    voxel_size : float, default 2.0
        Voxel edge in millimetres: the affine is diag(voxel_size, voxel_size, voxel_size, 1).
    radius : float, default 6.0
        Sphere radius in millimetres (voxel centres at distance <= radius).
    subjects : int, default 4
        Volumes made; each subject has its own projections and noise.
    noise : float, default 0.5
    seed : int, default 0

    Returns
    -------
    volumes : list of ndarray (X, Y, Z, stimuli) float32
        One per subject.
    affine : ndarray (4, 4)
    """
    rng = np.random.default_rng(seed)
    affine = np.diag([voxel_size, voxel_size, voxel_size, 1.0])
    n = next(iter(layer_rdms.values())).shape[0]
    coordinates = {}
    off_diagonal = ~np.eye(n, dtype=bool)
    for layer in plants:
        similarity = 1 - np.asarray(layer_rdms[layer], dtype=float)
        smallest = similarity[off_diagonal].min()
        values, vectors = np.linalg.eigh((similarity - smallest) / (1 - smallest))
        coordinates[layer] = vectors * np.sqrt(np.clip(values, 0, None))  # Gram = the stretched correlations
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), axis=-1)
    volumes = []
    for _ in range(subjects):
        volume = rng.normal(scale=noise, size=(*shape, n)).astype(np.float32)
        for layer, centre in plants.items():
            inside = np.linalg.norm((grid - np.array(centre)) * voxel_size, axis=-1) <= radius
            projected = coordinates[layer] @ rng.normal(size=(n, int(inside.sum())))
            projected /= projected.std()
            volume[inside] += projected.T.astype(np.float32)
        volumes.append(volume)
    return volumes, affine


def simulate_voxel_responses(
    layer_features: dict[str, np.ndarray],
    regions: dict[str, str],
    *,
    shape: tuple[int, int, int] = (8, 4, 4),
    subjects: int = 3,
    noise: float = 0.5,
    seed: int = 0,
) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """4D response volumes (X, Y, Z, stimuli) whose regions are encoded from one layer
    each, and the regions' masks: the grid's x axis is cut into as many slabs as regions;
    every voxel of a region is a random linear read-out of its layer's z-scored features
    (unit variance over stimuli) plus Gaussian noise of standard deviation `noise`.

    Parameters
    ----------
    layer_features : dict of str to array (n, ...)
        Activations per layer, one row per stimulus.
    regions : dict of str to str
        Region name -> the layer that generates it.
    shape : (int, int, int), default (8, 4, 4)
    subjects : int, default 3
        Each subject has its own read-out weights and noise.
    noise : float, default 0.5
    seed : int, default 0

    Returns
    -------
    volumes : list of ndarray (X, Y, Z, stimuli) float32
    masks : dict of str to bool ndarray (X, Y, Z)
        Each region's voxels.
    """
    rng = np.random.default_rng(seed)
    z = {}
    for layer in set(regions.values()):
        flat = np.asarray(layer_features[layer], dtype=np.float64).reshape(len(layer_features[layer]), -1)
        spread = flat.std(axis=0)
        z[layer] = (flat[:, spread > 0] - flat[:, spread > 0].mean(axis=0)) / spread[spread > 0]
    n = len(next(iter(z.values())))
    edges = np.linspace(0, shape[0], len(regions) + 1).astype(int)
    masks = {}
    for (region, _), low, high in zip(regions.items(), edges[:-1], edges[1:], strict=True):
        mask = np.zeros(shape, dtype=bool)
        mask[low:high] = True
        masks[region] = mask
    volumes = []
    for _ in range(subjects):
        volume = rng.normal(scale=noise, size=(*shape, n)).astype(np.float32)
        for region, layer in regions.items():
            inside = masks[region]
            signal = z[layer] @ rng.normal(size=(z[layer].shape[1], int(inside.sum())))
            signal = (signal - signal.mean(axis=0)) / signal.std(axis=0)
            volume[inside] += signal.T.astype(np.float32)
        volumes.append(volume)
    return volumes, masks
