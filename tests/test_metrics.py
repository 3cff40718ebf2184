"""Metrics of attribution maps: each against a literal per-pixel / per-step implementation,
analytic cases, and batched against one image at a time."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from net2brain_fovex.errors import ConfigError, InputError
from net2brain_fovex.evaluate.faithfulness import deletion_insertion
from net2brain_fovex.evaluate.localisation import energy_in_box, pointing_game, points_in_boxes

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


def test_pointing_game_against_a_literal_search():
    generator = torch.Generator().manual_seed(2)
    maps = torch.randint(0, 5, (6, 7, 9), generator=generator).float()
    boxes = torch.tensor([[0, 0, 3, 3], [2, 1, 9, 7], [4, 4, 5, 5], [0, 0, 9, 7], [8, 6, 9, 7], [1, 2, 6, 4]])
    hits = pointing_game(maps, boxes)
    for b in range(6):
        best, at = -1.0, None
        for row in range(7):
            for col in range(9):
                if maps[b, row, col].item() > best:
                    best, at = maps[b, row, col].item(), (row, col)
        x0, y0, x1, y1 = boxes[b].tolist()
        assert hits[b].item() == (x0 <= at[1] < x1 and y0 <= at[0] < y1)


def test_energy_in_box_against_a_literal_sum():
    generator = torch.Generator().manual_seed(3)
    maps = torch.rand(4, 7, 9, generator=generator)
    boxes = np.array([[0, 0, 3, 3], [2, 1, 9, 7], [4, 4, 5, 5], [1, 2, 6, 4]])
    energy = energy_in_box(maps, boxes)
    for b in range(4):
        x0, y0, x1, y1 = boxes[b]
        inside = sum(maps[b, r, c].item() for r in range(y0, y1) for c in range(x0, x1))
        assert energy[b].item() == pytest.approx(100 * inside / maps[b].sum().item(), rel=1e-5)


def test_a_map_equal_to_its_box_scores_full_marks_and_one_outside_none():
    boxes = torch.tensor([[2, 1, 6, 4], [0, 3, 3, 7]])
    inside = torch.zeros(2, 7, 9)
    inside[0, 1:4, 2:6] = 1
    inside[1, 3:7, 0:3] = 1
    torch.testing.assert_close(energy_in_box(inside, boxes), torch.full((2,), 100.0))
    assert pointing_game(inside, boxes).all()
    outside = 1 - inside
    torch.testing.assert_close(energy_in_box(outside, boxes), torch.zeros(2))
    assert not pointing_game(outside, boxes).any()
    assert energy_in_box(torch.zeros(1, 7, 9), boxes[:1]).item() == 0.0


def test_points_on_the_box_edges():
    boxes = torch.tensor([[2, 1, 6, 4]] * 4)  # columns 2-5, rows 1-3
    points = torch.tensor([[1.0, 2.0], [3.4, 5.4], [3.6, 5.0], [0.6, 1.6]])
    assert points_in_boxes(points, boxes).tolist() == [True, True, False, True]


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
    with pytest.raises(InputError, match="boxes must be"):
        energy_in_box(maps, torch.zeros(3, 4))
    with pytest.raises(InputError, match="maps must be a batch"):
        pointing_game(maps[0], torch.zeros(1, 4))
