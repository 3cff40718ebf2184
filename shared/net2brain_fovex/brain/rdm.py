"""Representational dissimilarity matrices (RDMs), computed as matrix products.

Every metric but `spearman` is accumulated over chunks of features, so a layer larger
than memory streams from its HDF5 file: the Gram matrix (or the L1 distance matrix) and
the row statistics grow chunk by chunk, and peak memory is about two n x n matrices plus
one chunk. `spearman` ranks whole stimulus rows and needs them in memory at once.

Formulas, for stimuli i and j with patterns x_i, x_j of p features:

=============  ===================================================================
correlation    1 - r(x_i, x_j), r the Pearson correlation across features
euclidean      sqrt(sum_k (x_ik - x_jk)^2)
sqeuclidean    sum_k (x_ik - x_jk)^2
cosine         1 - x_i . x_j / (|x_i| |x_j|)
manhattan      sum_k |x_ik - x_jk|
spearman       1 - r(rank(x_i), rank(x_j)), ranks across features, ties averaged
=============  ===================================================================

With `standardize`, each feature is first z-scored across stimuli (population standard
deviation; a constant feature becomes 0). A correlation or cosine with a constant (or
all-zero) pattern is undefined: its entries are NaN, with a warning.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch

from ..errors import ConfigError, InputError
from .comparisons import ranks as ranks_of
from .registry import PRECISIONS, RDM_METRICS

__all__ = ["compute_rdm", "compute_rdms", "rdm_from_chunks", "TORCH_DTYPES"]

TORCH_DTYPES = {"single": torch.float32, "double": torch.float64}  # the arithmetic of each of PRECISIONS


def compute_rdm(
    patterns: np.ndarray | torch.Tensor,
    metric: str = RDM_METRICS.default,
    *,
    standardize: bool = False,
    precision: str = "single",
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """The RDM of patterns held in memory.

    Parameters
    ----------
    patterns : array (n, ...)
        One row per stimulus; trailing axes are flattened into features (see
        `compute_rdms` for several RDMs at once).
    metric : str, default "correlation"
        A name of `RDM_METRICS` (formulas: the module docstring).
    standardize : bool, default False
        z-score every feature across stimuli first.
    precision : {"single", "double"}
        float32 or float64 arithmetic.
    device : str or torch.device

    Returns
    -------
    ndarray (n, n), symmetric with a zero diagonal (NaN where undefined).
    """
    patterns = torch.as_tensor(np.asarray(patterns) if not torch.is_tensor(patterns) else patterns)
    flat = patterns.reshape(patterns.shape[0], -1)
    return compute_rdms(flat.unsqueeze(0), metric, standardize=standardize, precision=precision, device=device)[0]


def compute_rdms(
    patterns: np.ndarray | torch.Tensor,
    metric: str = RDM_METRICS.default,
    *,
    standardize: bool = False,
    precision: str = "single",
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """A batch of RDMs: patterns (b, n, p) -> (b, n, n), one RDM per leading index
    (options as `compute_rdm`).

    The whole batch is one chunk in memory (`rdm_from_chunks` streams larger patterns).

    Parameters
    ----------
    patterns : array or tensor (b, n, p)
        `b` sets of `n` stimuli with `p` features each.
    metric : str, default "correlation"
        A name of `RDM_METRICS` (formulas: the module docstring).
    standardize : bool, default False
        z-score every feature across the stimuli of its set first.
    precision : {"single", "double"}
        float32 or float64 arithmetic.
    device : str or torch.device
        Where the products are computed; the result comes back to the CPU.

    Returns
    -------
    ndarray (b, n, n)
        float32 or float64 as `precision`; each RDM symmetric with a zero diagonal (NaN where
        undefined: a constant pattern under `correlation`, `cosine` or `spearman`, with a
        RuntimeWarning).

    Raises
    ------
    InputError
        `patterns` not 3D, fewer than 2 stimuli, or NaN or infinite values.
    UnknownNameError
        An unknown `metric` or `precision`.
    """
    patterns = torch.as_tensor(patterns)
    if patterns.ndim != 3:
        raise InputError(f"patterns for a batch of RDMs must be (batch, stimuli, features), got shape {tuple(patterns.shape)}")
    return rdm_from_chunks(lambda: iter([patterns]), patterns.shape[:2], metric, standardize=standardize,
                           precision=precision, device=device)


def rdm_from_chunks(
    chunks: Callable[[], Iterable[torch.Tensor]],
    shape: tuple[int, int],
    metric: str,
    *,
    standardize: bool = False,
    precision: str = "single",
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """RDMs accumulated over feature chunks.

    `chunks()` yields tensors (b, n, p_c) whose feature blocks together make the
    patterns; it is called twice for `correlation` (row means, then centred products)
    unless there is a single chunk. Returns (b, n, n).
    """
    RDM_METRICS.check(metric)
    dtype, device = TORCH_DTYPES[PRECISIONS.check(precision)], torch.device(device)
    batch, n = shape
    if n < 2:
        raise InputError(f"an RDM needs at least 2 stimuli, got {n}")
    cached: torch.Tensor | None = None

    def prepared() -> Iterator[torch.Tensor]:
        nonlocal cached
        if cached is not None:  # a single chunk is kept instead of being read twice
            yield cached
            return
        first, count = None, 0
        for chunk in chunks():
            block = _prepare(chunk, dtype, device, standardize)
            count += 1
            first = block if count == 1 else None
            yield block
        if count == 1:
            cached = first

    if metric == "spearman":
        blocks = list(prepared())
        if len(blocks) != 1:
            raise ConfigError("the spearman metric needs whole stimulus rows in memory and cannot be streamed; "
                              "raise `memory` or use another metric")
        ranks = ranks_of(blocks[0])
        return _correlation_distance(_gram_accumulate(iter([ranks]), _row_means(iter([ranks]))), metric)
    if metric == "manhattan":
        total = torch.zeros(batch, n, n, dtype=dtype, device=device)
        for block in prepared():
            total += torch.cdist(block, block, p=1)
        return _finish(total)
    if metric == "correlation":
        means = _row_means(prepared())
        return _correlation_distance(_gram_accumulate(prepared(), means), metric)
    if metric == "cosine":
        return _correlation_distance(_gram_accumulate(prepared(), None), metric)
    gram = _gram_accumulate(prepared(), None, centre_features=True)
    norms = torch.diagonal(gram, dim1=-2, dim2=-1)
    squared = (norms.unsqueeze(-1) + norms.unsqueeze(-2) - 2 * gram).clamp_(min=0)
    return _finish(squared.sqrt_() if metric == "euclidean" else squared)


def _prepare(chunk: torch.Tensor, dtype: torch.dtype, device: torch.device, standardize: bool) -> torch.Tensor:
    block = torch.as_tensor(chunk).to(device=device, dtype=dtype)
    # A row sum is non-finite whenever the row holds NaN or inf: one cheap reduction
    # instead of a full element-wise scan (which runs only to rule out an overflow).
    if not torch.isfinite(block.sum(dim=-1)).all() and not torch.isfinite(block).all():
        raise InputError("the patterns hold NaN or infinite values; remove or impute them first")
    if standardize:
        mean = block.mean(dim=-2, keepdim=True)
        std = block.std(dim=-2, keepdim=True, unbiased=False)
        block = torch.where(std > 0, (block - mean) / torch.where(std > 0, std, 1), 0)
    return block


def _row_means(blocks: Iterable[torch.Tensor]) -> torch.Tensor:
    total, count = None, 0
    for block in blocks:
        sums = block.sum(dim=-1)
        total = sums if total is None else total + sums
        count += block.shape[-1]
    return total / count


_COLUMNS = 4096  # features centred at a time: a bounded temporary (16 MB for 1000 stimuli: it stays in L3 for its product)


def _gram_accumulate(blocks: Iterable[torch.Tensor], row_means: torch.Tensor | None, centre_features: bool = False) -> torch.Tensor:
    """Sum over chunks of X_c X_c^T, with rows centred by `row_means` (correlation) or
    each chunk's features centred across stimuli (distances: exact, and better rounding).

    On a CPU in numpy throughout, for its BLAS (`_symmetric_product`); torch's element-wise
    centring between the products would leave its OpenMP threads spinning while BLAS's
    threads want the cores (0.52 against 0.40 s for 1000 x 50,000 float32 on two cores)."""
    gram, buffer = None, None
    for block in blocks:
        on_cpu = block.device.type == "cpu"
        block, means = (block.numpy(), None if row_means is None else row_means.numpy()) if on_cpu else (block, row_means)
        for start in range(0, block.shape[-1], _COLUMNS):
            part = block[..., start:start + _COLUMNS]
            if means is not None or centre_features:
                centre = means[..., None] if means is not None else part.mean(axis=-2, keepdims=True)
                if on_cpu:  # into one buffer: a new array for every part costs as much again in page faults
                    buffer = np.empty((*part.shape[:-1], _COLUMNS), dtype=part.dtype) if buffer is None else buffer
                    part = np.subtract(part, centre, out=buffer[..., :part.shape[-1]])
                else:
                    part = part - centre
            gram = _symmetric_product(part, gram)
    return torch.as_tensor(gram)


def _symmetric_product(x: np.ndarray | torch.Tensor, out: np.ndarray | torch.Tensor | None) -> np.ndarray | torch.Tensor:
    """out + X X^T (X (..., n, p): a numpy array on a CPU, else a tensor), from a
    rank-k update where there is one. Numpy's `a @ a.T` is BLAS syrk (one triangle, half
    the multiply-adds of a full product; torch has no such kernel): 0.32 against 0.64 s
    for 1000 x 50,000 float32 on the benchmarks' 2-core machine. On a GPU the blocks on
    and above the diagonal (5/8 of the work for four row blocks), mirrored."""
    n = x.shape[-2]
    if isinstance(x, np.ndarray):
        out = np.zeros((*x.shape[:-1], n), dtype=x.dtype) if out is None else out
        for total, matrix in zip(out.reshape(-1, n, n), x.reshape(-1, *x.shape[-2:]), strict=True):
            total += matrix @ matrix.T  # the same array transposed: syrk
        return out
    if out is None:
        out = torch.zeros(*x.shape[:-1], n, dtype=x.dtype, device=x.device)
    if n < 256:
        return out.add_(x @ x.transpose(-1, -2))
    edges = [round(n * k / 4) for k in range(5)]
    for first, last in zip(edges[:-1], edges[1:], strict=True):
        product = x[..., first:last, :] @ x[..., first:, :].transpose(-1, -2)  # rows first:last x columns first:n
        out[..., first:last, first:] += product
        out[..., last:, first:last] += product[..., :, last - first:].transpose(-1, -2)
    return out


def _correlation_distance(gram: torch.Tensor, metric: str) -> np.ndarray:
    norms = torch.diagonal(gram, dim1=-2, dim2=-1).sqrt()
    if (norms == 0).any():
        warnings.warn(
            f"{int((norms == 0).sum())} stimulus pattern(s) are constant: their {metric} dissimilarities "
            "are undefined and set to NaN",
            RuntimeWarning, stacklevel=3,
        )
    similarity = gram / (norms.unsqueeze(-1) * norms.unsqueeze(-2))
    return _finish((1 - similarity).clamp_(min=0, max=2))


def _finish(matrix: torch.Tensor) -> np.ndarray:
    """Exactly symmetric, zero diagonal (kept NaN where the row is undefined)."""
    matrix = (matrix + matrix.transpose(-1, -2)) / 2
    diagonal = torch.diagonal(matrix, dim1=-2, dim2=-1)
    diagonal.copy_(torch.where(torch.isnan(diagonal), diagonal, torch.zeros_like(diagonal)))
    return matrix.cpu().numpy()
