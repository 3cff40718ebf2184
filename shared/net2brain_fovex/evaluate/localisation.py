"""Localisation metrics: does a map point at the object that decides the class?

Plain batched functions over maps (B, H, W) and the object's region, given either as
boxes (B, 4) (x0, y0, x1, y1) in pixels with x1 and y1 exclusive, so that
`map[y0:y1, x0:x1]` is the box, or as masks (B, H, W) of bool, the union of several
boxes per image (`box_regions`).

* Pointing game (Zhang et al., "Top-down Neural Attention by Excitation Backprop",
  ECCV 2016): a hit when the map's maximum lies inside the box.
* Energy-based pointing game, EBPG (Wang et al., "Score-CAM", CVPR-W 2020): the share
  of the map's sum inside the box, in %.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..errors import InputError
from .batches import check_maps

__all__ = ["points_in_boxes", "pointing_game", "energy_in_box", "box_regions"]


def points_in_boxes(points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Whether each point, rounded to the nearest pixel, lies inside its box.

    Parameters
    ----------
    points : tensor (B, 2)
        (row, col) in pixels, e.g. FovEx fixations.
    boxes : tensor or array (B, 4)
        (x0, y0, x1, y1), x1 and y1 exclusive.

    Returns
    -------
    tensor (B,) bool
    """
    boxes = _boxes_for(boxes, len(points), points.device)
    rows, cols = torch.round(points[:, 0]), torch.round(points[:, 1])
    return (cols >= boxes[:, 0]) & (cols < boxes[:, 2]) & (rows >= boxes[:, 1]) & (rows < boxes[:, 3])


def pointing_game(maps: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """Pointing-game hits: whether each map's maximum lies inside the object's region.

    Among equal maxima the first in row-major order counts (`argmax`), so a blank map
    points at the top-left pixel.

    Parameters
    ----------
    maps : tensor (B, H, W)
    regions : tensor or array
        Boxes (B, 4) as (x0, y0, x1, y1), x1 and y1 exclusive, or masks (B, H, W) bool.

    Returns
    -------
    tensor (B,) bool
    """
    check_maps(maps)
    inside = _regions_for(regions, maps)
    peak = maps.flatten(1).argmax(dim=1)
    return inside.flatten(1).gather(1, peak[:, None])[:, 0]


def energy_in_box(maps: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """Energy-based pointing game: the percentage of each map's sum inside the region.

    Parameters
    ----------
    maps : tensor (B, H, W)
        Non-negative maps (attribution maps in [0, 1]).
    regions : tensor or array
        Boxes (B, 4) as (x0, y0, x1, y1), x1 and y1 exclusive, or masks (B, H, W) bool.

    Returns
    -------
    tensor (B,) float
        In [0, 100]; 0 for a map whose sum is 0 (a blank map puts no energy anywhere).
    """
    check_maps(maps)
    inside = _regions_for(regions, maps)
    total = maps.sum(dim=(1, 2))
    within = (maps * inside).sum(dim=(1, 2))
    return torch.where(total > 0, 100 * within / torch.where(total > 0, total, 1), torch.zeros_like(total))


def box_regions(boxes: Sequence[np.ndarray], height: int, width: int) -> torch.Tensor:
    """The union of each image's boxes as masks (B, H, W) bool.

    Parameters
    ----------
    boxes : sequence of arrays (k_i, 4)
        Per image, any number of boxes (x0, y0, x1, y1) in pixels, x1 and y1 exclusive;
        parts outside the image are ignored.
    height, width : int
        The maps' size.
    """
    masks = torch.zeros(len(boxes), height, width, dtype=torch.bool)
    for mask, image_boxes in zip(masks, boxes, strict=True):
        for x0, y0, x1, y1 in np.asarray(image_boxes, dtype=np.int64).reshape(-1, 4):
            mask[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = True
    return masks



def _boxes_for(boxes, count: int, device: torch.device) -> torch.Tensor:
    """Boxes as a (count, 4) int64 tensor on `device`, or an `InputError`."""
    boxes = torch.as_tensor(boxes, device=device)
    if boxes.shape != (count, 4):
        raise InputError(f"boxes must be (B, 4) = ({count}, 4) as x0, y0, x1, y1; got shape {tuple(boxes.shape)}")
    return boxes.long()


def _regions_for(regions, maps: torch.Tensor) -> torch.Tensor:
    """Regions as masks (B, H, W) bool on the maps' device: boxes (B, 4) are drawn."""
    regions = torch.as_tensor(regions, device=maps.device)
    if regions.dtype == torch.bool:
        if regions.shape != maps.shape:
            raise InputError(f"region masks {tuple(regions.shape)} do not match the maps {tuple(maps.shape)}")
        return regions
    return _box_masks(_boxes_for(regions, len(maps), maps.device), *maps.shape[1:])


def _box_masks(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, H, W) bool: True inside each box."""
    rows = torch.arange(height, device=boxes.device)[None, :, None]
    cols = torch.arange(width, device=boxes.device)[None, None, :]
    return (
        (rows >= boxes[:, 1, None, None]) & (rows < boxes[:, 3, None, None])
        & (cols >= boxes[:, 0, None, None]) & (cols < boxes[:, 2, None, None])
    )
