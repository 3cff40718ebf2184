"""Faithfulness metrics: does the model's confidence follow what a map calls important?

Plain batched functions over the model, its normalised images (B, 3, H, W), the maps
(B, H, W) and the explained classes (B,).

* Deletion and insertion (Petsiuk et al., "RISE", BMVC 2018): the target's softmax
  probability as the most salient pixels are removed from the image, or put back into
  a blurred copy; the areas under the two curves.
* Average drop and increase in confidence (Chattopadhay et al., "Grad-CAM++", WACV
  2018): the target's probability on the image multiplied by its map, against the
  clean image.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from ..errors import ConfigError
from ..explain.base import autocast, channels_last, check_precision, frozen, logits_of
from .batches import check_batch

__all__ = ["confidence_change", "deletion_insertion", "default_batch"]


def confidence_change(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor,
    *,
    black: torch.Tensor,
    batch: int | None = None,
    precision: str = "fp32",
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
    precision : {"fp32", "bf16", "fp16"}, default "fp32"
        As `deletion_insertion`.

    Returns
    -------
    dict of str to tensor (B,)
        "avg_drop" and "avg_increase" per image (in %), "clean" (Y) and "explained" (O).
    """
    check_batch(images, maps, targets)
    check_precision(precision, images.device)
    batch = default_batch(images.device) if batch is None else batch
    images = images.detach()
    weights = maps.detach().to(images)[:, None]
    explained = weights * images + (1 - weights) * black.to(images)[:, None, None]
    clean = _target_probabilities(model, images, targets, batch, precision)
    masked = _target_probabilities(model, explained, targets, batch, precision)
    drop = 100 * (clean - masked).clamp(min=0) / clean
    increase = 100 * (masked > clean).to(clean.dtype)
    return {"avg_drop": drop, "avg_increase": increase, "clean": clean, "explained": masked}



def deletion_insertion(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor,
    *,
    substrate: torch.Tensor | None = None,
    step: int | None = None,
    blur_kernel: int = 11,
    blur_sigma: float = 5.0,
    batch: int | None = None,
    precision: str = "fp32",
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
    precision : {"fp32", "bf16", "fp16"}, default "fp32"
        The model's forward passes in float32, or under autocast to bfloat16 or float16
        (fp16 on GPUs only); the probabilities are taken in float32.

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
        When `step`, `blur_kernel`, `blur_sigma` or `batch` is out of range, or
        `precision` is not a choice (or fp16 on a CPU).
    """
    check_batch(images, maps, targets)
    check_precision(precision, images.device)
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
    with frozen(model), channels_last(model), torch.no_grad(), autocast(precision, device):
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


def _target_probabilities(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, batch: int,
                          precision: str = "fp32") -> torch.Tensor:
    """The softmax probability of each image's target, `batch` images per forward pass."""
    targets = targets.to(images.device)
    scores = []
    with frozen(model), channels_last(model), torch.no_grad(), autocast(precision, images.device):
        for start in range(0, len(images), batch):
            chunk = images[start:start + batch].contiguous(memory_format=torch.channels_last)
            probabilities = torch.softmax(logits_of(model(chunk)).float(), dim=1)
            scores.append(probabilities.gather(1, targets[start:start + batch, None])[:, 0])
    return torch.cat(scores)

