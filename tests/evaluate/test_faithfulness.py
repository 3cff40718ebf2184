"""Faithfulness metrics (deletion and insertion): against the literal per-step protocol,
and batched against one image at a time."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from net2brain_fovex.errors import ConfigError, InputError
from net2brain_fovex.evaluate.faithfulness import deletion_insertion

BLACK = torch.tensor([-2.0, -1.5, -1.8])


def tiny_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 8 * 10, 3)).eval()


def tiny_batch(count=3):
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(count, 3, 8, 10, generator=generator)
    # quantised maps: many ties, so the tie order (pixel index) matters
    maps = torch.randint(0, 4, (count, 8, 10), generator=generator).float() / 3
    return images, maps, torch.tensor([0, 2, 1, 0, 1][:count])


def literal_curves(model, image, saliency, target, step):
    """The RISE protocol written out: one pixel list, one forward pass per step."""
    height, width = saliency.shape
    values = saliency.flatten().tolist()
    order = sorted(range(height * width), key=lambda p: (-values[p], p))
    current = {"deletion": image.clone(), "insertion": gaussian_blur(image[None], [11, 11], [5.0, 5.0])[0]}
    curves = {"deletion": [], "insertion": []}
    steps = (height * width + step - 1) // step
    for i in range(steps + 1):
        for kind in curves:
            with torch.no_grad():
                probability = torch.softmax(model(current[kind][None]), dim=1)[0, target].item()
            curves[kind].append(probability)
        for p in order[i * step:(i + 1) * step]:
            row, col = divmod(p, width)
            current["deletion"][:, row, col] = BLACK
            current["insertion"][:, row, col] = image[:, row, col]
    return {kind: np.array(curve) for kind, curve in curves.items()}


def test_deletion_and_insertion_against_the_literal_protocol():
    model = tiny_model()
    images, maps, targets = tiny_batch()
    result = deletion_insertion(model, images, maps, targets, substrate=BLACK, step=7, batch=10)
    for b in range(3):
        expected = literal_curves(model, images[b], maps[b], targets[b].item(), step=7)
        for kind in ("deletion", "insertion"):
            curve = expected[kind]
            assert len(curve) == 13  # ceil(80 / 7) steps, and the start
            np.testing.assert_allclose(result[f"{kind}_curve"][b].numpy(), curve, atol=1e-6)
            assert result[kind][b].item() == pytest.approx(np.trapezoid(curve, dx=1 / (len(curve) - 1)), abs=1e-6)
    # the ends: the clean image, then all black; the blurred image, then the clean one
    with torch.no_grad():
        clean = torch.softmax(model(images), 1).gather(1, targets[:, None])[:, 0]
        black = torch.softmax(model(BLACK[:, None, None].expand_as(images)), 1).gather(1, targets[:, None])[:, 0]
    torch.testing.assert_close(result["deletion_curve"][:, 0], clean)
    torch.testing.assert_close(result["insertion_curve"][:, -1], clean)
    torch.testing.assert_close(result["deletion_curve"][:, -1], black)


def test_deletion_batched_equals_one_image_at_a_time():
    model = tiny_model()
    images, maps, targets = tiny_batch(5)
    together = deletion_insertion(model, images, maps, targets, substrate=BLACK, step=3, batch=9)
    for b in range(5):
        alone = deletion_insertion(model, images[b:b + 1], maps[b:b + 1], targets[b:b + 1], substrate=BLACK, step=3, batch=1000)
        for key, value in alone.items():
            torch.testing.assert_close(together[key][b:b + 1], value, atol=1e-6, rtol=0)


def test_default_step_gives_224_steps():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 28, 2)).eval()
    images = torch.randn(2, 3, 16, 28)
    result = deletion_insertion(model, images, torch.rand(2, 16, 28), torch.tensor([0, 1]), substrate=BLACK)
    assert result["deletion_curve"].shape == (2, 225) and result["insertion"].shape == (2,)


def test_the_model_is_left_as_it_was():
    model = tiny_model().train()
    images, maps, targets = tiny_batch(1)
    deletion_insertion(model, images, maps, targets, substrate=BLACK, step=20)
    assert model.training and all(p.requires_grad and p.grad is None for p in model.parameters())


def test_bad_inputs_are_refused():
    model = tiny_model()
    images, maps, targets = tiny_batch(2)
    with pytest.raises(InputError, match="maps \\(B, H, W\\)"):
        deletion_insertion(model, images, maps[:, :4], targets, substrate=BLACK)
    with pytest.raises(ConfigError, match="step >= 1"):
        deletion_insertion(model, images, maps, targets, substrate=BLACK, step=0)
