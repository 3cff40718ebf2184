"""Metrics of attribution maps: localisation against a known box, and faithfulness.

Plain batched functions over maps (B, H, W), boxes (B, 4) and, for the faithfulness
metrics, the model, its normalised images (B, 3, H, W) and the explained classes (B,).
Boxes are (x0, y0, x1, y1) in pixels with x1 and y1 exclusive, so that
`map[y0:y1, x0:x1]` is the box (the layout of `shared.localisation`).

* Pointing game (Zhang et al., "Top-down Neural Attention by Excitation Backprop",
  ECCV 2016): a hit when the map's maximum lies inside the box.
* Energy-based pointing game, EBPG (Wang et al., "Score-CAM", CVPR-W 2020): the share
  of the map's sum inside the box, in %.
* Deletion and insertion (Petsiuk et al., "RISE", BMVC 2018): the target's softmax
  probability as the most salient pixels are removed from the image, or put back into
  a blurred copy; the areas under the two curves.
* Average drop and increase in confidence (Chattopadhay et al., "Grad-CAM++", WACV
  2018): the target's probability on the image multiplied by its map, against the
  clean image.
* Sparseness (Chalasani et al., "Concise explanations of neural networks using
  adversarial training", ICML 2020): the Gini index of the map's values.

Localisation metrics take the object's region either as boxes (B, 4) or as masks
(B, H, W) of bool, the union of several boxes per image (`box_regions`).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

import torch
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from .attribution.base import channels_last, frozen, logits_of
from .errors import ConfigError, InputError


def points_in_boxes(points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Whether each point, rounded to the nearest pixel, lies inside its box.

    Parameters
    ----------
    points : tensor (B, 2)
        (row, col) in pixels, e.g. FovEx fixations.
    boxes : tensor or array (B, 4)
        (x0, y0, x1, y1), x1 and y1 exclusive.

    Returns
    -------
    tensor (B,) bool
    """
    boxes = _boxes_for(boxes, len(points), points.device)
    rows, cols = torch.round(points[:, 0]), torch.round(points[:, 1])
    return (cols >= boxes[:, 0]) & (cols < boxes[:, 2]) & (rows >= boxes[:, 1]) & (rows < boxes[:, 3])


def pointing_game(maps: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """Pointing-game hits: whether each map's maximum lies inside the object's region.

    Among equal maxima the first in row-major order counts (`argmax`), so a blank map
    points at the top-left pixel.

    Parameters
    ----------
    maps : tensor (B, H, W)
    regions : tensor or array
        Boxes (B, 4) as (x0, y0, x1, y1), x1 and y1 exclusive, or masks (B, H, W) bool.

    Returns
    -------
    tensor (B,) bool
    """
    _check_maps(maps)
    inside = _regions_for(regions, maps)
    peak = maps.flatten(1).argmax(dim=1)
    return inside.flatten(1).gather(1, peak[:, None])[:, 0]


def energy_in_box(maps: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """Energy-based pointing game: the percentage of each map's sum inside the region.

    Parameters
    ----------
    maps : tensor (B, H, W)
        Non-negative maps (attribution maps in [0, 1]).
    regions : tensor or array
        Boxes (B, 4) as (x0, y0, x1, y1), x1 and y1 exclusive, or masks (B, H, W) bool.

    Returns
    -------
    tensor (B,) float
        In [0, 100]; 0 for a map whose sum is 0 (a blank map puts no energy anywhere).
    """
    _check_maps(maps)
    inside = _regions_for(regions, maps)
    total = maps.sum(dim=(1, 2))
    within = (maps * inside).sum(dim=(1, 2))
    return torch.where(total > 0, 100 * within / torch.where(total > 0, total, 1), torch.zeros_like(total))


def box_regions(boxes: Sequence[np.ndarray], height: int, width: int) -> torch.Tensor:
    """The union of each image's boxes as masks (B, H, W) bool.

    Parameters
    ----------
    boxes : sequence of arrays (k_i, 4)
        Per image, any number of boxes (x0, y0, x1, y1) in pixels, x1 and y1 exclusive;
        parts outside the image are ignored.
    height, width : int
        The maps' size.
    """
    masks = torch.zeros(len(boxes), height, width, dtype=torch.bool)
    for mask, image_boxes in zip(masks, boxes):
        for x0, y0, x1, y1 in np.asarray(image_boxes, dtype=np.int64).reshape(-1, 4):
            mask[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = True
    return masks


def confidence_change(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor,
    black: torch.Tensor,
    batch: int | None = None,
) -> dict[str, torch.Tensor]:
    """Average drop and increase in confidence (Chattopadhay et al., Grad-CAM++, WACV 2018).

    Each image is multiplied by its map in pixel space (a pixel keeps its colour where
    the map is 1 and turns black where it is 0), which in normalised space is
    `map * image + (1 - map) * black`. With Y the target's softmax probability on the
    image and O on the explained image: drop = max(0, Y - O) / Y * 100 and
    increase = 100 if O > Y else 0; their means over images are the paper's "Average
    Drop %" (lower is better) and "Increase in Confidence %" (higher is better).

    Parameters
    ----------
    model : torch.nn.Module
        The classifier, returning logits.
    images : tensor (B, 3, H, W)
        Normalised as the model expects.
    maps : tensor (B, H, W)
        Attribution maps in [0, 1].
    targets : LongTensor (B,)
        The class scored, per image.
    black : tensor (3,)
        A black pixel in normalised space, (0 - mean) / std.
    batch : int, optional
        Images per forward pass (default as `deletion_insertion`).

    Returns
    -------
    dict of str to tensor (B,)
        "avg_drop" and "avg_increase" per image (in %), "clean" (Y) and "explained" (O).
    """
    _check_batch(images, maps, targets)
    batch = default_batch(images.device) if batch is None else batch
    images = images.detach()
    weights = maps.detach().to(images)[:, None]
    explained = weights * images + (1 - weights) * black.to(images)[:, None, None]
    clean = _target_probabilities(model, images, targets, batch)
    masked = _target_probabilities(model, explained, targets, batch)
    drop = 100 * (clean - masked).clamp(min=0) / clean
    increase = 100 * (masked > clean).to(clean.dtype)
    return {"avg_drop": drop, "avg_increase": increase, "clean": clean, "explained": masked}


def sparseness(maps: torch.Tensor) -> torch.Tensor:
    """The Gini index of each map's values (Chalasani et al., ICML 2020), in [0, 1].

    With the n values sorted ascending, a_1 <= ... <= a_n (non-negative),
    G = sum_i (2 i - n - 1) a_i / (n sum_i a_i): 0 for a uniform map, (n - 1) / n when
    one pixel holds everything. An all-zero map gives NaN (no distribution).

    Parameters
    ----------
    maps : tensor (B, H, W)
        Non-negative maps.

    Returns
    -------
    tensor (B,) float64
    """
    _check_maps(maps)
    values = torch.sort(maps.detach().flatten(1).double(), dim=1).values
    if (values[:, 0] < 0).any():
        raise InputError("sparseness needs non-negative maps (attribution maps in [0, 1])")
    n = values.shape[1]
    weights = 2 * torch.arange(1, n + 1, device=values.device, dtype=values.dtype) - n - 1
    total = values.sum(dim=1)
    gini = (values * weights).sum(dim=1) / (n * total)
    return torch.where(total > 0, gini, torch.full_like(total, float("nan")))


def deletion_insertion(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor,
    substrate: torch.Tensor | None = None,
    step: int | None = None,
    blur_kernel: int = 11,
    blur_sigma: float = 5.0,
    batch: int | None = None,
) -> dict[str, torch.Tensor]:
    """Deletion and insertion curves and their areas (Petsiuk et al., RISE, BMVC 2018).

    Pixels are ranked by descending saliency (equal values in pixel-index order) and
    changed `step` at a time, all three channels together. Deletion replaces the
    changed pixels of the image by the substrate (zeros in normalised space, the mean
    colour, as RISE's reference code does); insertion starts from a Gaussian-blurred copy
    of the image and puts the changed pixels back. Point i of a curve is the softmax
    probability of the target with min(i * step, H * W) pixels changed, for
    i = 0 ... n_steps = ceil(H * W / step). The area under a curve of n points on
    [0, 1] is the trapezoid rule, (sum s - s_0 / 2 - s_last / 2) / (n - 1): low is
    good for deletion, high for insertion.

    All (image, step) pairs run through the model in chunks of `batch` images; the
    model runs in evaluation mode without gradients and is left as it was.

    Parameters
    ----------
    model : torch.nn.Module
        The classifier, returning logits.
    images : tensor (B, 3, H, W)
        Normalised as the model expects.
    maps : tensor (B, H, W)
        The saliency of each pixel.
    targets : LongTensor (B,)
        The class whose probability is scored, per image.
    substrate : tensor (3,), optional
        The deletion substrate per channel in normalised space; default zeros.
    step : int, optional
        Pixels changed per step; default round(H * W / 224) (224 steps at 224 x 224).
    blur_kernel : int, default 11
        Size of the Gaussian kernel of the insertion start (odd).
    blur_sigma : float, default 5.0
        Its sigma in pixels.
    batch : int, optional
        Images per forward pass; default 16 on a CPU (the fastest there: larger batches
        leave the caches) and 128 on a GPU.

    Returns
    -------
    dict of str to tensor
        "deletion" and "insertion": the areas (B,); "deletion_curve" and
        "insertion_curve": the scores (B, n_steps + 1).

    Raises
    ------
    InputError
        When the shapes of images, maps and targets do not fit together.
    ConfigError
        When `step`, `blur_kernel`, `blur_sigma` or `batch` is out of range.
    """
    _check_batch(images, maps, targets)
    height, width = images.shape[2:]
    pixels = height * width
    step = max(1, round(pixels / 224)) if step is None else step
    batch = default_batch(images.device) if batch is None else batch
    if step < 1 or batch < 1 or blur_kernel < 1 or blur_kernel % 2 == 0 or blur_sigma <= 0:
        raise ConfigError(
            f"deletion / insertion needs step >= 1, batch >= 1, an odd blur kernel and a blur sigma > 0; "
            f"got step={step}, batch={batch}, blur_kernel={blur_kernel}, blur_sigma={blur_sigma}"
        )
    images = images.detach()
    device = images.device
    order = torch.sort(maps.detach().flatten(1).to(device), dim=1, descending=True, stable=True).indices
    # rank[b, p]: the step-order position of pixel p, so that "changed after k pixels" is rank < k
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(pixels, device=device).expand_as(order))
    n_points = math.ceil(pixels / step) + 1
    changed_counts = (torch.arange(n_points, device=device) * step).clamp(max=pixels)
    blurred = gaussian_blur(images, [blur_kernel, blur_kernel], [blur_sigma, blur_sigma])
    substrate = (torch.zeros(3) if substrate is None else substrate).to(images)[:, None, None]
    which = torch.arange(len(images), device=device).repeat_interleave(n_points)
    counts = changed_counts.repeat(len(images))
    targets = targets.to(device)
    scores = torch.empty(2, len(which), device=device)
    pairs = max(1, batch // 2)  # each pair gives a deleted and an inserted image
    with frozen(model), channels_last(model), torch.no_grad():
        for start in range(0, len(which), pairs):
            index = which[start:start + pairs]
            changed = (rank[index] < counts[start:start + pairs, None]).view(-1, 1, height, width)
            deleted = torch.where(changed, substrate, images[index])
            inserted = torch.where(changed, images[index], blurred[index])
            logits = logits_of(model(torch.cat([deleted, inserted]).contiguous(memory_format=torch.channels_last)))
            probabilities = torch.softmax(logits.float(), dim=1).view(2, len(index), -1)
            scores[:, start:start + pairs] = probabilities.gather(2, targets[index].expand(2, -1)[..., None])[..., 0]
    deletion, insertion = scores.view(2, len(images), n_points)
    return {
        "deletion": _area(deletion), "insertion": _area(insertion),
        "deletion_curve": deletion, "insertion_curve": insertion,
    }


def default_batch(device: torch.device) -> int:
    """Images per forward pass of the perturbation metrics: 16 on a CPU, 128 on a GPU."""
    return 16 if device.type == "cpu" else 128


def _area(curves: torch.Tensor) -> torch.Tensor:
    """Trapezoid area of curves (B, n) sampled evenly on [0, 1]."""
    return (curves.sum(dim=1) - curves[:, 0] / 2 - curves[:, -1] / 2) / (curves.shape[1] - 1)


def _target_probabilities(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, batch: int) -> torch.Tensor:
    """The softmax probability of each image's target, `batch` images per forward pass."""
    targets = targets.to(images.device)
    scores = []
    with frozen(model), channels_last(model), torch.no_grad():
        for start in range(0, len(images), batch):
            chunk = images[start:start + batch].contiguous(memory_format=torch.channels_last)
            probabilities = torch.softmax(logits_of(model(chunk)).float(), dim=1)
            scores.append(probabilities.gather(1, targets[start:start + batch, None])[:, 0])
    return torch.cat(scores)


def _check_batch(images: torch.Tensor, maps: torch.Tensor, targets: torch.Tensor) -> None:
    """Images (B, C, H, W), maps (B, H, W) and targets (B,) of one batch, or an `InputError`."""
    if images.dim() != 4 or maps.shape != (len(images), *images.shape[2:]) or targets.shape != (len(images),):
        raise InputError(
            f"expected images (B, C, H, W), maps (B, H, W) and targets (B,) of one batch, got "
            f"{tuple(images.shape)}, {tuple(maps.shape)} and {tuple(targets.shape)}"
        )


def _check_maps(maps: torch.Tensor) -> None:
    """Maps (B, H, W), or an `InputError`."""
    if maps.dim() != 3:
        raise InputError(f"maps must be a batch (B, H, W), got shape {tuple(maps.shape)}")


def _boxes_for(boxes, count: int, device: torch.device) -> torch.Tensor:
    """Boxes as a (count, 4) int64 tensor on `device`, or an `InputError`."""
    boxes = torch.as_tensor(boxes, device=device)
    if boxes.shape != (count, 4):
        raise InputError(f"boxes must be (B, 4) = ({count}, 4) as x0, y0, x1, y1; got shape {tuple(boxes.shape)}")
    return boxes.long()


def _regions_for(regions, maps: torch.Tensor) -> torch.Tensor:
    """Regions as masks (B, H, W) bool on the maps' device: boxes (B, 4) are drawn."""
    regions = torch.as_tensor(regions, device=maps.device)
    if regions.dtype == torch.bool:
        if regions.shape != maps.shape:
            raise InputError(f"region masks {tuple(regions.shape)} do not match the maps {tuple(maps.shape)}")
        return regions
    return _box_masks(_boxes_for(regions, len(maps), maps.device), *maps.shape[1:])


def _box_masks(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, H, W) bool: True inside each box."""
    rows = torch.arange(height, device=boxes.device)[None, :, None]
    cols = torch.arange(width, device=boxes.device)[None, None, :]
    return (
        (rows >= boxes[:, 1, None, None]) & (rows < boxes[:, 3, None, None])
        & (cols >= boxes[:, 0, None, None]) & (cols < boxes[:, 2, None, None])
    )
