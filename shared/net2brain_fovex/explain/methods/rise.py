"""RISE: randomised input sampling for explanation (Petsiuk et al., "RISE: Randomized Input
Sampling for Explanation of Black-box Models", BMVC 2018).

N random binary s x s grids, each cell kept with probability p_keep, are upsampled
bilinearly to ((s + 1) * ceil(H / s), (s + 1) * ceil(W / s)) and cropped to H x W at a
random shift in [0, ceil(H / s)) x [0, ceil(W / s)), as in the authors' code, giving soft
masks M_i in [0, 1]. A masked image keeps the input where M_i is 1 and is black
elsewhere, x * M_i + black * (1 - M_i) (black in normalised space), and the saliency is

    S = sum_i P(target | masked_i) M_i / (N * p_keep),

P the softmax probability, min-max normalised per image.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..base import Attribution, Context, autocast, check_batch, check_precision, frozen, logits_of, normalise_maps
from ..registry import RISEParameters

__all__ = ["rise", "rise_masks"]


def rise(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    context: Context,
    *,
    parameters: RISEParameters | None = None,
) -> Attribution:
    """RISE saliency maps (Petsiuk et al., BMVC 2018).

    Every image of the batch gets the same masks (those of `rise_masks` for
    `context.seed`), so a batch gives the maps its images give one by one.

    Parameters
    ----------
    model : torch.nn.Module
        The classifier; run in evaluation mode without gradients, its mode left as it was.
    images : tensor (B, 3, H, W)
        The model's normalised input batch.
    targets : LongTensor (B,)
        The class to explain per image.
    context : Context
        Uses `black` (the normalised black pixel, (3,)) and `seed`.
    parameters : RISEParameters, optional
        `masks` (N), `grid` (cells s per side of a mask's binary grid), `p_keep` (the
        probability that a cell keeps the image) and `mask_batch` (masked images per
        forward pass: masks are applied `mask_batch // B` at a time, at least one, to
        the B images of the batch); default the paper's. `precision` bf16 or fp16 runs
        the model under autocast (the probabilities are taken in float32).

    Returns
    -------
    Attribution
        Maps (B, H, W) float32 in [0, 1] on the images' device.

    Raises
    ------
    InputError
        When the images are not a batch (B, C, H, W) or the targets not one class index per image.
    ConfigError
        `precision` fp16 on CPU images.
    """
    settings = parameters or RISEParameters()
    masks, grid, p_keep, mask_batch = settings.masks, settings.grid, settings.p_keep, settings.mask_batch
    check_batch(images, targets)
    check_precision(settings.precision, images.device)
    height, width = images.shape[-2:]
    cells, shifts = (t.to(images.device) for t in _draw(masks, grid, p_keep, height, width, context.seed))
    black = context.black.to(images)[:, None, None]
    chunk = max(1, mask_batch // len(images))
    saliency = torch.zeros(len(images), height, width, device=images.device)
    index = targets.to(images.device)[:, None, None].expand(-1, chunk, 1)
    with frozen(model), torch.no_grad():
        for start in range(0, masks, chunk):
            soft = _soft_masks(cells[start:start + chunk], shifts[start:start + chunk], height, width)
            kept = soft[None, :, None]
            masked = images[:, None] * kept + black * (1 - kept)
            with autocast(settings.precision, images.device):
                logits = logits_of(model(masked.flatten(0, 1))).view(len(images), len(soft), -1)
            probabilities = torch.softmax(logits.float(), dim=2).gather(2, index[:, :len(soft)])[..., 0]
            saliency += torch.einsum("bm,mhw->bhw", probabilities, soft)
    return Attribution(maps=normalise_maps(saliency / (masks * p_keep)))


def rise_masks(
    n: int, *, grid: int, p_keep: float, height: int, width: int, seed: int, device: torch.device | str | None = None,
) -> torch.Tensor:
    """The soft masks RISE draws for a seed.

    Parameters
    ----------
    n : int
        Number of masks.
    grid : int
        Cells s per side of the binary grid.
    p_keep : float
        Probability that a cell is 1.
    height, width : int
        The masks' size H x W.
    seed : int
        Seed of the torch.Generator the grids and shifts are drawn from.
    device : torch.device or str, optional
        Where the masks are built (default CPU).

    Returns
    -------
    tensor (n, H, W)
        float32 masks in [0, 1], the i-th the one `rise` applies i-th.
    """
    RISEParameters(masks=n, grid=grid, p_keep=p_keep)  # the checks of the parameters
    cells, shifts = _draw(n, grid, p_keep, height, width, seed)
    return _soft_masks(cells.to(device), shifts.to(device), height, width)


def _draw(n: int, grid: int, p_keep: float, height: int, width: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Binary grids (n, s, s) float32 and crop shifts (n, 2) drawn on the CPU from `seed`."""
    generator = torch.Generator().manual_seed(seed)
    cells = (torch.rand(n, grid, grid, generator=generator) < p_keep).float()
    rows = torch.randint(math.ceil(height / grid), (n,), generator=generator)
    cols = torch.randint(math.ceil(width / grid), (n,), generator=generator)
    return cells, torch.stack([rows, cols], dim=1)


def _soft_masks(cells: torch.Tensor, shifts: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Grids (m, s, s) upsampled to (s + 1) cells and cropped at their shifts: (m, H, W)."""
    grid = cells.shape[-1]
    size = ((grid + 1) * math.ceil(height / grid), (grid + 1) * math.ceil(width / grid))
    upsampled = F.interpolate(cells[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    rows = shifts[:, :1] + torch.arange(height, device=cells.device)
    cols = shifts[:, 1:] + torch.arange(width, device=cells.device)
    which = torch.arange(len(cells), device=cells.device)[:, None, None]
    # bilinear weights sum to 1 only up to rounding: keep an all-ones stretch at exactly 1
    return upsampled[which, rows[:, :, None], cols[:, None, :]].clamp(0, 1)
