"""Shape checks of the batches the metrics take: images (B, C, H, W), maps (B, H, W)
and targets (B,)."""
from __future__ import annotations

import torch

from ..errors import InputError

__all__ = ["check_batch", "check_maps"]  # used by the metric modules; not part of the face


def check_batch(images: torch.Tensor, maps: torch.Tensor, targets: torch.Tensor) -> None:
    """Images (B, C, H, W), maps (B, H, W) and targets (B,) of one batch, or an `InputError`."""
    if images.dim() != 4 or maps.shape != (len(images), *images.shape[2:]) or targets.shape != (len(images),):
        raise InputError(
            f"expected images (B, C, H, W), maps (B, H, W) and targets (B,) of one batch, got "
            f"{tuple(images.shape)}, {tuple(maps.shape)} and {tuple(targets.shape)}"
        )


def check_maps(maps: torch.Tensor) -> None:
    """Maps (B, H, W), or an `InputError`."""
    if maps.dim() != 3:
        raise InputError(f"maps must be a batch (B, H, W), got shape {tuple(maps.shape)}")

