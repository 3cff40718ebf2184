"""Searchlight RSA on brain volumes.

Spheres
-------
Every mask voxel is a centre. Its sphere holds the mask voxels whose centres lie within
`radius` millimetres of it: distance <= radius, measured through the affine's linear
part, so anisotropic (and oblique) voxels are handled. This is nilearn's convention (a
radius in mm, inclusive); rsatoolbox's `get_volume_searchlight` takes a radius in voxels
and keeps distances strictly below it. Centres whose sphere holds fewer than
`min_voxels` voxels get NaN.

Per centre, the RDM of the sphere's patterns (stimuli x voxels; `correlation`,
`euclidean`, `sqeuclidean` or `cosine`, as in `net2brain_fovex.brain.rdm`) is compared with each model
RDM (`spearman`, `pearson` or `kendall` tau-a, as in `net2brain_fovex.brain.rsa`).

Centres are processed in batches: the spheres' patterns are gathered into a padded
(batch, stimuli, voxels) tensor (padding masked out), RDMs come from one batched
matrix product, ranks from one batched sort (of integer keys: `comparisons.ranks`). On
a CPU, batches run side by side, one per torch thread (`torch.get_num_threads()`), each on
one core: the sort is numpy's, single-threaded, and whole batches in parallel keep every
core busy where torch's threads would parallelise only the matrix products. Peak memory is the data (stimuli x mask
voxels) plus, per batch, about batch x (voxels per sphere x stimuli + stimuli^2 +
6 x stimuli(stimuli-1)/2) values per batch in flight (one per thread).

Shards (`run_searchlight(..., shard=)`, for array jobs) each take a contiguous block of
the centres. Every step works centre by centre (no matrix product mixes the rows of a
batch), so on CPU a centre's value does not depend on its batch, and the shards' values
side by side equal an unsharded run's bit for bit. GPU kernels sum a row in an order
that can depend on its place in the batch: there they agree to rounding (about 1e-8 in
single, 1e-16 in double precision).
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from ..checks import check_range
from ..errors import ConfigError, InputError
from ..memory import check_memory
from .comparisons import compare as compare_vectors
from .comparisons import ranks, upper_triangle
from .parameters import SearchlightParameters
from .rdm import TORCH_DTYPES
from .registry import COMPARISONS, PRECISIONS, SEARCHLIGHT_METRICS

if TYPE_CHECKING:
    from ..io.shards import Shard

__all__ = ["sphere_offsets", "SphereIndex", "searchlight_scores", "SearchlightResult", "run_searchlight",
           "precomputed_scores", "searchlight_memory"]


def _reach(linear: np.ndarray, radius: float) -> int:
    """Voxels a radius can span on any axis: the smallest singular value of the affine's
    linear part bounds it."""
    return int(math.ceil(radius / np.linalg.svd(linear, compute_uv=False).min())) + 1


def searchlight_memory(shape: Sequence[int], affine: np.ndarray, radius: float, *, stimuli: int, subjects: int,
                       layers: int, batch_size: int, precision: str) -> float:
    """Bytes a searchlight run holds at its peak, from its options and the volumes'
    header (before any volume is read): the table of candidate sphere offsets; one
    subject's volume as read (float32) and its mask-voxel patterns; the lookup grid; a
    batch's neighbour indices, sphere patterns, Gram matrices and RDM vectors; and the
    scores of every subject. Generous by design: every voxel counted as a mask voxel.
    """
    linear = np.asarray(affine, dtype=float)[:3, :3]
    table = (2 * _reach(linear, radius) + 1) ** 3
    sphere = min(table, 4 / 3 * math.pi * radius**3 / max(abs(np.linalg.det(linear)), 1e-12) + 1)
    voxels = math.prod(int(size) for size in shape[:3])
    item = 8 if precision == "double" else 4
    pairs = stimuli * (stimuli - 1) // 2
    batch = min(batch_size, voxels) * (sphere * (3 * 8 + 2 * stimuli * item) + 3 * stimuli**2 * item + 3 * pairs * item)
    return (table * 6 * 8 + voxels * stimuli * (4 * 2 + item) + voxels * 8 + batch
            + subjects * layers * voxels * 8)


def sphere_offsets(affine: np.ndarray, radius: float) -> np.ndarray:
    """Integer voxel offsets (K, 3) whose distance through the affine is <= `radius` mm,
    the centre (0, 0, 0) first, then by distance."""
    check_range("radius", radius)
    linear = np.asarray(affine, dtype=float)[:3, :3]
    sizes = np.linalg.norm(linear, axis=0)
    if np.any(sizes <= 0):
        raise InputError(f"the affine has a zero voxel size: {sizes}")
    reach = _reach(linear, radius)
    axis = np.arange(-reach, reach + 1)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    distance = np.linalg.norm(grid @ linear.T, axis=1)
    keep = distance <= radius * (1 + 1e-9)
    order = np.lexsort((grid[keep][:, 2], grid[keep][:, 1], grid[keep][:, 0], distance[keep]))
    return grid[keep][order]


@dataclass
class SphereIndex:
    """Mask voxels and the lookup from grid positions to their index."""

    mask: np.ndarray  # bool (X, Y, Z)
    coordinates: np.ndarray  # (V, 3) voxel indices of the mask voxels, in C order
    offsets: np.ndarray  # (K, 3)
    # the grid padded by the offsets' reach on every side, flat: index into coordinates, -1 outside the mask
    # (or the volume), so that a sphere's voxels are one gather at its centre's flat position plus flat offsets
    lookup: np.ndarray
    centres: np.ndarray  # (V,) flat positions of the mask voxels in `lookup`
    steps: np.ndarray  # (K,) flat offsets

    @classmethod
    def build(cls, mask: np.ndarray, affine: np.ndarray, radius: float) -> SphereIndex:
        mask = np.asarray(mask, dtype=bool)
        coordinates = np.argwhere(mask)
        if len(coordinates) == 0:
            raise InputError("the mask is empty: no voxel to centre a searchlight on")
        offsets = sphere_offsets(affine, radius)
        pad = np.abs(offsets).max(axis=0)
        shape = np.array(mask.shape) + 2 * pad
        lookup = np.full(tuple(shape), -1, dtype=np.int32 if len(coordinates) < 2**31 else np.int64)
        lookup[tuple((coordinates + pad).T)] = np.arange(len(coordinates))
        strides = np.array([shape[1] * shape[2], shape[2], 1])
        return cls(mask, coordinates, offsets, lookup.reshape(-1), (coordinates + pad) @ strides, offsets @ strides)

    def neighbours(self, centres: np.ndarray) -> np.ndarray:
        """(B, K) mask-voxel indices of the spheres around mask voxels `centres`, -1 for
        positions outside the volume or the mask."""
        return self.lookup[self.centres[centres][:, None] + self.steps[None, :]]


def searchlight_scores(
    patterns: np.ndarray | torch.Tensor,
    index: SphereIndex,
    model_vectors: np.ndarray,
    *,
    metric: str = SearchlightParameters.metric,
    compare: str = SearchlightParameters.compare,
    min_voxels: int = SearchlightParameters.min_voxels,
    batch_size: int = SearchlightParameters.batch_size,
    precision: str = SearchlightParameters.precision,
    device: str | torch.device = "cpu",
    progress: Callable[[int, int], None] | None = None,
    centres: np.ndarray | None = None,
) -> np.ndarray:
    """Scores of every centre against every model RDM.

    Parameters
    ----------
    patterns : (V, n) responses of the V mask voxels (`index.coordinates` order) to n stimuli
    model_vectors : (L, n(n-1)/2) upper triangles of the model RDMs (k=1, row-major)
    metric, compare, min_voxels, batch_size
        As `SearchlightParameters`.
    precision : "single" (float32, fast) or "double" (float64: exact ranks of nearly
        equal dissimilarities, for checks against float64 references)
    device : str or torch.device
    progress : callable (done, total), optional
        Called after every batch of centres.
    centres : optional subset of mask-voxel indices to compute (default: all)

    Returns
    -------
    (L, len(centres)) float64, NaN where the sphere has fewer than `min_voxels` voxels or
    a correlation is undefined.
    """
    SEARCHLIGHT_METRICS.check(metric)
    method = COMPARISONS.check(compare)
    check_range("min_voxels", min_voxels)
    check_range("batch_size", batch_size)
    dtype, device = TORCH_DTYPES[PRECISIONS.check(precision)], torch.device(device)
    data = torch.as_tensor(np.asarray(patterns)).to(device=device, dtype=dtype)
    n = data.shape[1]
    if model_vectors.shape[1] != n * (n - 1) // 2:
        raise InputError(f"the model RDMs are for {_stimuli_of(model_vectors.shape[1])} stimuli, the volumes hold {n}")
    model = torch.as_tensor(model_vectors, dtype=dtype, device=device)
    if method != "kendall":  # kendall compares raw orderings, pair by pair
        model = _prepare_rows(model, method)
    centres = np.arange(len(index.coordinates)) if centres is None else np.asarray(centres)
    scores = np.full((len(model_vectors), len(centres)), np.nan)
    computed = 0  # centres with enough voxels; the others are NaN by min_voxels
    kernel = _BatchKernel(data, index, model, metric, method, max(min_voxels, 2))
    starts = range(0, len(centres), batch_size)
    with _batch_workers(device) as workers:
        batches = workers.map(lambda start: kernel(centres[start:start + batch_size]), starts)
        for start, (usable, values) in zip(starts, batches, strict=True):
            if values is not None:
                scores[:, start + usable] = values
                computed += len(usable)
            if progress:
                progress(min(start + batch_size, len(centres)), len(centres))
    undefined = computed - int(np.isfinite(scores).all(axis=0).sum())
    if undefined:
        warnings.warn(
            f"{undefined} of {computed} searchlight centres have a constant sphere RDM (or a model RDM is constant): "
            "their correlations are undefined and set to NaN", RuntimeWarning, stacklevel=2,
        )
    return scores


def _stimuli_of(pairs: int) -> int:
    return int(round((1 + math.sqrt(1 + 8 * pairs)) / 2))


class _BatchKernel:
    """The scores of one batch of centres: (the batch's positions of the centres with
    enough voxels, their scores (L, those centres) or None when there is none)."""

    def __init__(self, data: torch.Tensor, index: SphereIndex, model: torch.Tensor, metric: str, method: str,
                 min_voxels: int) -> None:
        n = data.shape[1]
        self.index, self.model, self.metric, self.method, self.min_voxels = index, model, metric, method, min_voxels
        self.padded = torch.cat([data, torch.zeros(1, n, dtype=data.dtype, device=data.device)])  # the last row: zeros
        rows, cols = torch.triu_indices(n, n, offset=1, device=data.device)
        self.upper = rows * n + cols  # the upper triangle, row-major

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        neighbours = self.index.neighbours(batch)
        usable = np.flatnonzero((neighbours >= 0).sum(axis=1) >= self.min_voxels)
        if not len(usable):
            return usable, None
        members = neighbours[usable]
        inside = torch.as_tensor(members >= 0, device=self.padded.device)
        rows = torch.as_tensor(np.where(members >= 0, members, len(self.padded) - 1), device=self.padded.device)
        voxels = self.padded.index_select(0, rows.reshape(-1)).reshape(*rows.shape, -1)  # (B, K, n), zero padding
        valid = inside.unsqueeze(-1).to(voxels.dtype)
        rdm_vectors = self._upper_rdms(voxels, valid)
        values = _compare_batch(rdm_vectors, self.model, self.method)
        # a stimulus whose pattern is constant over the sphere has no correlation
        # distance: its NaNs would otherwise be ranked as numbers
        values[_nan_rows(rdm_vectors)] = float("nan")
        return usable, values.T.cpu().numpy()

    def _upper_rdms(self, voxels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Upper triangles (B, m) of the RDMs of padded sphere patterns (B, K, n); `valid`
        (B, K, 1) marks real voxels. In place on `voxels` and on the Gram matrices; the
        same float32 operations, value for value, as distances taken entry by entry."""
        if self.metric == "correlation":  # centre each stimulus's pattern over the sphere's voxels
            # v - mean at real voxels, padding left 0: one pass (x * 1 and x * 0 are exact)
            voxels.addcmul_(valid, voxels.sum(dim=1, keepdim=True) / valid.sum(dim=1, keepdim=True), value=-1)
        elif self.metric in ("euclidean", "sqeuclidean"):  # centring voxels across stimuli leaves distances as they are
            voxels.sub_(voxels.mean(dim=2, keepdim=True) * valid)
        gram = _gram(voxels)  # (B, n, n)
        norms = torch.diagonal(gram, dim1=1, dim2=2)
        if self.metric in ("correlation", "cosine"):
            scale = norms.sqrt()
            # 1 - gram / (scale_i scale_j) in one pass over the square (`scale` is a copy)
            square = torch.addcdiv(gram.new_ones(()), gram, scale.unsqueeze(2) * scale.unsqueeze(1), value=-1, out=gram)
        else:
            square = (norms.unsqueeze(2) + norms.unsqueeze(1) - 2 * gram).clamp_(min=0)
            square = square.sqrt_() if self.metric == "euclidean" else square
        # on the square, then the upper triangle taken once: faster than gathering its rows' and columns' norms
        return square.reshape(len(square), -1).index_select(1, self.upper)


def _gram(voxels: torch.Tensor) -> torch.Tensor:
    """The Gram matrices (B, n, n) of sphere patterns (B, K, n). On a CPU through numpy's
    matmul: one BLAS gemm per sphere (OpenBLAS's, in numpy's wheels), so a sphere's
    products do not depend on its batch; on the 2-core AMD machine of the benchmarks it
    was 1.5x faster than torch's batched product (MKL's, 19 against 12.5 ms a batch of 512)."""
    if voxels.device.type == "cpu":
        patterns = voxels.numpy()
        return torch.from_numpy(np.matmul(patterns.transpose(0, 2, 1), patterns))
    return voxels.transpose(1, 2) @ voxels


def _nan_rows(x: torch.Tensor) -> torch.Tensor:
    """Which rows of `x` hold a NaN (numpy's test on a CPU: about ten times torch's there)."""
    if x.device.type == "cpu":
        return torch.from_numpy(np.isnan(x.numpy()).any(axis=1))
    return torch.isnan(x).any(dim=1)


@contextmanager
def _batch_workers(device: torch.device) -> Iterator:
    """Where batches run: on a CPU, one batch per torch thread at once, each batch on one
    thread (the sorts of the ranks are single-threaded numpy, so whole batches side by
    side use the cores better than torch's threads inside one batch); on a GPU, one after
    another. Every centre is computed the same way in either, so values do not depend on
    the number of threads."""
    threads = torch.get_num_threads()
    if device.type != "cpu":
        yield _InOrder()
        return
    # numpy's BLAS (the Gram products) on one thread per batch too: OpenBLAS's own threads,
    # called from two batches at once, made each product five times slower
    with threadpool_limits(limits=1, user_api="blas"):
        if threads < 2:
            yield _InOrder()
        else:
            torch.set_num_threads(1)
            pool = ThreadPoolExecutor(max_workers=threads)
            try:
                yield pool
            finally:  # an interrupted run (Ctrl-C, an error) does not compute the batches still queued
                pool.shutdown(wait=True, cancel_futures=True)
                torch.set_num_threads(threads)


class _InOrder:
    """`map` in the calling thread, lazily (as `ThreadPoolExecutor.map` in one thread)."""

    @staticmethod
    def map(function: Callable, items):
        return map(function, items)


def _prepare_rows(x: torch.Tensor, method: str) -> torch.Tensor:
    """Rows as unit-length centred vectors (of ranks for spearman), for dot products."""
    if method == "spearman":
        x = ranks(x)
    centred = x - x.mean(dim=-1, keepdim=True)
    return centred / centred.norm(dim=-1, keepdim=True)


def _compare_batch(vectors: torch.Tensor, model: torch.Tensor, method: str) -> torch.Tensor:
    """(B, m) sphere RDM vectors against the model rows (L, m) -> (B, L).

    A centre's value does not depend on the batch it falls in, which lets a sharded
    run equal an unsharded one bit for bit (on CPU): every step works row by row, the
    dot products included (a matrix product would sum a row in an order that depends
    on its place in the batch); a one-row batch is doubled, as a reduction with a
    single output is summed in another order.
    """
    if method == "kendall":
        return torch.as_tensor(compare_vectors(vectors.cpu().numpy(), model.cpu().numpy(), "kendall"))
    rows = _prepare_rows(vectors if len(vectors) > 1 else vectors.repeat(2, 1), method)
    return torch.stack([(rows * layer).sum(dim=-1) for layer in model], dim=1)[:len(vectors)]


# ------------------------------------------------------------------- whole analyses


@dataclass
class SearchlightResult:
    """Scores at the mask voxels: values (subjects, layers, centres), NaN where a
    centre was dropped (too few voxels, or unusable data in that subject). The centres
    are the mask voxels (C order) `centre_range[0]` .. `centre_range[1] - 1`: all of them
    unless the run was a shard."""

    subjects: list[str]
    layers: list[str]
    mask: np.ndarray
    reference: object  # the first subject's image: affine and header of the outputs
    values: np.ndarray
    centre_range: tuple[int, int] = (0, 0)


def run_searchlight(
    betas: Sequence[str | Path],
    model_rdms: dict[str, np.ndarray],
    radius: float | SearchlightParameters,
    *,
    mask: str | Path | None = None,
    order: np.ndarray | None = None,
    metric: str = SearchlightParameters.metric,
    compare: str = SearchlightParameters.compare,
    min_voxels: int = SearchlightParameters.min_voxels,
    batch_size: int = SearchlightParameters.batch_size,
    precision: str = SearchlightParameters.precision,
    device: str | torch.device = "cpu",
    progress: Callable[[int, int], None] | None = None,
    shard: Shard | None = None,
) -> SearchlightResult:
    """Searchlight RSA of every subject's 4D volume against the model RDMs.

    Without `mask`, the mask is the voxels with finite, non-constant responses in
    every subject. Inside a given mask, voxels whose responses are unusable in a subject
    leave that subject's spheres (and get NaN there). Either way every volume is read once
    before any work (an extra reading pass), so that bad input fails before the first centre.

    Parameters
    ----------
    betas : sequence of path
        One 4D NIfTI per subject, one volume per stimulus; subjects are named after them.
    model_rdms : {layer: (n, n)}
    radius : float or SearchlightParameters
        The sphere radius in mm, or all the searchlight's parameters (then `metric`,
        `compare`, `min_voxels`, `batch_size` and `precision` are unused).
    mask : path, optional
        A 3D mask on the volumes' grid.
    order : array, optional
        Indices putting each volume's stimuli into the model RDMs' order.
    metric, compare, min_voxels, batch_size, precision
        As `SearchlightParameters`; checked before any volume is read.
    device : str or torch.device
    progress : callable (done, total), optional
    shard : Shard, optional
        Compute only this shard's contiguous block of centres, `shard.bounds(V)` of the
        V mask voxels in C order (every subject, every layer); the spheres still reach
        into the whole mask. The mask is the same whatever the shard (derived from all
        subjects without `mask`), and each centre's value is the one an unsharded
        run computes (on CPU; to rounding on a GPU), so the shards' values side by side
        are the unsharded values.
    """
    from .nifti import Volume, check_dimensions, load_mask, load_volume, nifti_header, roi_name, usable_voxels

    parameters = radius if isinstance(radius, SearchlightParameters) else SearchlightParameters(
        radius, metric, compare, min_voxels, batch_size, precision)
    radius = parameters.radius
    if radius is None:
        raise ConfigError("give the sphere `radius` in millimetres")
    if not betas:
        raise ConfigError("give at least one `betas` volume")
    subjects = [roi_name(Path(path)) for path in betas]
    if len(set(subjects)) != len(subjects):
        raise InputError("two `betas` files have the same name; subjects are named after their files, rename one")
    layers = list(model_rdms)
    model_vectors = upper_triangle(np.stack([model_rdms[name] for name in layers]))
    stimuli = next(iter(model_rdms.values())).shape[0]
    header = nifti_header(betas[0], "response volume")
    check_dimensions(header, 4, f"response volume {betas[0]}")
    check_memory(searchlight_memory(header.shape, header.affine, radius, stimuli=stimuli, subjects=len(betas),
                                    layers=len(layers), batch_size=parameters.batch_size,
                                    precision=parameters.precision),
                 what=f"a searchlight of radius {radius:g} mm over a {' x '.join(map(str, header.shape[:3]))} grid",
                 lower="lower `batch_size` or `radius`")
    first = load_volume(betas[0], stimuli=stimuli, order=order)
    mask_path = mask
    if mask_path is not None:
        mask = load_mask(mask_path, first.image)
        # every volume is read once before any work (as for the derived mask below), so that a
        # damaged, mismatched or unusable subject stops the run before the first centre
        for number, path in enumerate(betas):
            volume = first if number == 0 else load_volume(path, stimuli=stimuli, order=order, reference=first.image)
            if not (mask & usable_voxels(volume.data)).any():
                raise InputError(f"{path}: no voxel of the mask has usable responses (all NaN, infinite or constant); "
                                 "check the volume and the mask")
        del volume  # not held while the spheres are scored: a subject's whole 4D volume (0.33 GB on a 2 mm grid)
    else:
        mask = usable_voxels(first.data)
        for path in betas[1:]:
            mask &= usable_voxels(load_volume(path, stimuli=stimuli, order=order, reference=first.image).data)
        if not mask.any():
            raise InputError("no voxel has finite, non-constant responses in every subject; give a `mask`")
    SphereIndex.build(mask, first.image.affine, radius)  # checks the mask and the affine before any work
    start, stop = (0, int(mask.sum())) if shard is None else shard.bounds(int(mask.sum()))
    values = np.full((len(betas), len(layers), stop - start), np.nan)
    total = len(betas) * (stop - start)
    for number, path in enumerate(betas):
        volume = first if number == 0 else load_volume(path, stimuli=stimuli, order=order, reference=first.image)
        usable = mask & usable_voxels(volume.data) if mask_path is not None else mask
        if not usable.any():
            raise InputError(f"{path}: no voxel of the mask has usable responses")
        index = SphereIndex.build(usable, volume.image.affine, radius)
        patterns = volume.data[usable]  # (V, n), C order like index.coordinates
        volume.image.uncache()  # the whole 4D volume is not needed while its patterns are scored
        del volume
        if number == 0:
            first = Volume(first.path, first.image, None)  # only its header and affine: the outputs' grid
        kept = usable[mask]  # mask voxels usable in this subject (all of them without mask_path)
        centres = None  # every usable voxel
        if shard is not None:  # the block's usable mask voxels, as indices into the usable voxels
            centres = (np.cumsum(kept) - 1)[start:stop][kept[start:stop]]
        done = number * (stop - start)
        scores = searchlight_scores(
            patterns, index, model_vectors, metric=parameters.metric, compare=parameters.compare,
            min_voxels=parameters.min_voxels, batch_size=parameters.batch_size, precision=parameters.precision,
            device=device, progress=(lambda d, t, done=done: progress(done + d, total)) if progress else None, centres=centres,
        )
        values[number][:, kept[start:stop]] = scores
    return SearchlightResult(subjects, layers, mask, first.image, values, (start, stop))


def precomputed_scores(
    rdms: np.ndarray, model_rdms: dict[str, np.ndarray], compare: str = SearchlightParameters.compare, *,
    batch_size: int = 4096,
) -> np.ndarray:
    """Net2Brain's precomputed searchlight RDMs (searchlights, subjects, n, n) against
    the model RDMs (`compare`: a name of `COMPARISONS`): (subjects, layers, searchlights).

    The upper triangles are compared in float64, `batch_size` searchlights at a time.

    Parameters
    ----------
    rdms : array (searchlights, subjects, n, n)
        Square, symmetric and finite RDMs of at least 3 stimuli (checked, `validate_rdms`).
    model_rdms : dict of str to array (n, n)
        One RDM per layer, in the order of the result's layers. They are not validated; only
        the first one's number of stimuli is checked.
    compare : str, default "spearman"
        A name of `COMPARISONS`.
    batch_size : int, default 4096
        Searchlights compared at a time (bounds the memory).

    Returns
    -------
    ndarray (subjects, layers, searchlights) float64
        NaN where a searchlight RDM or a model RDM is constant.

    Raises
    ------
    InputError
        `rdms` not (searchlights, subjects, n, n), not symmetric, not finite or of fewer than
        3 stimuli, or model RDMs of another shape, not symmetric or not finite.
    ConfigError
        No model RDM, or `batch_size` out of range.
    UnknownNameError
        An unknown `compare`.
    """
    from .rdm_files import validate_rdms

    method = COMPARISONS.check(compare)
    check_range("batch_size", batch_size)
    if rdms.ndim != 4 or rdms.shape[-1] != rdms.shape[-2]:
        raise InputError(f"precomputed searchlight RDMs must be (searchlights, subjects, n, n), got shape {rdms.shape}")
    n = rdms.shape[-1]
    if n < 3:
        raise InputError(f"the precomputed searchlight RDMs are for {n} stimuli; a comparison needs at least 3")
    validate_rdms(rdms, "the precomputed searchlight RDMs")
    if not model_rdms:
        raise ConfigError("give at least one model RDM")
    layers = list(model_rdms)
    for name in layers:
        matrix = np.asarray(model_rdms[name])
        if matrix.shape != (n, n):
            raise InputError(f"model RDM {name!r} has shape {matrix.shape}; the searchlight RDMs are for {n} stimuli")
        validate_rdms(matrix, f"model RDM {name!r}")
    model = torch.as_tensor(upper_triangle(np.stack([model_rdms[name] for name in layers])), dtype=torch.float64)
    if method != "kendall":
        model = _prepare_rows(model, method)
    searchlights, subjects = rdms.shape[:2]
    out = np.empty((subjects, len(layers), searchlights))
    for start in range(0, searchlights, batch_size):
        block = upper_triangle(rdms[start:start + batch_size]).reshape(-1, model.shape[1])  # (b * subjects, m)
        values = _compare_batch(torch.as_tensor(block, dtype=torch.float64), model, method).numpy()
        out[:, :, start:start + batch_size] = values.reshape(-1, subjects, len(layers)).transpose(1, 2, 0)
    return out
