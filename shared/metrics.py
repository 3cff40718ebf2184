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
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from .attribution.base import frozen, logits_of
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


def pointing_game(maps: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Pointing-game hits: whether each map's maximum lies inside its box.

    Among equal maxima the first in row-major order counts (`argmax`), so a blank map
    points at the top-left pixel.

    Parameters
    ----------
    maps : tensor (B, H, W)
    boxes : tensor or array (B, 4)
        (x0, y0, x1, y1), x1 and y1 exclusive.

    Returns
    -------
    tensor (B,) bool
    """
    _check_maps(maps)
    peak = maps.flatten(1).argmax(dim=1)
    points = torch.stack([peak // maps.shape[2], peak % maps.shape[2]], dim=1)
    return points_in_boxes(points, boxes)


def energy_in_box(maps: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Energy-based pointing game: the percentage of each map's sum inside its box.

    Parameters
    ----------
    maps : tensor (B, H, W)
        Non-negative maps (attribution maps in [0, 1]).
    boxes : tensor or array (B, 4)
        (x0, y0, x1, y1), x1 and y1 exclusive.

    Returns
    -------
    tensor (B,) float
        In [0, 100]; 0 for a map whose sum is 0 (a blank map puts no energy anywhere).
    """
    _check_maps(maps)
    inside = _box_masks(_boxes_for(boxes, len(maps), maps.device), *maps.shape[1:])
    total = maps.sum(dim=(1, 2))
    within = (maps * inside).sum(dim=(1, 2))
    return torch.where(total > 0, 100 * within / torch.where(total > 0, total, 1), torch.zeros_like(total))


def deletion_insertion(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor,
    black: torch.Tensor,
    step: int | None = None,
    blur_kernel: int = 11,
    blur_sigma: float = 5.0,
    batch: int = 128,
) -> dict[str, torch.Tensor]:
    """Deletion and insertion curves and their areas (Petsiuk et al., RISE, BMVC 2018).

    Pixels are ranked by descending saliency (equal values in pixel-index order) and
    changed `step` at a time, all three channels together. Deletion replaces the
    changed pixels of the image by black; insertion starts from a Gaussian-blurred copy
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
    black : tensor (3,)
        A black pixel in normalised space, (0 - mean) / std: the deletion substrate.
    step : int, optional
        Pixels changed per step; default round(H * W / 224) (224 steps at 224 x 224).
    blur_kernel : int, default 11
        Size of the Gaussian kernel of the insertion start (odd).
    blur_sigma : float, default 5.0
        Its sigma in pixels.
    batch : int, default 128
        Images per forward pass.

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
    if images.dim() != 4 or maps.shape != (len(images), *images.shape[2:]) or targets.shape != (len(images),):
        raise InputError(
            f"expected images (B, C, H, W), maps (B, H, W) and targets (B,) of one batch, got "
            f"{tuple(images.shape)}, {tuple(maps.shape)} and {tuple(targets.shape)}"
        )
    height, width = images.shape[2:]
    pixels = height * width
    step = max(1, round(pixels / 224)) if step is None else step
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
    substrate = black.to(images)[:, None, None]
    which = torch.arange(len(images), device=device).repeat_interleave(n_points)
    counts = changed_counts.repeat(len(images))
    targets = targets.to(device)
    scores = torch.empty(2, len(which), device=device)
    pairs = max(1, batch // 2)  # each pair gives a deleted and an inserted image
    with frozen(model), torch.no_grad():
        for start in range(0, len(which), pairs):
            index = which[start:start + pairs]
            changed = (rank[index] < counts[start:start + pairs, None]).view(-1, 1, height, width)
            deleted = torch.where(changed, substrate, images[index])
            inserted = torch.where(changed, images[index], blurred[index])
            logits = logits_of(model(torch.cat([deleted, inserted])))
            probabilities = torch.softmax(logits.float(), dim=1).view(2, len(index), -1)
            scores[:, start:start + pairs] = probabilities.gather(2, targets[index].expand(2, -1)[..., None])[..., 0]
    deletion, insertion = scores.view(2, len(images), n_points)
    return {
        "deletion": _area(deletion), "insertion": _area(insertion),
        "deletion_curve": deletion, "insertion_curve": insertion,
    }


def _area(curves: torch.Tensor) -> torch.Tensor:
    """Trapezoid area of curves (B, n) sampled evenly on [0, 1]."""
    return (curves.sum(dim=1) - curves[:, 0] / 2 - curves[:, -1] / 2) / (curves.shape[1] - 1)


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


def _box_masks(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, H, W) bool: True inside each box."""
    rows = torch.arange(height, device=boxes.device)[None, :, None]
    cols = torch.arange(width, device=boxes.device)[None, None, :]
    return (
        (rows >= boxes[:, 1, None, None]) & (rows < boxes[:, 3, None, None])
        & (cols >= boxes[:, 0, None, None]) & (cols < boxes[:, 2, None, None])
    )
