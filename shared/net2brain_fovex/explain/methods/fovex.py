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

The savings, with the same fixations and maps: a step's gradient is used only where the
step improved and another step follows (elsewhere the next position is a restart), so
each step runs the model without autograd on the images still searching, and forward
and backward only on those that descend (a sixth to a third of the steps, measured); the
model runs in channels-last layout (faster convolutions, the same values up to rounding).

Optional stops: with `patience`, an image's search for one fixation ends once its best
loss has not improved for `patience` consecutive steps; with `converge`, once it has
sampled `converge` random restarts and its best loss is below `converge_ratio` times
the lowest loss a restart reached: the restarts are samples of the loss over the image,
and a best far below all of them is rarely beaten by another (a non-improving step is
no sign of convergence, so `patience` below 10 loses quality). Only images still
searching are run through the model (the reference always takes `optimization_steps`
steps). With `precision` bf16 or fp16 the model runs under autocast.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.transforms.functional import gaussian_blur

from ..base import Attribution, Context, autocast, channels_last, check_precision, frozen, logits_of, normalise_maps
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

    Raises
    ------
    ConfigError
        `precision` fp16 on CPU images (bf16 runs there).
    """
    settings = parameters or FovExParameters()
    batch, _, height, width = images.shape
    device = images.device
    check_precision(settings.precision, device)
    images = images.detach()
    kernel = min(settings.blur_filter_size, 2 * min(height, width) - 1)  # reflection needs a pad < the size
    kernel -= 1 - kernel % 2
    blurred = gaussian_blur(images, [kernel, kernel], [settings.blur_sigma, settings.blur_sigma])
    # channels-last where there are convolutions: oneDNN's (and cuDNN's) faster kernels, the values
    # the same up to rounding; elsewhere the layout of the reference, whose reductions it keeps
    layout = torch.channels_last if any(p.dim() == 4 for p in model.parameters()) else torch.contiguous_format
    images = images.contiguous(memory_format=layout)
    difference = (blurred - images).contiguous(memory_format=layout)
    rows = torch.linspace(-1, 1, height, device=device)
    cols = torch.linspace(-1, 1, width, device=device)
    grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1)  # (H, W, 2)
    generators = [torch.Generator().manual_seed(context.seed) for _ in range(batch)]
    memory = torch.zeros(batch, height, width, device=device)
    fixations = torch.zeros(batch, settings.scanpath_length, 2, device=device)
    with frozen(model), channels_last(model):
        for step_of_path in range(settings.scanpath_length):
            best = _search(model, images, difference, targets, memory, grid, generators, settings, layout)
            fixations[:, step_of_path] = best
            memory = settings.forgetting * memory + _fovea(grid, best, settings.foveation_sigma)
    heat = _fovea(grid, fixations.flatten(0, 1), settings.heatmap_sigma).view(batch, -1, height, width).sum(dim=1)
    pixels = (fixations + 1) / 2 * torch.tensor([height - 1, width - 1], device=device, dtype=fixations.dtype)
    return Attribution(normalise_maps(heat), pixels)


def _fovea(grid: torch.Tensor, points: torch.Tensor, sigma: float) -> torch.Tensor:
    """exp(-||u - p||^2 / sigma) on the grid for each point: (N, H, W)."""
    rows, cols = grid[:, :1, 0], grid[:1, :, 1]  # (H, 1), (1, W): the grid is their outer product
    squared = (rows - points[:, None, None, 0]) ** 2 + (cols - points[:, None, None, 1]) ** 2
    return torch.exp(-squared / sigma)


def foveate(images, blurred, memory, grid, points, *, sigma) -> torch.Tensor:
    """The foveated images: sharp where the fovea at `points` or the memory is, blurred elsewhere."""
    return _blend(images, blurred - images, memory, grid, points, sigma)


def _blend(images, difference, memory, grid, points, sigma) -> torch.Tensor:
    """x + (blur(x) - x) * clip(1 - (R + G(p)), 0, 1), given the difference blur(x) - x."""
    keep_blur = torch.clamp(1 - (memory + _fovea(grid, points, sigma)), 0, 1)
    return images + difference * keep_blur.unsqueeze(1)


def _losses(model, images, difference, targets, memory, grid, rows, points, settings, layout) -> torch.Tensor:
    """The cross-entropy (N,) of the target on each image of `rows` (None: all) foveated at `points` (N, 2)."""
    if rows is not None:
        images, difference, targets, memory = images[rows], difference[rows], targets[rows], memory[rows]
    view = _blend(images, difference, memory, grid, points, settings.foveation_sigma)
    view = view.contiguous(memory_format=layout)
    with autocast(settings.precision, images.device):
        logits = logits_of(model(view))
    return F.cross_entropy(logits.float(), targets, reduction="none")


def _search(model, images, difference, targets, memory, grid, generators, settings: FovExParameters,
            layout: torch.memory_format) -> torch.Tensor:
    """One fixation per image: signed gradient descent with restarts; the best position.

    Each step runs the model without autograd on every image still searching; only the
    images whose step improved and that take another step need the gradient (the others
    restart, or stop), and only they are run again, forward and backward. The first step
    improves on nothing, so it runs forward and backward on every image at once. With
    `converge`, an image stops once it has sampled that many restarts and its best loss
    is below `converge_ratio` times the lowest loss a restart reached.
    """
    batch = images.shape[0]
    device = images.device
    steps = settings.optimization_steps
    position = torch.zeros(batch, 2, device=device)
    best = position.clone()
    best_loss = torch.full((batch,), float("inf"), device=device)
    stale = torch.zeros(batch, dtype=torch.long, device=device)
    restarted = torch.zeros(batch, dtype=torch.bool, device=device)  # the position is a restart (or jitter)
    samples = torch.zeros(batch, dtype=torch.long, device=device)
    lowest = torch.full((batch,), float("inf"), device=device)  # the lowest loss of a restart
    active = torch.arange(batch, device=device)
    for step in range(steps):
        rows = None if len(active) == batch else active  # every image: no copies
        point = position[active]
        if step == 0 and steps > 1:  # the first step improves on nothing: every image descends from it
            start = point.clone().requires_grad_(True)
            loss = _losses(model, images, difference, targets, memory, grid, rows, start, settings, layout)
            (first_gradient,) = torch.autograd.grad(loss.sum(), start)
            loss = loss.detach()
        else:
            with torch.no_grad():
                loss = _losses(model, images, difference, targets, memory, grid, rows, point, settings, layout)
        improved = loss < best_loss[active]
        best[active] = torch.where(improved.unsqueeze(1), point, best[active])
        best_loss[active] = torch.where(improved, loss, best_loss[active])
        stale[active] = torch.where(improved, 0, stale[active] + 1)
        moved = point.clone()
        failed = [row for row, flag in enumerate(improved.tolist()) if not flag]
        if failed:  # each image draws from its own stream, so a batch moves as its images alone
            index = active[failed].tolist()
            draws = torch.stack([torch.rand(2, generator=generators[i]) for i in index]).to(device)
            moved[failed] = draws * 2 - 1 if settings.random_restart else point[failed] + (draws - 0.5) * settings.lr
        going = stale[active] < settings.patience if settings.patience else torch.ones_like(improved)
        if settings.converge:
            sampled = restarted[active]
            samples[active] += sampled.long()
            lowest[active] = torch.where(sampled, torch.minimum(lowest[active], loss), lowest[active])
            converged = (samples[active] >= settings.converge) & (best_loss[active] < settings.converge_ratio * lowest[active])
            going &= ~converged
        restarted[active] = ~improved
        descend = improved & going
        if step == 0 and steps > 1:
            moved[descend] = point[descend] - settings.lr * torch.sign(first_gradient[descend])
        elif step < steps - 1 and bool(descend.any()):
            start = point[descend].clone().requires_grad_(True)
            descending = active[descend]
            steep = _losses(model, images, difference, targets, memory, grid, descending, start, settings, layout)
            (gradient,) = torch.autograd.grad(steep.sum(), start)
            moved[descend] = start.detach() - settings.lr * torch.sign(gradient)
        position[active] = moved.clamp(-1, 1)
        if settings.patience or settings.converge:
            active = active[going]
            if len(active) == 0:
                break
    return best
