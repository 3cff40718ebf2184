"""FovEx: foveation, gradients, fixation search, batching, determinism, the saving."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from net2brain_fovex.errors import ConfigError
from net2brain_fovex.explain.base import Context
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
    assert full.calls == 3 * 20 and patient.calls < full.calls / 2
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


@pytest.mark.parametrize("bad", [{"scanpath_length": 0}, {"lr": -1}, {"blur_filter_size": 4}, {"forgetting": 2}, {"patience": -1}])
def test_bad_parameters(bad):
    with pytest.raises(ConfigError, match="invalid FovEx parameter"):
        FovExParameters(**bad)
