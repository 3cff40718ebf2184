"""Comparing RDMs: upper triangles, ranks, and correlations of RDM vectors.

The upper triangle (k=1, row-major: scipy's `squareform` order) of each RDM is compared
with Spearman's rho (average ranks for ties), Pearson's r or Kendall's tau-a (names of
`COMPARISONS`). Spearman and Pearson correlations are dot products of centred,
unit-length rows (`prepare`), so that many pairs are one matrix product. A constant
vector has no correlation with anything: NaN, with a warning, never 0.
"""
from __future__ import annotations

import warnings

import numpy as np

from .registry import COMPARISONS

__all__ = ["upper_triangle", "ranks", "prepare", "correlate", "correlate_pairs", "compare", "compare_pairs"]


def upper_triangle(rdms: np.ndarray) -> np.ndarray:
    """(..., n, n) -> (..., n(n-1)/2): the entries above the diagonal, row by row."""
    n = rdms.shape[-1]
    rows, cols = np.triu_indices(n, k=1)
    return rdms[..., rows, cols]


def compare(a: np.ndarray, b: np.ndarray, method: str = "spearman") -> np.ndarray:
    """All pairs: a (A, m) against b (B, m) -> (A, B) correlations.

    Parameters
    ----------
    a, b : array (A, m) and (B, m)
        RDM vectors (`upper_triangle`), one per row, all of the same length m; a 1D vector
        is one row.
    method : str, default "spearman"
        A name of `COMPARISONS`: Spearman's rho, Pearson's r or Kendall's tau-a. `kendall`
        takes O(A B m^2) work and compares the values in float32 (values closer than its
        resolution count as ties).

    Returns
    -------
    ndarray (A, B) float64
        Entry (i, j) compares a[i] with b[j]; NaN where either vector is constant (with a
        RuntimeWarning).

    Raises
    ------
    UnknownNameError
        An unknown `method`.
    """
    COMPARISONS.check(method)
    return correlate(prepare(a, method), prepare(b, method), method)


def compare_pairs(a: np.ndarray, b: np.ndarray, method: str = "spearman") -> np.ndarray:
    """Row by row: a (K, m) against b (K, m) -> (K,) correlations.

    Parameters
    ----------
    a, b : array (K, m)
        RDM vectors (`upper_triangle`), row k of `a` compared with row k of `b`; a 1D
        vector is one row.
    method : str, default "spearman"
        A name of `COMPARISONS` (as for `compare`).

    Returns
    -------
    ndarray (K,) float64
        NaN where either vector of a pair is constant (with a RuntimeWarning).

    Raises
    ------
    UnknownNameError
        An unknown `method`.
    """
    COMPARISONS.check(method)
    return correlate_pairs(prepare(a, method), prepare(b, method), method)


def prepare(x: np.ndarray, method: str) -> np.ndarray:
    """RDM vectors (..., m) in the form `correlate` compares, float64 and at least 2D:
    for pearson and spearman unit-length centred rows (of the ranks for spearman), so
    that correlations are dot products; for kendall the values themselves.

    A vector compared with many others (a model RDM with every ROI's subjects, a subject
    with its scores and its noise ceilings) is prepared once: ranking is most of the cost
    of a Spearman comparison."""
    x = np.atleast_2d(x).astype(float)  # a copy, also of broadcast views: the sums of a broadcast view round differently
    if method == "kendall":
        return x
    return _unit(ranks(x) if method == "spearman" else x)


def correlate(a: np.ndarray, b: np.ndarray, method: str) -> np.ndarray:
    """All pairs of prepared rows (`prepare`): a (A, m) against b (B, m) -> (A, B), NaN
    where either vector is constant."""
    if method == "kendall":
        return _undefined_where_constant(_kendall_tau_a(a, b), a, b)
    return a @ b.T


def correlate_pairs(a: np.ndarray, b: np.ndarray, method: str) -> np.ndarray:
    """Prepared rows (`prepare`) compared along the last axis, a (..., m) with b (..., m)
    broadcast against each other -> (...)."""
    if method == "kendall":
        a, b = np.broadcast_arrays(a, b)
        pairs = zip(a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1]), strict=True)
        return np.array([correlate(x[None], y[None], method)[0, 0] for x, y in pairs]).reshape(a.shape[:-1])
    return np.einsum("...m,...m->...", a, b)


def ranks(x):
    """Ranks along the last axis, 1..m, ties given their average rank (as scipy's
    `rankdata`), of a numpy array or a torch tensor, returned as the same kind.

    Float32 input gives float32 ranks (exact up to 2^24 entries). On a CPU both kinds are
    ranked with numpy's vectorised sort (several times faster than torch's there); torch
    tensors on a GPU are ranked there.
    """
    if not isinstance(x, np.ndarray) and hasattr(x, "device"):  # a torch tensor
        if x.device.type == "cpu":
            import torch

            return torch.from_numpy(_numpy_ranks(x.numpy())).to(x.dtype)
        return _torch_ranks(x)
    return _numpy_ranks(np.asarray(x))


def _numpy_ranks(x: np.ndarray) -> np.ndarray:
    x = x if x.dtype in (np.float32, np.float64) else x.astype(float)
    flat = x.reshape(-1, x.shape[-1])
    rows, m = flat.shape
    if flat.size < 2**31 and not np.isnan(flat).any():
        if flat.dtype == np.float32:
            sources, tied = _sorted_float32(flat)
        else:  # sorted by the float32 rounding (monotone), then the runs it makes equal re-sorted in float64
            with np.errstate(over="ignore"):
                sources, tied = _sorted_float32(flat.astype(np.float32))
            if tied.any():
                sources, tied = _refined(flat, sources, tied)
    else:
        order = np.argsort(flat, axis=-1)
        ordered = np.take_along_axis(flat, order, axis=-1)
        tied = ordered[:, 1:] == ordered[:, :-1]
        sources = order + (np.arange(rows) * m)[:, None]
    result = np.empty(rows * m, dtype=flat.dtype)
    result[sources.reshape(-1)] = np.broadcast_to(np.arange(1, m + 1, dtype=flat.dtype), (rows, m)).reshape(-1)
    row, left, mean = _tied_runs(tied)
    result[sources[row, left]] = mean.astype(flat.dtype)  # runs of equal values: the mean of their positions
    result[sources[row, left + 1]] = mean.astype(flat.dtype)
    return result.reshape(x.shape)


def _sorted_float32(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float32 rows (rows, m) without NaN, at most 2^31 entries, sorted: for every sorted
    position the flat index of the value there (`sources`), and which sorted neighbours
    are equal. From one sort of int64 keys: the value's bits made order-preserving (a
    float32 is 32 bits), then its flat index (31 bits at most). One sort of integers
    costs about half of numpy's argsort of the floats followed by a gather (what ranks
    spend most time on in a searchlight), and the flat indices are what the ranks are
    scattered to; the order of equal values differs from argsort's, the ranks do not."""
    rows, m = flat.shape
    shift = max(1, (flat.size - 1).bit_length())
    bits = (flat + np.float32(0)).view(np.int32)  # + 0: -0.0 becomes 0.0, so that equal values have equal bits
    if bits.size and bits.min() < 0:  # negative floats: magnitude bits flipped (distances seldom need it)
        bits ^= (bits >> 31) & np.int32(0x7FFFFFFF)
    keys = np.left_shift(bits, shift, dtype=np.int64)  # widened inside the shift: one pass
    keys += np.arange(m, dtype=np.int64)  # the low bits are zero: adding the flat index sets them
    keys += (np.arange(rows, dtype=np.int64) * m)[:, None]
    keys.sort(axis=-1)
    sources = keys & ((1 << shift) - 1)
    keys >>= shift
    return sources, keys[:, 1:] == keys[:, :-1]


def _refined(flat: np.ndarray, sources: np.ndarray, tied: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The `sources` (flat indices of the sorted values, as `_sorted_float32`) of float64
    rows and their equal sorted neighbours, from those of their float32 roundings (`tied`:
    the neighbours equal in float32): each run of equal roundings re-sorted by the float64
    values (and position, as numpy's argsort would not guarantee), all runs in one lexsort.
    Runs are rare, so this is cheap."""
    member = np.zeros(sources.shape, dtype=bool)
    row, left = _positions(tied)
    member[row, left] = member[row, left + 1] = True
    row, position = _positions(member)  # row-major: the positions of a run are consecutive
    starts = np.ones(len(row), dtype=bool)
    starts[1:] = ~tied[row[1:], position[1:] - 1] | (row[1:] != row[:-1])
    run = np.cumsum(starts) - 1
    index = sources[row, position]
    values = flat.reshape(-1)[index]
    within = np.lexsort((index, values, run))
    sources = sources.copy()
    sources[row, position] = index[within]
    values = values[within]
    tied = tied.copy()
    same_run = run[1:] == run[:-1]
    tied[row[:-1][same_run], position[:-1][same_run]] = values[1:][same_run] == values[:-1][same_run]
    return sources, tied


def _positions(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`np.nonzero` of a 2D mask, (rows, columns) in row-major order, from its flat
    indices: about a tenth of the time of np.nonzero, which builds each index array by
    its own walk over the mask (measured on masks of RDM vectors, where ties are few)."""
    return np.divmod(np.flatnonzero(mask), mask.shape[1])


def _tied_runs(tied: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sorted positions p (0-based) equal to p + 1 (`tied` (rows, m - 1)) as (row, p,
    the mean rank of the run of equal values p belongs to): a run from position a to b
    has ranks a + 1 .. b + 1, their mean (a + b) / 2 + 1 exact in floats. Runs are rare in
    continuous data, so they are found sparsely."""
    row, left = _positions(tied)
    flat = row * (tied.shape[1] + 1) + left  # consecutive within a run only: a row's last left is m - 2
    starts = np.ones(len(flat), dtype=bool)
    starts[1:] = flat[1:] != flat[:-1] + 1
    ends = np.ones(len(flat), dtype=bool)
    ends[:-1] = starts[1:]
    run = np.cumsum(starts) - 1
    return row, left, ((left[starts] + left[ends] + 1) / 2 + 1)[run]


def _torch_ranks(x):
    """`ranks` of a batch of rows (rows, m) on a GPU, with torch's sort."""
    import torch

    values, order = torch.sort(x, dim=-1)
    rows, m = x.shape
    starts = torch.ones_like(values, dtype=torch.bool)
    starts[:, 1:] = values[:, 1:] != values[:, :-1]
    group = torch.cumsum(starts, dim=-1) - 1 + (torch.arange(rows, device=x.device) * m).unsqueeze(1)
    positions = torch.arange(1, m + 1, dtype=torch.float64, device=x.device).expand(rows, m)
    size = torch.bincount(group.flatten(), minlength=rows * m)
    total = torch.bincount(group.flatten(), weights=positions.flatten(), minlength=rows * m)
    ranks_sorted = (total / size.clamp(min=1))[group].to(x.dtype)
    return torch.empty_like(x).scatter_(-1, order, ranks_sorted)


def _unit(x: np.ndarray) -> np.ndarray:
    """Rows centred and scaled to unit length (NaN rows where a vector is constant)."""
    centred = x - x.mean(axis=-1, keepdims=True)
    norms = np.linalg.norm(centred, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = centred / norms
    if (norms == 0).any():
        warnings.warn("a constant RDM vector has no correlation with anything: NaN", RuntimeWarning, stacklevel=3)
    return unit


def _undefined_where_constant(values: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """NaN (with a warning) for the pairs involving a constant row: tau-a would count
    all its pairs as ties and report 0, a number where there is no ordering to compare."""
    flat_a, flat_b = np.ptp(a, axis=-1) == 0, np.ptp(b, axis=-1) == 0
    if flat_a.any() or flat_b.any():
        warnings.warn("a constant RDM vector has no correlation with anything: NaN", RuntimeWarning, stacklevel=3)
        values = values.copy()
        values[flat_a, :] = np.nan
        values[:, flat_b] = np.nan
    return values


def _kendall_tau_a(a: np.ndarray, b: np.ndarray, block: int = 256) -> np.ndarray:
    """Kendall's tau-a, (concordant - discordant) / (m(m-1)/2), for all pairs of rows,
    as products of sign matrices accumulated over blocks of entries (O(A B m^2) work,
    O((A + B) block m) memory)."""
    import torch

    m = a.shape[1]
    # differences in float64 (values closer than float32's resolution are not ties); the signs
    # (-1, 0, 1) multiply in float32, exact while a block's sum stays below 2^24
    block = max(1, min(block, 2**24 // max(m, 1)))
    ta, tb = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    total = torch.zeros(len(a), len(b), dtype=torch.float64)
    for start in range(0, m, block):
        sa = torch.sign(ta[:, start:start + block, None] - ta[:, None, :]).float().reshape(len(a), -1)
        sb = torch.sign(tb[:, start:start + block, None] - tb[:, None, :]).float().reshape(len(b), -1)
        total += (sa @ sb.T).double()
    return (total / (m * (m - 1))).numpy()
