"""Meaningful perturbation (Fong & Vedaldi, "Interpretable Explanations of Black Boxes by
Meaningful Perturbation", ICCV 2017): the deletion game.

A mask m in [0, 1] on a coarse grid of ceil(H / delta) x ceil(W / delta) cells is made
smooth, M(m) = blur_{sigma_m}(upsample(m)) (bilinear upsampling to H x W), and deletes
the image where it is 0 by blending in a blurred copy, the substrate:

    Phi(x; m) = x * M(m) + blur_{sigma_0}(x) * (1 - M(m)).

Adam minimises, for each image, the smallest deletion that removes the target class c,

    lambda1 mean |1 - m| + lambda2 TV_beta(m) + p_c(Phi(x(. - tau); m)),

with TV_beta(m) the mean over vertically adjacent cells of |m_ij - m_i+1,j|^beta plus the
same mean over horizontally adjacent ones (a side of one cell contributes 0), p_c the
softmax probability of c, and tau a random shift of the image (and its blurred copy)
under the mask, tau ~ U{0, ..., tau_max - 1}^2 pixels down and right (border pixels
repeated), drawn anew each step. After each step m is clipped to [0, 1]. The map is the
evidence deleted, 1 - M(m) of the last step, min-max normalised.

Which choice is whose:

* the paper's (Sec. 4, "implementation details", and its Eq. 4): the deletion game
  with the blur substrate of sigma_0 = 10 px; Adam with learning rate 0.1 for 300
  iterations; lambda1 = 1e-4, lambda2 = 1e-2, beta = 3; the softmax probability of the
  target; a 28 x 28 mask for 224 px (delta = 8) upsampled and blurred with
  sigma_m = 5 px; the jitter tau_max = 4 inside the expectation over tau; the start from
  the smallest centred disc whose deletion removes 99% of the score that deleting the
  whole image removes (`perturbation_circle_init`);
* the common reimplementations' (jacobgil/pytorch-explain-black-box, and the authors'
  ruthcfong/pytorch-explain-black-box): the means in the L1 and TV terms where the paper
  writes sums (so the lambdas are those reimplementations' scale); the anisotropic
  |d|^beta differences (jacobgil's; the paper's ||grad m(u)||_beta^beta); m clipped to
  [0, 1] after every step; Gaussian noise added to the perturbed image each step
  (`perturbation_noise`, ruthcfong's noise option, off by default as there). jacobgil
  starts from m = 1 and ruthcfong from m = 0.5, both without the mask blur and the
  jitter; ruthcfong's defaults are l1 0.01 and TV 1e-4 with a summed isotropic TV;
* ours: bilinear upsampling with align_corners=False; separable Gaussians truncated at
  4 sigma (scipy's default) with reflected borders, the radius at most n - 1 along a
  side of n pixels (sigma_0 = 10 reaches 40 px); the disc drawn on the mask's grid
  (cells whose centre lies within radius r of the grid's centre, r = 0, 1, 2, ...
  cells); blurring in the model's normalised space
  (blur and blend commute with the per-channel normalisation); all images of a batch
  optimised together.

Randomness comes from one torch.Generator seeded by `context.seed`, drawn in this order
each step: the shift (two integers, `torch.randint(tau_max, (2,))`, when tau_max > 1),
then the noise (`torch.randn(3, H, W)` float32, when the noise is on). Every image draws
the stream it would draw alone, so the whole batch shares one draw per step, and a batch
gives the maps its images give one by one (each image's loss is its own, and Adam acts
element-wise).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..base import Attribution, Context, check_batch, frozen, logits_of, normalise_maps
from ..registry import PerturbationParameters

__all__ = ["perturbation", "total_variation", "smooth_mask", "circle_masks", "gaussian"]

_CIRCLE_DROP = 0.99  # the paper's start: the smallest disc that removes 99% of the score


def perturbation(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, context: Context,
    *,
    parameters: PerturbationParameters | None = None,
) -> Attribution:
    """Meaningful-perturbation maps (Fong & Vedaldi, ICCV 2017; module docstring).

    Parameters
    ----------
    model : torch.nn.Module
        Any differentiable classifier returning logits (CNN or vision transformer); run
        in evaluation mode, its parameters and mode left as they were.
    images : tensor (B, 3, H, W)
        The model's normalised input batch (float64 images give a float64 optimisation).
    targets : LongTensor (B,)
        The class to delete per image.
    context : Context
        Uses `seed` (the jitter and the noise).
    parameters : PerturbationParameters, optional
        Iterations, learning rate, the lambdas and beta, the blurs, the mask's scale,
        the jitter, the noise and the start; default the paper's.

    Returns
    -------
    Attribution
        Maps (B, H, W) float32 in [0, 1] on the images' device: 1 - M(m), the deleted evidence.

    Raises
    ------
    InputError
        When the images are not a batch (B, C, H, W) or the targets not one class index per image.
    """
    settings = parameters or PerturbationParameters()
    check_batch(images, targets)
    images = images.detach()
    height, width = images.shape[-2:]
    dtype = torch.float64 if images.dtype == torch.float64 else torch.float32
    grid = (math.ceil(height / settings.perturbation_mask_scale), math.ceil(width / settings.perturbation_mask_scale))
    blurred = gaussian(images, settings.perturbation_blur_sigma)
    targets = targets.to(images.device)
    sigma_m = settings.perturbation_mask_blur_sigma
    generator = torch.Generator().manual_seed(context.seed)
    with frozen(model):
        if settings.perturbation_circle_init:
            start = _circle_start(model, images, blurred, targets, grid, sigma_m)
        else:
            start = torch.ones(len(images), 1, *grid, dtype=dtype, device=images.device)
        mask = start.to(dtype).clone().requires_grad_(True)
        optimizer = torch.optim.Adam([mask], lr=settings.perturbation_lr)
        with torch.enable_grad():
            for _ in range(settings.perturbation_iterations):
                shift = (torch.randint(settings.perturbation_jitter, (2,), generator=generator).tolist()
                         if settings.perturbation_jitter > 1 else [0, 0])
                kept = smooth_mask(mask, (height, width), sigma_m).to(images.dtype)
                perturbed = _shifted(images, shift) * kept + _shifted(blurred, shift) * (1 - kept)
                if settings.perturbation_noise > 0:
                    noise = torch.randn((images.shape[1], height, width), generator=generator)
                    perturbed = perturbed + settings.perturbation_noise * noise.to(perturbed)
                loss = (settings.perturbation_l1 * (1 - mask).abs().flatten(1).mean(dim=1)
                        + settings.perturbation_tv * total_variation(mask, settings.perturbation_tv_beta)
                        + _probability(model, perturbed, targets).to(dtype))
                (mask.grad,) = torch.autograd.grad(loss.sum(), mask)
                optimizer.step()
                with torch.no_grad():
                    mask.clamp_(0, 1)
    deleted = 1 - smooth_mask(mask.detach(), (height, width), sigma_m)[:, 0]
    return Attribution(maps=normalise_maps(deleted.float()))


def total_variation(mask: torch.Tensor, beta: float) -> torch.Tensor:
    """TV_beta of masks: the mean |difference|^beta of vertically adjacent cells plus that
    of horizontally adjacent cells (a side of one cell adds 0).

    Parameters
    ----------
    mask : tensor (B, 1, h, w)
    beta : float
        The exponent (the paper's 3).

    Returns
    -------
    tensor (B,)
    """
    total = mask.new_zeros(len(mask))
    for difference in (mask[..., 1:, :] - mask[..., :-1, :], mask[..., :, 1:] - mask[..., :, :-1]):
        if difference.numel():
            total = total + difference.abs().pow(beta).flatten(1).mean(dim=1)
    return total


def smooth_mask(mask: torch.Tensor, size: tuple[int, int], sigma: float) -> torch.Tensor:
    """M(m): masks upsampled bilinearly (align_corners=False), then blurred (`gaussian`).

    Parameters
    ----------
    mask : tensor (B, 1, h, w)
    size : (int, int)
        The image's (H, W).
    sigma : float
        The blur in pixels; 0: none.

    Returns
    -------
    tensor (B, 1, H, W)
    """
    upsampled = F.interpolate(mask, size=size, mode="bilinear", align_corners=False)
    return gaussian(upsampled, sigma) if sigma > 0 else upsampled


def circle_masks(grid: tuple[int, int]) -> torch.Tensor:
    """The candidate starts: centred discs of radius r = 0, 1, ..., R - 1 cells.

    Parameters
    ----------
    grid : (int, int)
        The mask's (h, w) cells.

    Returns
    -------
    tensor (R, h, w) float32
        0 (deleted) in the cells whose centre lies less than r cells from the grid's
        centre, 1 elsewhere: the first deletes nothing, the last everything.
    """
    rows = torch.arange(grid[0], dtype=torch.float64) + 0.5 - grid[0] / 2
    cols = torch.arange(grid[1], dtype=torch.float64) + 0.5 - grid[1] / 2
    distance = (rows[:, None].square() + cols[None, :].square()).sqrt()
    radii = torch.arange(math.floor(distance.max().item()) + 2, dtype=torch.float64)  # the last > every distance
    return (distance[None] >= radii[:, None, None]).float()


def gaussian(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """A Gaussian blur: separable, truncated at 4 sigma (radius round(4 sigma)), reflected
    at the borders; along a side of n pixels the radius is at most n - 1 (what reflection
    allows).

    Parameters
    ----------
    images : tensor (..., H, W)
    sigma : float
        In pixels, > 0.

    Returns
    -------
    tensor (..., H, W)
    """
    shape = images.shape
    out = images.reshape(-1, 1, *shape[-2:])
    radius = int(4 * sigma + 0.5)
    for axis, length in enumerate(shape[-2:]):
        reach = min(radius, length - 1)
        if reach < 1:
            continue
        steps = torch.arange(-reach, reach + 1, dtype=images.dtype, device=images.device)
        kernel = torch.exp(-0.5 * (steps / sigma).square())
        kernel = kernel / kernel.sum()
        if axis == 0:
            out = F.conv2d(F.pad(out, (0, 0, reach, reach), mode="reflect"), kernel.view(1, 1, -1, 1))
        else:
            out = F.conv2d(F.pad(out, (reach, reach, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))
    return out.view(shape)


def _circle_start(model, images, blurred, targets, grid, sigma_m) -> torch.Tensor:
    """Per image the smallest disc of `circle_masks` whose deletion lowers the target's
    probability by 99% of what deleting everything does: (B, 1, h, w)."""
    height, width = images.shape[-2:]
    discs = circle_masks(grid).to(images.device)
    scores = []
    with torch.no_grad():
        for disc in discs:
            kept = smooth_mask(disc.expand(len(images), 1, *grid), (height, width), sigma_m).to(images.dtype)
            scores.append(_probability(model, images * kept + blurred * (1 - kept), targets))
    scores = torch.stack(scores)  # (R, B)
    drop = scores[0] - scores
    enough = drop >= _CIRCLE_DROP * drop[-1]  # true for the first (drop[-1] <= 0) or the last disc
    first = enough.to(torch.uint8).argmax(dim=0)
    return discs[first][:, None]


def _probability(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The softmax probability (B,) of each image's target (float32 at least)."""
    logits = logits_of(model(images))
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    return torch.softmax(logits, dim=1).gather(1, targets[:, None])[:, 0]


def _shifted(images: torch.Tensor, shift: list[int]) -> torch.Tensor:
    """x(. - tau): the images moved `shift` = (rows, cols) pixels down and right, the top
    and left borders repeated."""
    rows, cols = shift
    if not rows and not cols:
        return images
    height, width = images.shape[-2:]
    return F.pad(images, (cols, 0, rows, 0), mode="replicate")[..., :height, :width]
