"""Seeded sparse random projection for layers too large to keep.

The very sparse random projection of Li, Hastie & Church (2006), as in scikit-learn's
`SparseRandomProjection` with density 1/sqrt(d): each of the k output components sums
about sqrt(d) randomly chosen input features with random signs, scaled by
sqrt(sqrt(d) / k), so that distances are preserved in expectation
(Johnson-Lindenstrauss). The matrix depends only on (d, k, seed, layer name).
"""
from __future__ import annotations

import math
import re
import zlib

import torch

from ..checks import check_range
from ..errors import ConfigError

__all__ = ["parse_reduce", "projection_matrix", "project"]


def parse_reduce(spec: str | None) -> int | None:
    """`srp:N` -> N components; None or "none" -> None."""
    if spec is None or spec.strip().lower() in ("", "none"):
        return None
    match = re.fullmatch(r"\s*srp\s*:\s*(\d+)\s*", spec)
    if not match or int(match.group(1)) < 1:
        raise ConfigError(f"`reduce` {spec!r} is not understood; use srp:N with N >= 1 components, or none")
    return int(check_range("components", int(match.group(1))))


def projection_matrix(features: int, components: int, *, seed: int, layer: str) -> torch.Tensor:
    """A sparse (components x features) COO matrix for the projection y = P x.

    Each component draws its number of entries from Binomial(features, 1 / sqrt(features))
    (at least 1) and their columns with replacement (a column drawn twice is kept once);
    each entry is +sqrt(sqrt(features) / components) or its negative. The matrix depends
    only on the arguments (the module docstring).

    Parameters
    ----------
    features : int
        d, the input features.
    components : int
        k, the output features.
    seed : int
        Seeds torch's generator, together with `layer`.
    layer : str
        The layer's name, so that layers of one size get different matrices.

    Returns
    -------
    sparse tensor (components, features) float32
        Coalesced, on the CPU.
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(layer.encode()))
    density = 1.0 / math.sqrt(features)
    per_component = torch.binomial(
        torch.full((components,), float(features)), torch.full((components,), density), generator=generator
    ).long().clamp_(min=1)
    rows = torch.repeat_interleave(torch.arange(components), per_component)
    cols = torch.randint(features, (int(per_component.sum()),), generator=generator)
    signs = torch.randint(0, 2, (cols.numel(),), generator=generator).float().mul_(2).sub_(1)
    scale = math.sqrt(1.0 / density) / math.sqrt(components)
    # Drawing columns with replacement may pick one twice within a component; keep one.
    key = rows * features + cols
    key, first = _unique_first(key)
    matrix = torch.sparse_coo_tensor(
        torch.stack([key // features, key % features]), signs[first] * scale, (components, features),
        check_invariants=True,
    )
    return matrix.coalesce()


def _unique_first(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    unique, inverse = torch.unique(values, return_inverse=True)
    first = torch.full((unique.numel(),), values.numel(), dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(values.numel()), reduce="amin")
    return unique, first


def project(rows: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Project rows (n, features) to (n, components)."""
    return (matrix @ rows.T.to(matrix.dtype)).T
