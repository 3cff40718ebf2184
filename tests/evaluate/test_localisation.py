"""Localisation metrics: each against a literal per-pixel implementation and analytic cases."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from net2brain_fovex.errors import InputError
from net2brain_fovex.evaluate.localisation import energy_in_box, pointing_game, points_in_boxes


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


def test_bad_inputs_are_refused():
    maps = torch.rand(2, 8, 10)
    with pytest.raises(InputError, match="boxes must be"):
        energy_in_box(maps, torch.zeros(3, 4))
    with pytest.raises(InputError, match="maps must be a batch"):
        pointing_game(maps[0], torch.zeros(1, 4))
