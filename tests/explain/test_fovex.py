"""FovEx: foveation, gradients, fixation search, batching, determinism, the saving."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from net2brain_fovex.errors import ConfigError
from net2brain_fovex.explain.base import Attribution, Context, frozen, logits_of, normalise_maps
from net2brain_fovex.explain.methods.fovex import _fovea, foveate, fovex
from net2brain_fovex.explain.registry import FovExParameters

SMALL = dict(scanpath_length=3, optimization_steps=8, blur_filter_size=9, blur_sigma=3.0)


class RegionModel(nn.Module):
    """Class 1's logit is the sharpness (pixel-to-pixel change) inside rows 4-11, cols 18-25."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(10.0))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        region = x[:, :, 4:12, 18:26]
        sharp = (region[..., 1:, :] - region[..., :-1, :]).abs().mean(dim=(1, 2, 3))
        return torch.stack([torch.zeros_like(sharp), self.scale * sharp], dim=1)


def context(seed=42):
    return Context(black=torch.zeros(3), seed=seed)


def grid_of(height, width):
    rows, cols = torch.linspace(-1, 1, height), torch.linspace(-1, 1, width)
    return torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1)


def test_foveation_against_per_pixel_formula():
    torch.manual_seed(0)
    images, blurred = torch.randn(2, 3, 5, 7), torch.randn(2, 3, 5, 7)
    memory = torch.rand(2, 5, 7) * 0.5
    points = torch.tensor([[0.2, -0.4], [-1.0, 1.0]])
    got = foveate(images, blurred, memory, grid_of(5, 7), points, sigma=0.15)
    for b in range(2):
        for i in range(5):
            for j in range(7):
                u = (-1 + 2 * i / 4, -1 + 2 * j / 6)
                fovea = np.exp(-((u[0] - points[b, 0].item()) ** 2 + (u[1] - points[b, 1].item()) ** 2) / 0.15)
                weight = min(max(1 - (memory[b, i, j].item() + fovea), 0.0), 1.0)
                for c in range(3):
                    expected = images[b, c, i, j].item() + (blurred[b, c, i, j].item() - images[b, c, i, j].item()) * weight
                    assert got[b, c, i, j].item() == pytest.approx(expected, abs=1e-6)


def test_fixation_gradient_against_finite_differences():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).double()
    images, blurred = torch.randn(1, 3, 12, 12, dtype=torch.float64), torch.randn(1, 3, 12, 12, dtype=torch.float64)
    memory, grid = torch.zeros(1, 12, 12, dtype=torch.float64), grid_of(12, 12).double()
    target = torch.tensor([2])

    def loss(point):
        view = foveate(images, blurred, memory, grid, point, sigma=0.15)
        return nn.functional.cross_entropy(model(view), target)

    point = torch.tensor([[0.1, -0.3]], dtype=torch.float64, requires_grad=True)
    (gradient,) = torch.autograd.grad(loss(point), point)
    step = 1e-6
    for axis in range(2):
        shift = torch.zeros(1, 2, dtype=torch.float64)
        shift[0, axis] = step
        numeric = (loss(point.detach() + shift) - loss(point.detach() - shift)) / (2 * step)
        assert gradient[0, axis].item() == pytest.approx(numeric.item(), rel=1e-5, abs=1e-9)


def test_fixations_and_peak_land_in_the_deciding_region():
    torch.manual_seed(2)
    images = torch.randn(4, 3, 32, 32)
    result = fovex(RegionModel(), images, torch.ones(4, dtype=torch.long), context(), parameters=FovExParameters(**SMALL))
    assert result.maps.shape == (4, 32, 32) and result.fixations.shape == (4, 3, 2)
    assert result.maps.min() >= 0 and result.maps.max() <= 1
    first = result.fixations[:, 0]
    assert ((first[:, 0] >= 3) & (first[:, 0] <= 12) & (first[:, 1] >= 17) & (first[:, 1] <= 26)).all()
    peaks = result.maps.flatten(1).argmax(1)
    rows, cols = peaks // 32, peaks % 32
    assert ((rows >= 3) & (rows <= 12) & (cols >= 17) & (cols <= 26)).all()
    assert ((result.fixations >= 0) & (result.fixations <= 31)).all()  # inside the image


def test_batch_equals_single_images_and_is_seeded():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(3, 6, 5, padding=2), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, 4))
    images = torch.randn(3, 3, 24, 24)
    targets = torch.tensor([0, 3, 1])
    batch = fovex(model, images, targets, context(), parameters=FovExParameters(**SMALL))
    for i in range(3):
        alone = fovex(model, images[i:i + 1], targets[i:i + 1], context(), parameters=FovExParameters(**SMALL))
        torch.testing.assert_close(alone.fixations[0], batch.fixations[i], atol=1e-5, rtol=0)
        torch.testing.assert_close(alone.maps[0], batch.maps[i], atol=1e-5, rtol=0)
    again = fovex(model, images, targets, context(), parameters=FovExParameters(**SMALL))
    assert torch.equal(again.fixations, batch.fixations)
    other = fovex(model, images, targets, context(seed=7), parameters=FovExParameters(**SMALL))
    assert not torch.equal(other.fixations, batch.fixations)


def test_model_is_left_as_it_was():
    model = RegionModel().train()
    fovex(model, torch.randn(1, 3, 32, 32), torch.ones(1, dtype=torch.long), context(), parameters=FovExParameters(**SMALL))
    assert model.training and model.scale.requires_grad and model.scale.grad is None


def test_patience_saves_passes_and_keeps_the_answer():
    torch.manual_seed(4)
    images = torch.randn(4, 3, 32, 32)
    full, patient = RegionModel(), RegionModel()
    a = fovex(full, images, torch.ones(4, dtype=torch.long), context(), parameters=FovExParameters(**{**SMALL, "optimization_steps": 20}))
    b = fovex(patient, images, torch.ones(4, dtype=torch.long), context(), parameters=FovExParameters(**{**SMALL, "optimization_steps": 20, "patience": 3}))
    assert full.calls > 3 * 20 and patient.calls < full.calls * 0.7
    assert (a.maps.flatten(1).argmax(1) == b.maps.flatten(1).argmax(1)).all()


def test_vision_transformer_runs():
    from tests.toy_models import TinyViT

    torch.manual_seed(5)
    result = fovex(TinyViT().eval(), torch.randn(2, 3, 32, 32), torch.tensor([0, 2]), context(), parameters=FovExParameters(**SMALL))
    assert result.maps.shape == (2, 32, 32) and torch.isfinite(result.maps).all()


def test_heatmap_is_the_normalised_sum_of_gaussians():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 2))
    result = fovex(model, torch.randn(1, 3, 16, 16), torch.tensor([1]), context(), parameters=FovExParameters(**SMALL))
    points = result.fixations[0] / 15 * 2 - 1
    heat = _fovea(grid_of(16, 16), points, sigma=0.15).sum(dim=0)
    expected = (heat - heat.min()) / (heat.max() - heat.min())
    torch.testing.assert_close(result.maps[0], expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("bad", [{"scanpath_length": 0}, {"lr": -1}, {"blur_filter_size": 4}, {"forgetting": 2}, {"patience": -1},
                                 {"converge": -1}, {"converge": 1.5}, {"converge_ratio": 0}, {"converge_ratio": 1.5},
                                 {"precision": "fp64"}, {"precision": 16}])
def test_bad_parameters(bad):
    with pytest.raises(ConfigError, match="invalid FovEx parameter"):
        FovExParameters(**bad)


# -- the implementation before the gradient was taken only where it is used, verbatim: the reference
def todays_fovex(model, images, targets, context, *, parameters):
    settings = parameters
    batch, _, height, width = images.shape
    device = images.device
    images = images.detach()
    kernel = min(settings.blur_filter_size, 2 * min(height, width) - 1)
    kernel -= 1 - kernel % 2
    blurred = gaussian_blur(images, [kernel, kernel], [settings.blur_sigma, settings.blur_sigma])
    rows = torch.linspace(-1, 1, height, device=device)
    cols = torch.linspace(-1, 1, width, device=device)
    grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1)
    generators = [torch.Generator().manual_seed(context.seed) for _ in range(batch)]
    memory = torch.zeros(batch, height, width, device=device)
    fixations = torch.zeros(batch, settings.scanpath_length, 2, device=device)
    with frozen(model):
        for step_of_path in range(settings.scanpath_length):
            best = todays_search(model, images, blurred, targets, memory, grid, generators, settings)
            fixations[:, step_of_path] = best
            memory = settings.forgetting * memory + todays_fovea(grid, best, settings.foveation_sigma)
    heat = todays_fovea(grid, fixations.flatten(0, 1), settings.heatmap_sigma).view(batch, -1, height, width).sum(dim=1)
    pixels = (fixations + 1) / 2 * torch.tensor([height - 1, width - 1], device=device, dtype=fixations.dtype)
    return Attribution(normalise_maps(heat), pixels)


def todays_fovea(grid, points, sigma):
    return torch.exp(-((grid.unsqueeze(0) - points[:, None, None, :]) ** 2).sum(dim=-1) / sigma)


def todays_foveate(images, blurred, memory, grid, points, *, sigma):
    keep_blur = torch.clamp(1 - (memory + todays_fovea(grid, points, sigma)), 0, 1)
    return images + (blurred - images) * keep_blur.unsqueeze(1)


def todays_search(model, images, blurred, targets, memory, grid, generators, settings):
    batch = images.shape[0]
    device = images.device
    position = torch.zeros(batch, 2, device=device)
    best = position.clone()
    best_loss = torch.full((batch,), float("inf"), device=device)
    stale = torch.zeros(batch, dtype=torch.long, device=device)
    active = torch.arange(batch, device=device)
    for _ in range(settings.optimization_steps):
        point = position[active].clone().requires_grad_(True)
        view = todays_foveate(images[active], blurred[active], memory[active], grid, point, sigma=settings.foveation_sigma)
        loss = nn.functional.cross_entropy(logits_of(model(view)), targets[active], reduction="none")
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


def small_cnn():
    torch.manual_seed(6)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 4))


def tiny_vit():
    from tests.toy_models import TinyViT

    torch.manual_seed(7)
    return TinyViT()


@pytest.mark.parametrize("build", [small_cnn, tiny_vit, RegionModel], ids=["cnn", "vit", "region"])
@pytest.mark.parametrize("extra", [{}, {"patience": 3}, {"random_restart": False}, {"optimization_steps": 1}],
                         ids=["defaults", "patience", "jitter", "one-step"])
def test_the_same_fixations_and_maps_as_before(build, extra):
    model = build()
    torch.manual_seed(8)
    images = torch.randn(5, 3, 32, 32)
    targets = torch.tensor([1, 0, 1, 1, 0]) if build is RegionModel else torch.tensor([0, 2, 1, 2, 0])
    settings = FovExParameters(**{**SMALL, "optimization_steps": 12, **extra})
    before = todays_fovex(model, images, targets, context(), parameters=settings)
    now = fovex(model, images, targets, context(), parameters=settings)
    assert torch.equal(now.fixations, before.fixations)
    assert torch.equal(now.maps, before.maps)


class Recording(nn.Module):
    """The model, recording each pass: (images, whether autograd records it, the losses of a step)."""

    def __init__(self, model, targets):
        super().__init__()
        self.model, self.targets, self.passes = model, targets, []

    def forward(self, x):
        logits = self.model(x)
        losses = nn.functional.cross_entropy(logits.detach(), self.targets[:len(x)], reduction="none")
        self.passes.append((len(x), torch.is_grad_enabled(), losses))
        return logits


def test_the_gradient_is_taken_only_where_the_next_step_uses_it():
    torch.manual_seed(9)
    images, targets = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    one_step = Recording(small_cnn(), targets)
    fovex(one_step, images, targets, context(), parameters=FovExParameters(**{**SMALL, "optimization_steps": 1}))
    assert [(size, grad) for size, grad, _ in one_step.passes] == [(4, False)] * 3  # the only step's gradient: unused
    model = Recording(small_cnn(), targets)
    fovex(model, images, targets, context(), parameters=FovExParameters(**SMALL))
    # every step measures every image without autograd, but the first of a fixation, which
    # improves on nothing and takes every gradient with it; then the images whose step improved
    # on their best loss so far, unless it was the fixation's last step, run forward and backward
    expected, taken, best, step = [], [], None, 0
    for size, grad, losses in model.passes:
        if grad and step != 0:
            taken[-1] = size
            continue
        assert size == 4 and grad == (step == 0)
        best = losses if step == 0 else best
        improved = (losses < best) | (step == 0)
        best = torch.minimum(best, losses)
        expected.append(int(improved.sum()) if step < 7 else 0)
        taken.append(size if grad else 0)
        step = (step + 1) % 8
    assert len(expected) == 3 * 8 and taken == expected and 3 * 4 < sum(taken) < 3 * 7 * 4


def literal_converging_fovex(model, image, target, seed, settings):
    """One image, step by step: the search with a forward and backward pass at every step and
    the converge rule written out; fixations (k, 2) in pixels."""
    height, width = image.shape[-2:]
    kernel = settings.blur_filter_size
    blurred = gaussian_blur(image[None], [kernel, kernel], [settings.blur_sigma, settings.blur_sigma])
    grid = grid_of(height, width)
    generator = torch.Generator().manual_seed(seed)
    memory = torch.zeros(1, height, width)
    fixations = []
    for _ in range(settings.scanpath_length):
        position, best, best_loss = torch.zeros(2), torch.zeros(2), float("inf")
        restart_losses, at_a_restart = [], False
        for _ in range(settings.optimization_steps):
            point = position.clone().requires_grad_(True)
            view = foveate(image[None], blurred, memory, grid, point[None], sigma=settings.foveation_sigma)
            loss = nn.functional.cross_entropy(model(view), target[None])
            (gradient,) = torch.autograd.grad(loss, point)
            loss = loss.item()
            if at_a_restart:
                restart_losses.append(loss)
            improved = loss < best_loss
            if improved:
                best, best_loss = point.detach().clone(), loss
                position = point.detach() - settings.lr * torch.sign(gradient)
            else:
                position = torch.rand(2, generator=generator) * 2 - 1
            position = position.clamp(-1, 1)
            at_a_restart = not improved
            if len(restart_losses) >= settings.converge and best_loss < settings.converge_ratio * min(restart_losses):
                break
        fixations.append(best)
        memory = settings.forgetting * memory + _fovea(grid, best[None], settings.foveation_sigma)
    return (torch.stack(fixations) + 1) / 2 * torch.tensor([height - 1, width - 1])


def test_converge_against_a_literal_loop():
    torch.manual_seed(10)
    images, targets = torch.randn(4, 3, 32, 32), torch.tensor([1, 1, 0, 1])
    settings = FovExParameters(**{**SMALL, "optimization_steps": 20, "converge": 3, "converge_ratio": 0.2})
    model = RegionModel()
    result = fovex(model, images, targets, context(), parameters=settings)
    for i in range(4):
        expected = literal_converging_fovex(model, images[i], targets[i], 42, settings)
        torch.testing.assert_close(result.fixations[i], expected, atol=1e-5, rtol=0)


def test_converge_saves_passes_where_the_best_stands_out_and_keeps_the_answer():
    torch.manual_seed(4)
    images = torch.randn(4, 3, 32, 32)
    full, converging = RegionModel(), RegionModel()
    settings = {**SMALL, "optimization_steps": 20}
    a = fovex(full, images, torch.ones(4, dtype=torch.long), context(), parameters=FovExParameters(**settings))
    b = fovex(converging, images, torch.ones(4, dtype=torch.long), context(),
              parameters=FovExParameters(**settings, converge=3))
    assert full.calls > 3 * 20 and converging.calls < full.calls * 0.8
    assert (a.maps.flatten(1).argmax(1) == b.maps.flatten(1).argmax(1)).all()


class Indifferent(nn.Module):
    """The same logits whatever the image: a flat loss, which no search converges on."""

    def __init__(self):
        super().__init__()
        self.logits = nn.Parameter(torch.tensor([0.5, -0.5, 0.0]))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.logits.expand(len(x), -1) + 0 * x.mean(dim=(1, 2, 3))[:, None]


def test_converge_does_not_stop_on_a_flat_loss():
    model = Indifferent()
    fovex(model, torch.randn(2, 3, 16, 16), torch.tensor([0, 2]), context(),
          parameters=FovExParameters(**SMALL, converge=1))
    assert model.calls == 3 * 8  # every step, and no gradient beyond the first step's


class SharpConv(nn.Module):
    """RegionModel's decision computed by a convolution (row-to-row differences), which autocast runs in bf16."""

    def __init__(self) -> None:
        super().__init__()
        self.difference = nn.Conv2d(3, 3, (2, 1), groups=3, bias=False)
        self.difference.weight.data[:] = torch.tensor([[1.0], [-1.0]])
        self.head = nn.Linear(1, 2)
        self.head.weight.data[:] = torch.tensor([[0.0], [10.0]])
        self.head.bias.data.zero_()

    def forward(self, x):
        sharp = self.difference(x)[:, :, 4:11, 18:26].abs().mean(dim=(1, 2, 3))
        return self.head(sharp[:, None])


def test_bf16_maps_stay_close_to_fp32():
    torch.manual_seed(11)
    model, images = SharpConv(), torch.randn(6, 3, 32, 32)
    targets = torch.tensor([1, 1, 0, 1, 0, 1])
    settings = {**SMALL, "optimization_steps": 12}
    full = fovex(model, images, targets, context(), parameters=FovExParameters(**settings))
    half = fovex(model, images, targets, context(), parameters=FovExParameters(**settings, precision="bf16"))
    again = fovex(model, images, targets, context(), parameters=FovExParameters(**settings, precision="bf16"))
    assert torch.equal(half.maps, again.maps) and half.maps.dtype == torch.float32
    assert half.maps.min() >= 0 and half.maps.max() <= 1
    centred = [m.flatten(1) - m.flatten(1).mean(1, keepdim=True) for m in (full.maps, half.maps)]
    correlation = (centred[0] * centred[1]).sum(1) / (centred[0].norm(dim=1) * centred[1].norm(dim=1))
    assert correlation.mean() > 0.9  # README: on the demo task the maps correlate 0.97 on average


def test_fp16_is_refused_on_a_cpu():
    with pytest.raises(ConfigError, match="precision=fp16.*GPUs.*precision=bf16"):
        fovex(RegionModel(), torch.randn(1, 3, 16, 16), torch.ones(1, dtype=torch.long), context(),
              parameters=FovExParameters(precision="fp16"))
