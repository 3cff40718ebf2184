"""FovEx: human-inspired explanations by foveated fixations (Panda et al., IJCV 2025,
arXiv 2408.02123; derived from NeVA, Schwinn et al., "Behind the Machine's Gaze").

The image is rendered foveated: sharp around the fixation p (and where earlier fixations
left memory), a Gaussian-blurred copy elsewhere,

    G(p)[u] = exp(-||u - p||^2 / foveation_sigma)            (u, p in [-1, 1]^2)
    x_f     = x + (blur(x) - x) * clip(1 - (R + G(p)), 0, 1).

For each of `scanpath_length` fixations, p starts at the image centre and moves by
signed gradient steps, p <- p - lr * sign(dL/dp), on the cross-entropy L of the model's
output on x_f for the target class; a step that does not improve on the best loss so
far is followed by a uniform random restart (or, with `random_restart` off, a jitter of
U(-lr/2, lr/2)). The best position found is committed: R <- forgetting * R + G(p_best).
The attribution map is the sum of exp(-||u - p_t||^2 / heatmap_sigma) over the
fixations, min-max normalised.

Unlike the reference implementation: the best position is the one whose loss was
measured (the reference stores it one step late); fixations are kept inside the image;
images arrive normalised as the model expects (blurring and blending commute with the
per-channel normalisation); all images of a batch are optimised together, each with its
own random stream seeded by `seed`, so a batch gives the maps its images give alone.

The saving: with `patience` set, an image's search for one fixation ends once its best
loss has not improved for `patience` consecutive steps, and only images still searching
are run through the model (the reference always takes `optimization_steps` steps).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.transforms.functional import gaussian_blur

from ..base import Attribution, Context, frozen, logits_of, normalise_maps
from ..registry import FovExParameters

__all__ = ["fovex", "foveate"]


def fovex(
    model: torch.nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    context: Context,
    *,
    parameters: FovExParameters | None = None,
) -> Attribution:
    """FovEx maps (B, H, W) and fixations (B, scanpath_length, 2) in pixels (row, col).

    Parameters
    ----------
    model : torch.nn.Module
        Any differentiable classifier returning logits (CNN or vision transformer).
    images : tensor (B, 3, H, W)
        Normalised as the model expects.
    targets : tensor (B,)
        The class to explain per image.
    context : Context
        `seed` seeds each image's random restarts.
    parameters : FovExParameters, optional
        The hyper-parameters (default: the reference's).
    """
    settings = parameters or FovExParameters()
    batch, _, height, width = images.shape
    device = images.device
    images = images.detach()
    kernel = min(settings.blur_filter_size, 2 * min(height, width) - 1)  # reflection needs a pad < the size
    kernel -= 1 - kernel % 2
    blurred = gaussian_blur(images, [kernel, kernel], [settings.blur_sigma, settings.blur_sigma])
    rows = torch.linspace(-1, 1, height, device=device)
    cols = torch.linspace(-1, 1, width, device=device)
    grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1)  # (H, W, 2)
    generators = [torch.Generator().manual_seed(context.seed) for _ in range(batch)]
    memory = torch.zeros(batch, height, width, device=device)
    fixations = torch.zeros(batch, settings.scanpath_length, 2, device=device)
    with frozen(model):
        for step_of_path in range(settings.scanpath_length):
            best = _search(model, images, blurred, targets, memory, grid, generators, settings)
            fixations[:, step_of_path] = best
            memory = settings.forgetting * memory + _fovea(grid, best, settings.foveation_sigma)
    heat = _fovea(grid, fixations.flatten(0, 1), settings.heatmap_sigma).view(batch, -1, height, width).sum(dim=1)
    pixels = (fixations + 1) / 2 * torch.tensor([height - 1, width - 1], device=device, dtype=fixations.dtype)
    return Attribution(normalise_maps(heat), pixels)


def _fovea(grid: torch.Tensor, points: torch.Tensor, sigma: float) -> torch.Tensor:
    """exp(-||u - p||^2 / sigma) on the grid for each point: (N, H, W)."""
    return torch.exp(-((grid.unsqueeze(0) - points[:, None, None, :]) ** 2).sum(dim=-1) / sigma)


def foveate(images, blurred, memory, grid, points, *, sigma) -> torch.Tensor:
    """The foveated images: sharp where the fovea at `points` or the memory is, blurred elsewhere."""
    keep_blur = torch.clamp(1 - (memory + _fovea(grid, points, sigma)), 0, 1)
    return images + (blurred - images) * keep_blur.unsqueeze(1)


def _search(model, images, blurred, targets, memory, grid, generators, settings: FovExParameters) -> torch.Tensor:
    """One fixation per image: signed gradient descent with restarts; the best position."""
    batch = images.shape[0]
    device = images.device
    position = torch.zeros(batch, 2, device=device)
    best = position.clone()
    best_loss = torch.full((batch,), float("inf"), device=device)
    stale = torch.zeros(batch, dtype=torch.long, device=device)
    active = torch.arange(batch, device=device)
    for _ in range(settings.optimization_steps):
        point = position[active].clone().requires_grad_(True)
        view = foveate(images[active], blurred[active], memory[active], grid, point, sigma=settings.foveation_sigma)
        loss = F.cross_entropy(logits_of(model(view)), targets[active], reduction="none")
        (gradient,) = torch.autograd.grad(loss.sum(), point)
        loss, point = loss.detach(), point.detach()
        improved = loss < best_loss[active]
        best[active] = torch.where(improved.unsqueeze(1), point, best[active])
        best_loss[active] = torch.where(improved, loss, best_loss[active])
        stale[active] = torch.where(improved, 0, stale[active] + 1)
        moved = point - settings.lr * torch.sign(gradient)
        for row, index in enumerate(active.tolist()):
            if not improved[row]:
                draw = torch.rand(2, generator=generators[index])
                moved[row] = (draw * 2 - 1 if settings.random_restart else point[row] + (draw - 0.5) * settings.lr).to(device)
        position[active] = moved.clamp(-1, 1)
        if settings.patience:
            active = active[stale[active] < settings.patience]
            if len(active) == 0:
                break
    return best
