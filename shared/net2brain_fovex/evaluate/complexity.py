"""Complexity of a map: how concentrated its attribution is.

* Sparseness (Chalasani et al., "Concise explanations of neural networks using
  adversarial training", ICML 2020): the Gini index of the map's values.
"""
from __future__ import annotations

import torch

from ..errors import InputError
from .batches import check_maps

__all__ = ["sparseness"]


def sparseness(maps: torch.Tensor) -> torch.Tensor:
    """The Gini index of each map's values (Chalasani et al., ICML 2020), in [0, 1].

    With the n values sorted ascending, a_1 <= ... <= a_n (non-negative),
    G = sum_i (2 i - n - 1) a_i / (n sum_i a_i): 0 for a uniform map, (n - 1) / n when
    one pixel holds everything. An all-zero map gives NaN (no distribution).

    Parameters
    ----------
    maps : tensor (B, H, W)
        Non-negative maps.

    Returns
    -------
    tensor (B,) float64
    """
    check_maps(maps)
    values = torch.sort(maps.detach().flatten(1).double(), dim=1).values
    if (values[:, 0] < 0).any():
        raise InputError("sparseness needs non-negative maps (attribution maps in [0, 1])")
    n = values.shape[1]
    weights = 2 * torch.arange(1, n + 1, device=values.device, dtype=values.dtype) - n - 1
    total = values.sum(dim=1)
    gini = (values * weights).sum(dim=1) / (n * total)
    return torch.where(total > 0, gini, torch.full_like(total, float("nan")))

