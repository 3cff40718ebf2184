"""Voxel-wise encoding models: cross-validated ridge (or OLS) from a layer's features to
brain responses, split-half noise ceilings, variance partitioning over feature spaces,
and fitted models saved for predicting new stimuli.

The protocol of `fit_encoding`, per outer fold (`outer_folds`, or one `fixed_split`),
everything fitted on the fold's training stimuli only, so that nothing of the held-out
stimuli leaks into the model:

1. features z-scored with the training mean and standard deviation (features constant
   on the training stimuli dropped); responses centred on the training mean (the
   intercept);
2. the optional reduction (`reduce`): `pca:N`, the first N principal axes of the
   standardised training features (torch SVD), or `srp:N`, the seeded sparse random
   projection of `extraction/reduction.py` (it depends on no data);
3. `ridge`: one alpha per target chosen from `alphas` by an inner cross-validation on the
   training stimuli, then refitted on all training stimuli with it (the first alpha of the
   grid kept on ties). In the eigenbasis of the training Gram matrix (one float64 eigen- or
   singular-value decomposition per fold, `_ClosedFormRidge`), with H the hat matrix of the
   penalised features plus the unpenalised intercept (the features are not standardised
   again within the inner folds): `inner="gcv"` (default): generalised cross-validation,
   n |y - H y|^2 / tr(I - H)^2 (Golub, Heath & Wahba 1979), the leave-one-out error of the
   problem rotated so that every stimulus has the same leverage, in closed form for every
   alpha at once; `inner="loo"`: efficient leave-one-out, each stimulus's residual
   e_i / (1 - h_ii), the alphas of scikit-learn's `RidgeCV(alphas, alpha_per_target=True)`
   (cv=None) on the standardised features with an intercept; `inner="kfold"`: himalaya's
   `RidgeCV` over `inner_folds` folds (scikit-learn `KFold`, shuffled, seeded by `seed` and
   the fold; in its dual form, `KernelRidgeCV`, with more features than stimuli).
   `linear`: the minimum-norm least-squares solution (numpy's `lstsq`);
4. predictions of the held-out stimuli.

Scores: `fold_r` is the Pearson r of every target's held-out predictions with its
responses within each fold, and `r` their mean over the folds. (Not one r over all
held-out stimuli pooled: each fold's predictions are offset by its training mean, which is
anti-correlated with its test responses, so that a pooled r of unrelated data is biased
below 0, by -0.12 to -0.17 for 100 stimuli in 5 folds.) `r2` is 1 - SS_res / SS_tot over
all held-out stimuli together (each predicted by the fold that left it out; SS_tot about
their mean), `fold_r2` the same within each fold.

Deviations from the helpers' contract: `r` is the mean of the folds' r (see above, not
pooled); `noise_ceiling` splits the repetitions at random (seeded), not odd / even;
`fit_encoding` and `save_models` take `layer` (messages, the projection's seed);
`save_models(path, features, responses, parameters, result)`; `noise_ceiling` is not a lazy
export of `net2brain_fovex.brain` (RSA's `noise_ceiling` has the name).

Light at import (numpy only): torch and himalaya load when a model is fitted.
"""
from __future__ import annotations

import itertools
import math
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..checks import check_range
from ..errors import ConfigError, InputError
from ..extras import install_command
from ..memory import check_memory
from .registry import ENCODING_MODELS, INNER_CVS

__all__ = ["check_solvers", "DEFAULT_ALPHAS", "EDGE_WARNING", "ENCODING_MODEL_KIND", "EncodingParameters", "EncodingResult",
           "PartitionResult", "CHUNK_BYTES", "target_chunk", "encoding_memory", "outer_folds", "fixed_split", "fit_encoding", "noise_ceiling", "partition_variance",
           "save_models", "model_layout", "predict"]

# wide, so that a chosen alpha rarely sits at an edge of the grid
DEFAULT_ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-3, 9, 25))
EDGE_WARNING = 0.05  # warn when more than this share of targets chose an edge of the grid
# a chunk of targets is solved at once within about this much memory (`target_chunk`)
CHUNK_BYTES = 2**30
CHUNK_BYTES_PER_STIMULUS = 96  # per target of a chunk and stimulus: its float64 copies, residuals, predictions, and
# the heap they leave fragmented (glibc keeps freed blocks of a few MB for reuse)
ENCODING_MODEL_KIND = "encoding-model"
BANDED_ITERATIONS = 20  # himalaya's random search over the simplex of feature-space weights
_REDUCE = re.compile(r"\s*(pca|srp)\s*:\s*(\d+)\s*")


@dataclass(frozen=True)
class EncodingParameters:
    """How encoding models are fitted (`fit_encoding`).

    Attributes
    ----------
    model : str
        A name of `ENCODING_MODELS`: `ridge` or `linear`.
    folds : int
        Outer cross-validation folds (`outer_folds`).
    alphas : tuple of float
        The ridge penalties to choose from, per target (positive, finite).
    inner : str
        The inner cross-validation that chooses each target's alpha, a name of `INNER_CVS`:
        `gcv` (generalised cross-validation, default), `loo` (efficient leave-one-out) or
        `kfold` (`inner_folds` folds).
    inner_folds : int
        Folds of the `kfold` inner cross-validation (and of variance partitioning's banded
        ridge, which always uses k folds).
    reduce : str or None
        `pca:N` or `srp:N` (N components), fitted on each fold's training stimuli; None keeps
        every feature.
    seed : int
        Seeds the folds, the inner folds and the random projection.
    chunk : int
        Targets solved at once, at most (`target_chunk` lowers it for many stimuli).
    """

    model: str = ENCODING_MODELS.default
    folds: int = 5
    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    inner_folds: int = 5
    inner: str = INNER_CVS.default
    reduce: str | None = None
    seed: int = 0
    chunk: int = 20_000

    def __post_init__(self) -> None:
        object.__setattr__(self, "alphas", tuple(float(a) for a in np.atleast_1d(np.asarray(self.alphas, float))))
        self.validate()

    def validate(self) -> None:
        """`ConfigError` naming the first bad option."""
        ENCODING_MODELS.check(self.model)
        check_range("folds", self.folds)
        check_range("inner_folds", self.inner_folds)
        INNER_CVS.check(self.inner)
        check_range("seed", self.seed)
        check_range("chunk", self.chunk)
        alphas = np.asarray(self.alphas, float)
        if alphas.size == 0 or not np.all(np.isfinite(alphas)) or np.any(alphas <= 0):
            raise ConfigError(f"`alphas` must be positive finite numbers, got {list(self.alphas)}")
        self.components()

    def components(self) -> tuple[str, int] | None:
        """(`pca` or `srp`, N) from `reduce`, or None."""
        if self.reduce is None or self.reduce.strip().lower() in ("", "none"):
            return None
        match = _REDUCE.fullmatch(self.reduce.lower())
        if not match:
            raise ConfigError(f"`reduce` {self.reduce!r} is not understood; use pca:N or srp:N with N >= 1 "
                              "components, or none")
        return match.group(1), int(check_range("components", int(match.group(2))))


@dataclass
class EncodingResult:
    """The cross-validated scores of one layer's encoding model (`fit_encoding`).

    Attributes
    ----------
    r : ndarray (targets,)
        Held-out Pearson r, the mean of `fold_r` over the folds.
    r2 : ndarray (targets,)
        Held-out R^2 over all held-out stimuli together.
    fold_r, fold_r2 : ndarray (folds, targets)
        The same within each outer fold.
    alphas : ndarray (folds, targets)
        The alpha each target chose in each fold (NaN for `linear`).
    predictions : ndarray (stimuli, targets) float32
        Each stimulus predicted by the fold that held it out (NaN for stimuli held out by none).
    edge_share : float
        Share of targets whose alpha is the smallest or largest of the grid in any fold (0 for
        a grid of one alpha, or `linear`).
    test_sets : list of ndarray
        The held-out stimuli of each fold.
    """

    r: np.ndarray
    r2: np.ndarray
    fold_r: np.ndarray
    fold_r2: np.ndarray
    alphas: np.ndarray
    predictions: np.ndarray
    edge_share: float
    test_sets: list[np.ndarray] = field(default_factory=list)


@dataclass
class PartitionResult:
    """Variance partitioning over feature spaces (`partition_variance`).

    Attributes
    ----------
    spaces : list of str
    subsets : dict of tuple of str to ndarray (targets,)
        Held-out R^2 of every non-empty subset of the spaces, fitted jointly.
    unique : dict of str to ndarray (targets,)
        R^2 of all spaces minus R^2 of all but that one.
    shared : dict of tuple of str to ndarray (targets,)
        For every subset T of 2 or more spaces, the variance explained by all of T and by
        none of the other spaces (a region of the Venn diagram, by inclusion-exclusion).
    """

    spaces: list[str]
    subsets: dict[tuple[str, ...], np.ndarray]
    unique: dict[str, np.ndarray]
    shared: dict[tuple[str, ...], np.ndarray]


# ------------------------------------------------------------------ memory


def target_chunk(parameters: EncodingParameters, stimuli: int) -> int:
    """Targets solved at once: `parameters.chunk`, or fewer where a chunk of that many
    would need more than `CHUNK_BYTES` (many stimuli). A target's results do not depend on
    the chunk it is solved in."""
    return max(1, min(parameters.chunk, CHUNK_BYTES // (CHUNK_BYTES_PER_STIMULUS * max(1, stimuli))))


def encoding_memory(stimuli: int, features: int, targets: int, parameters: EncodingParameters, *,
                    keep_predictions: bool = True) -> int:
    """Bytes `fit_encoding` allocates beyond its float32 inputs, at its peak (generous).

    A fold's features: float32 and float64 copies of the standardised ones (28 bytes per
    stimulus and feature, twice that with a PCA, whose SVD needs its own copies); its
    decomposition: the training Gram matrix, its eigenvectors and their float32 and
    squared copies (48 bytes per stimulus and rank, rank <= min(stimuli, features)), and
    the features' projection on them (8 bytes per feature and rank); a chunk of
    `target_chunk` targets (`CHUNK_BYTES_PER_STIMULUS` per stimulus and target, at most
    `CHUNK_BYTES`; with `kfold` or `linear`, the chunk's (features x targets) weights
    too); the scores (3 float64 values per fold and target, and r and R^2), and the
    float32 predictions when they are kept.
    """
    reduced = features
    components = parameters.components()
    if components is not None:
        reduced = min(features, components[1])
    rank = min(stimuli, reduced)
    chunk = min(targets, target_chunk(parameters, stimuli))
    weights = 8 * reduced * chunk if parameters.model == "linear" or parameters.inner == "kfold" else 0
    features_bytes = (56 if components is not None and components[0] == "pca" else 28) * stimuli * features
    return int(features_bytes + 48 * stimuli * rank + 8 * reduced * rank
               + CHUNK_BYTES_PER_STIMULUS * stimuli * chunk + weights
               + 8 * targets * (3 * max(parameters.folds, 1) + 3) + (4 * stimuli * targets if keep_predictions else 0))


# ------------------------------------------------------------------ folds


def outer_folds(n: int, folds: int, seed: int) -> list[np.ndarray]:
    """The held-out stimuli of each outer fold: a seeded shuffle cut into `folds` parts.

    Parameters
    ----------
    n : int
        Stimuli.
    folds : int
    seed : int

    Returns
    -------
    list of ndarray (int64, sorted)
        Disjoint, together every stimulus once; sizes differ by at most 1.

    Raises
    ------
    ConfigError
        `folds` or `seed` out of range.
    InputError
        Fewer stimuli than folds, or training sets of fewer than 2 stimuli.
    """
    check_range("folds", folds)
    check_range("seed", seed)
    if n < folds or n - math.ceil(n / folds) < 2:
        raise InputError(f"{n} stimuli are too few for `folds` {folds}: every fold needs a held-out stimulus and "
                         "2 or more training stimuli; use fewer folds")
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(part).astype(np.int64) for part in np.array_split(order, folds)]


def fixed_split(ids: Sequence[str], test_ids: Sequence[str]) -> list[np.ndarray]:
    """One fold: the positions of `test_ids` in `ids` held out, the rest for training.

    Parameters
    ----------
    ids : sequence of str
        Every stimulus, in the order of the rows.
    test_ids : sequence of str
        The held-out stimuli.

    Returns
    -------
    list of one ndarray (int64, sorted)

    Raises
    ------
    InputError
        An id of `test_ids` not in `ids` (or given twice), no test stimulus, or no training stimulus.
    """
    position = {name: i for i, name in enumerate(ids)}
    unknown = [name for name in test_ids if name not in position]
    if unknown:
        raise InputError(f"test stimulus {unknown[0]!r} is not a stimulus of the activations "
                         f"({len(unknown)} unknown); give ids of the activations' stimuli")
    test = np.array(sorted({position[name] for name in test_ids}), dtype=np.int64)
    if len(test) != len(test_ids):
        raise InputError("the test stimuli name a stimulus twice; give each once")
    if len(test) == 0 or len(ids) - len(test) < 2:
        raise InputError(f"the test stimuli are {len(test)} of {len(ids)}: give at least one, and leave 2 or more "
                         "for training")
    return [test]


def _check_test_sets(test_sets: list[np.ndarray], n: int) -> list[np.ndarray]:
    sets = [np.asarray(t, dtype=np.int64).ravel() for t in test_sets]
    if not sets or any(len(t) == 0 for t in sets):
        raise InputError("every fold needs one or more test stimuli")
    joined = np.concatenate(sets)
    if joined.min() < 0 or joined.max() >= n:
        raise InputError(f"test stimuli must be positions 0 to {n - 1}, got {joined.min()} to {joined.max()}")
    if len(np.unique(joined)) != len(joined):
        raise InputError("the folds' test stimuli overlap; give disjoint test sets")
    return sets


# ------------------------------------------------------------------ checks


def _checked_responses(responses: np.ndarray, n: int) -> np.ndarray:
    y = np.asarray(responses)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[0] != n:
        raise InputError(f"responses must be (stimuli, targets) with {n} stimuli, got shape {np.shape(responses)}")
    y = np.ascontiguousarray(y, dtype=np.float32)
    # by blocks of columns: a whole (stimuli, targets) mask would be a byte per response
    bad = np.concatenate([~np.isfinite(y[:, start:start + 4096]).all(axis=0) for start in range(0, y.shape[1], 4096)])
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise InputError(f"response column {first} holds NaN or infinite values ({int(bad.sum())} such columns); "
                         "remove those targets or fill them")
    constant = np.ptp(y, axis=0) == 0
    if constant.any():
        first = int(np.flatnonzero(constant)[0])
        raise InputError(f"response column {first} is constant across stimuli ({int(constant.sum())} such columns); "
                         "remove those targets, they cannot be predicted")
    return y


def _checked_features(features: np.ndarray, what: str = "features") -> np.ndarray:
    x = np.asarray(features)
    if x.ndim != 2:
        raise InputError(f"{what} must be (stimuli, features), got shape {x.shape}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise InputError(f"{what} hold NaN or infinite values; extract them again or drop those stimuli")
    return x


# ------------------------------------------------------------------ backend and per-fold transforms


def check_solvers() -> None:
    """`ConfigError` with the pip command when the solvers' libraries (himalaya,
    scikit-learn: the `encoding` extra) are not installed; entry points call it first."""
    import importlib.util

    missing = [name for name, module in (("himalaya", "himalaya"), ("scikit-learn", "sklearn"))
               if importlib.util.find_spec(module) is None]
    if missing:
        raise ConfigError(f"encoding models need {' and '.join(missing)}, which is not installed: "
                          f"{install_command('encoding')}")


@contextmanager
def _himalaya(device: str) -> Iterator[object]:
    """himalaya's torch backend for `device`, restoring the previous one after (himalaya's is global)."""
    check_solvers()
    from himalaya.backend import get_backend, set_backend

    previous = get_backend()
    backend = set_backend("torch_cuda" if str(device).startswith("cuda") else "torch", on_error="raise")
    try:
        yield backend
    finally:
        set_backend(previous, on_error="raise")


@dataclass
class _Transform:
    """A fold's fitted standardisation and reduction: z = ((x[:, keep] - mean) / std) @ projection."""

    keep: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    projection: np.ndarray | None

    def __call__(self, x: np.ndarray):
        import torch

        z = (torch.from_numpy(x[:, self.keep]) - torch.from_numpy(self.mean)) / torch.from_numpy(self.std)
        return z if self.projection is None else z @ torch.from_numpy(self.projection)


def _fit_transform(x_train: np.ndarray, parameters: EncodingParameters, layer: str) -> _Transform:
    """The standardisation and reduction fitted on `x_train` alone."""
    import torch

    mean = x_train.mean(axis=0, dtype=np.float64)
    std = x_train.std(axis=0, dtype=np.float64)
    keep = np.flatnonzero(std > 1e-12 * np.maximum(1.0, np.abs(mean)))
    if len(keep) == 0:
        raise InputError(f"{layer}: every feature is constant on a fold's training stimuli; nothing to fit")
    transform = _Transform(keep, mean[keep].astype(np.float32), std[keep].astype(np.float32), None)
    reduction = parameters.components()
    if reduction is None:
        return transform
    method, k = reduction
    if method == "pca":
        z = transform(x_train).double()
        _, _, vh = torch.linalg.svd(z, full_matrices=False)
        if k > vh.shape[0]:
            raise InputError(f"`reduce` pca:{k} asks for more components than a fold's {x_train.shape[0]} training "
                             f"stimuli and {len(keep)} features allow; use pca:{vh.shape[0]} or fewer")
        transform.projection = np.ascontiguousarray(vh[:k].T.float().numpy())
    else:
        from ..extraction.reduction import projection_matrix

        transform.projection = np.ascontiguousarray(
            projection_matrix(len(keep), k, seed=parameters.seed, layer=layer).to_dense().T.numpy())
    return transform


# ------------------------------------------------------------------ solvers


class _ClosedFormRidge:
    """A fold's ridge fits with each target's alpha chosen in closed form: `criterion` `loo`
    (efficient leave-one-out, as scikit-learn's `RidgeCV` (cv=None, fit_intercept,
    alpha_per_target) on the centred `z_train`) or `gcv` (generalised cross-validation),
    then the ridge refit on all of `z_train`; called per chunk of targets.

    Why not himalaya's k-fold `RidgeCV`: it solves alphas x folds ridge problems (an SVD per
    inner fold and a (features x targets) solution per alpha and fold, then another refit).
    Here one decomposition of the training set serves every alpha and target: with
    Z Z' = U diag(s2) U', the ridge fit's hat matrix is H = 11'/n + U diag(s2 / (s2 + a)) U'
    (the intercept unpenalised; Z is centred), and the refit's predictions are
    (z_test Z' U) diag(1 / (s2 + a)) U' y, so that no (features x targets) weights are made.

    * `loo`: each left-out stimulus's residual is (y_i - (H y)_i) / (1 - H_ii), so an alpha
      costs one (n x rank) by (rank x targets) product.
    * `gcv` (Golub, Heath & Wahba 1979): n |y - H y|^2 / tr(I - H)^2, the leave-one-out error
      of the problem rotated so that every H_ii is equal; |y - H y|^2 is the residual outside
      span(U) plus sum_k (a / (s2_k + a))^2 (U'y)_k^2, so an alpha costs (rank x targets)
      multiply-adds: the sweep is no longer the cost of the fit.

    The decomposition runs in float64 (the residuals of small alphas are small differences),
    on the tensors' device; the `loo` sweep multiplies in float32 terms prepared in float64
    without cancellation.
    """

    def __init__(self, z_train, z_test, alphas: Sequence[float], criterion: str):
        import torch

        n, p = z_train.shape
        z = z_train.to(torch.float64)
        offset = z.mean(dim=0)  # ~0 (z-scored in float32); exactly 0 in float64 keeps 1 outside span(Z)
        z = z - offset
        if p >= n:  # the Gram matrix is the smaller
            s2, u = torch.linalg.eigh(z @ z.T)
        else:
            u, s, _ = torch.linalg.svd(z, full_matrices=False)
            s2 = s * s
        keep = s2 > torch.finfo(torch.float64).eps * max(n, p) * s2.max().clamp(min=1e-300)
        self.u, self.s2 = u[:, keep], s2[keep]
        self.n, self.criterion, self.alphas = n, criterion, np.asarray(alphas, dtype=np.float64)
        self.grid = torch.as_tensor(self.alphas, device=u.device)
        self.shrink = self.grid[None, :] / (self.s2[:, None] + self.grid[None, :])  # (rank, alphas): 1 - s2 / (s2 + a)
        # span(U) with the constant is everything (centred y lies in it): no residual outside
        self.full_rank = self.u.shape[1] >= n - 1
        self.test_basis = (z_test.to(torch.float64) - offset) @ (z.T @ self.u)  # (test, rank)
        if criterion == "gcv":
            # tr(I - H) = n - 1 - sum_k s2 / (s2 + a), summed as the dimensions outside span(U) plus the shrinkage
            self.trace = (n - 1 - self.u.shape[1]) + self.shrink.sum(dim=0)
        else:
            square = self.u * self.u
            # 1 - H_ii without cancellation: the leverage outside span(U) and the intercept, plus U's share
            outside = (1.0 - 1.0 / n - square.sum(dim=1)).clamp(min=0.0)
            weight = (1.0 / (outside[:, None] + square @ self.shrink)).square_().T.contiguous() / n  # (alphas, n)
            self.low, self.shrink_low, self.weight_low = (t.to(torch.float32) for t in (self.u, self.shrink, weight))

    def __call__(self, y_train):
        """(held-out predictions (test, targets) float64 without the intercept, alphas (targets,))."""
        import torch

        y = y_train.to(torch.float64)
        y = y - y.mean(dim=0)  # the intercept's part of H y: float32 centring leaves a residue that 1 - H_ii ~ 0 would blow up
        coordinates = self.u.T @ y  # (rank, targets)
        outside = None if self.full_rank else y - self.u @ coordinates
        if self.criterion == "gcv":
            residual = (self.shrink.T.square() @ coordinates.square()  # (alphas, targets)
                        + (0.0 if outside is None else outside.square().sum(dim=0)))
            best_index = (residual / self.trace[:, None].square()).argmin(dim=0)  # the first alpha wins ties
        else:
            best_index = self._leave_one_out(coordinates, outside)
        coefficients = coordinates / (self.s2[:, None] + self.grid[best_index][None, :])
        return self.test_basis @ coefficients, self.alphas[best_index.cpu().numpy()]

    def _leave_one_out(self, coordinates, outside):
        import torch

        outside_low = (torch.zeros((self.n, coordinates.shape[1]), dtype=torch.float32, device=coordinates.device)
                       if outside is None else outside.to(torch.float32))
        coordinates_low = coordinates.to(torch.float32)
        best = torch.full((coordinates.shape[1],), float("inf"), dtype=torch.float32, device=coordinates.device)
        best_index = torch.zeros(coordinates.shape[1], dtype=torch.long, device=coordinates.device)
        for a in range(len(self.grid)):
            # the leave-one-out residuals (y - H y)_i / (1 - H_ii), squared and averaged over i
            residual = torch.addmm(outside_low, self.low, self.shrink_low[:, a, None] * coordinates_low).square_()
            error = self.weight_low[a] @ residual
            better = error < best  # strict: the first alpha of the grid wins ties, as scikit-learn's
            best = torch.where(better, error, best)
            best_index = torch.where(better, a, best_index)
        return best_index


def _ridge_cv(z_train, z_test, y_train, parameters: EncodingParameters, fold: int, *, dual: bool | None = None):
    """(predictions of the test stimuli, alphas (targets,)) of ridge on centred data, an
    alpha per target chosen by `inner_folds`-fold inner cross-validation.

    With more features than training stimuli (any conv layer), the same model in its dual
    form, himalaya's `KernelRidgeCV` on the float64 linear kernel (as `_banded_ridge`, for
    the same reason): an eigendecomposition of one n x n kernel per inner fold instead of
    an SVD of the n x p features and products with all p features per alpha (the demo's
    200,704-feature layer: about 2 s a fold in the primal form). The two agree to float32
    rounding (tests/brain/test_encoding.py compares them); `dual` forces a form."""
    import torch
    from himalaya.kernel_ridge import KernelRidgeCV
    from himalaya.ridge import RidgeCV
    from sklearn.model_selection import KFold

    inner = KFold(parameters.inner_folds, shuffle=True, random_state=(parameters.seed + fold) % 2**32)
    alphas = np.asarray(parameters.alphas, dtype=np.float32)
    batches = {"n_targets_batch": parameters.chunk, "n_targets_batch_refit": parameters.chunk}
    if dual is None:
        dual = z_train.shape[1] > z_train.shape[0]
    if not dual:
        model = RidgeCV(alphas=alphas, cv=inner, fit_intercept=False, solver_params={**batches, "warn": False})
        model.fit(z_train, y_train)
        return z_test @ torch.as_tensor(model.coef_, device=z_test.device), model.best_alphas_
    model = KernelRidgeCV(alphas=alphas, kernel="precomputed", cv=inner, fit_intercept=False, solver_params=batches)
    model.fit(_gram(z_train, z_train), y_train.double())
    return model.predict(_gram(z_test, z_train)).float(), model.best_alphas_


class _LeastSquares:
    """A fold's minimum-norm least-squares fits, as numpy's `lstsq` (singular values below
    eps * max(n, f) * s_max ignored), called per chunk of targets; an SVD rather than
    `torch.linalg.lstsq`, whose CUDA driver needs full-rank tall matrices."""

    def __init__(self, z_train):
        import torch

        self.u, s, self.vh = torch.linalg.svd(z_train, full_matrices=False)
        cutoff = torch.finfo(s.dtype).eps * max(z_train.shape) * s.max()
        self.inverse = torch.where(s > cutoff, 1.0 / s, torch.zeros_like(s))

    def weights(self, y_train):
        """(features, targets)."""
        return self.vh.T @ (self.inverse[:, None] * (self.u.T @ y_train))


def _pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(axis=0) / np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))


def _r2(observed: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    total = ((observed - observed.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1.0 - ((observed - predicted) ** 2).sum(axis=0) / total


# ------------------------------------------------------------------ fitting


def fit_encoding(features: np.ndarray, responses: np.ndarray, parameters: EncodingParameters, *,
                 test_sets: list[np.ndarray] | None = None, device: str = "cpu",
                 progress: Callable[[int, int], None] | None = None, layer: str = "features",
                 keep_predictions: bool = True) -> EncodingResult:
    """Cross-validated encoding model of every target from `features` (the module docstring).

    Parameters
    ----------
    features : ndarray (stimuli, features)
    responses : ndarray (stimuli, targets)
    parameters : EncodingParameters
    test_sets : list of ndarray, optional
        The held-out stimuli of each fold (disjoint); by default `outer_folds(stimuli,
        parameters.folds, parameters.seed)`.
    device : str
        `cpu`, `cuda` or `cuda:N`.
    progress : callable (done, total), optional
        Called after each fold.
    layer : str
        Names the features in messages, and seeds the random projection (as extraction does).
    keep_predictions : bool, default True
        Return the held-out predictions; without them the scores are made chunk by chunk and
        the memory is `encoding_memory`'s, a stimuli x targets array less.

    Returns
    -------
    EncodingResult

    Raises
    ------
    InputError
        Shapes that do not match, non-finite features, constant or non-finite response
        columns (naming the first), folds with too few training stimuli.
    ConfigError
        More memory needed than is available (`encoding_memory`).

    Warns
    -----
    RuntimeWarning
        More than 5 % of the targets chose an alpha at an edge of the grid.
    """
    import torch

    x = _checked_features(features)
    y = _checked_responses(responses, x.shape[0])
    n, targets = y.shape
    tests = _check_test_sets(test_sets, n) if test_sets is not None else outer_folds(n, parameters.folds,
                                                                                     parameters.seed)
    check_memory(encoding_memory(n, x.shape[1], targets, parameters, keep_predictions=keep_predictions),
                 what=f"{layer}: the encoding models of {targets} targets from {x.shape[1]} features of {n} stimuli",
                 lower="reduce the features (`reduce` pca:N or srp:N) or fit fewer stimuli (the targets are "
                       "solved in chunks already)")
    ridge = parameters.model == "ridge"
    kfold = ridge and parameters.inner == "kfold"
    target = torch.device(device)
    chunk = target_chunk(parameters, n)
    predictions = np.full(y.shape, np.nan, dtype=np.float32) if keep_predictions else None
    chosen = np.full((len(tests), targets), np.nan)
    fold_r, fold_r2 = np.empty((len(tests), targets)), np.empty((len(tests), targets))
    residual_ss = np.zeros(targets)  # of every held-out stimulus, for the pooled R^2
    with _himalaya(device):
        for fold, test in enumerate(tests):
            train = np.setdiff1d(np.arange(n), test)
            needed = 2 * parameters.inner_folds if kfold else 2
            if len(train) < needed:
                raise InputError(f"a fold has {len(train)} training stimuli; ridge with `inner_folds` "
                                 f"{parameters.inner_folds} needs {needed}: use fewer folds or inner folds")
            transform = _fit_transform(x[train], parameters, layer)
            z_train, z_test = transform(x[train]).to(target), transform(x[test]).to(target)
            # the decomposition once per fold; the targets in chunks, so that memory is bounded
            solver = (_ClosedFormRidge(z_train, z_test, parameters.alphas, parameters.inner) if ridge and not kfold
                      else None if ridge else _LeastSquares(z_train))
            for start in range(0, targets, chunk):
                block = slice(start, start + chunk)
                y_train = y[train, block]
                y_mean = y_train.mean(axis=0)
                y_train = torch.from_numpy(y_train - y_mean).to(target)
                if solver is None:
                    held, alphas = _ridge_cv(z_train, z_test, y_train, parameters, fold)
                    chosen[fold, block] = _on_grid(torch.as_tensor(alphas).cpu().numpy(), parameters.alphas)
                    held = torch.as_tensor(held, device=target)
                elif ridge:
                    held, chosen[fold, block] = solver(y_train)
                else:
                    held = z_test @ solver.weights(y_train)
                # scored in float64: a large alpha's predictions differ from the training mean by less than
                # float32 resolves, and rounded they would be constant (r undefined)
                predicted = held.to(torch.float64).cpu().numpy() + y_mean.astype(np.float64)
                if predictions is not None:
                    predictions[test, block] = predicted
                observed = y[test, block].astype(np.float64)
                fold_r[fold, block], fold_r2[fold, block] = _pearson(observed, predicted), _r2(observed, predicted)
                residual_ss[block] += ((observed - predicted) ** 2).sum(axis=0)
            if progress:
                progress(fold + 1, len(tests))
    r2 = _pooled_r2(y, np.concatenate(tests), residual_ss, chunk)
    edge_share = _edge_share(chosen, parameters.alphas) if ridge else 0.0
    if edge_share > EDGE_WARNING:
        warnings.warn(f"{layer}: {edge_share:.0%} of the targets chose an alpha at an edge of `alphas` "
                      f"({min(parameters.alphas):g} to {max(parameters.alphas):g}) in some fold; widen the grid",
                      RuntimeWarning, stacklevel=2)
    return EncodingResult(r=fold_r.mean(axis=0), r2=r2, fold_r=fold_r, fold_r2=fold_r2, alphas=chosen,
                          predictions=predictions, edge_share=edge_share, test_sets=tests)


def _pooled_r2(y: np.ndarray, held: np.ndarray, residual_ss: np.ndarray, chunk: int) -> np.ndarray:
    """1 - SS_res / SS_tot over all held-out stimuli together, SS_tot about their mean."""
    total = np.empty(y.shape[1])
    for start in range(0, y.shape[1], chunk):
        observed = y[held, start:start + chunk].astype(np.float64)
        total[start:start + chunk] = ((observed - observed.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1.0 - residual_ss / total


def _on_grid(found: np.ndarray, alphas: Sequence[float]) -> np.ndarray:
    """The grid's alphas that himalaya chose: it returns exp(-log(alpha)) in float32, a few ulps off."""
    grid = np.asarray(alphas, dtype=np.float64)
    nearest = np.abs(np.log(found.astype(np.float64))[:, None] - np.log(grid)[None, :]).argmin(axis=1)
    return grid[nearest]


def _edge_share(chosen: np.ndarray, alphas: Sequence[float]) -> float:
    if len(alphas) < 2:
        return 0.0  # one alpha: nothing was chosen
    edge = (chosen == min(alphas)) | (chosen == max(alphas))
    return float(edge.any(axis=0).mean())


# ------------------------------------------------------------------ noise ceiling


def noise_ceiling(repeated: np.ndarray, seed: int = 0) -> np.ndarray:
    """The ceiling on a model's Pearson r with the mean of the repetitions, per target.

    The repetitions are split at random (seeded) into two halves of equal size (a count that is
    odd leaves one out); r_half is the Pearson r over stimuli of the two halves' means, the
    Spearman-Brown reliability of the mean of all repetitions is rho = 2 r_half / (1 + r_half),
    and the ceiling is sqrt(rho), 0 when rho <= 0.

    Parameters
    ----------
    repeated : ndarray (stimuli, targets, repetitions)
    seed : int
        Seeds the split of the repetitions.

    Returns
    -------
    ndarray (targets,) float64
        NaN where a half's mean is constant across stimuli or not finite.
    """
    check_range("seed", seed)
    data = np.asarray(repeated, dtype=np.float64)
    if data.ndim != 3 or data.shape[2] < 2 or data.shape[0] < 3:
        raise InputError(f"repeated responses must be (stimuli >= 3, targets, repetitions >= 2), got shape "
                         f"{data.shape}")
    order = np.random.default_rng(seed).permutation(data.shape[2])
    half = data.shape[2] // 2
    r = _pearson(data[:, :, order[:half]].mean(axis=2), data[:, :, order[half:2 * half]].mean(axis=2))
    with np.errstate(invalid="ignore", divide="ignore"):
        reliability = np.where(r > 0, 2 * r / (1 + r), 0.0)
    return np.where(np.isfinite(r), np.sqrt(reliability), np.nan)


# ------------------------------------------------------------------ variance partitioning


def partition_variance(spaces: dict[str, np.ndarray], responses: np.ndarray, parameters: EncodingParameters, *,
                       test_sets: list[np.ndarray] | None = None, device: str = "cpu") -> PartitionResult:
    """Held-out R^2 of every subset of feature spaces, and its unique and shared parts.

    Each space is standardised and reduced on its own, as in `fit_encoding`, on each fold's
    training stimuli; a single space is fitted by `fit_encoding` with `inner="kfold"`
    (whatever `parameters.inner` says), a subset of several by himalaya's `BandedRidgeCV`
    (one alpha per space and target, a random search of `BANDED_ITERATIONS` space weights
    times `alphas`; in its dual form when the spaces have more features than there are
    training stimuli, `_banded_ridge`), both with the same `inner_folds` inner folds and on the same outer
    folds, so that the differences of R^2 compare fits chosen alike. R^2 is over all held-out stimuli together.

    Parameters
    ----------
    spaces : dict of str to ndarray (stimuli, features_i)
        Two or more named feature spaces.
    responses : ndarray (stimuli, targets)
    parameters : EncodingParameters
        `model` must be `ridge`.
    test_sets : list of ndarray, optional
    device : str

    Returns
    -------
    PartitionResult
    """
    import torch

    if len(spaces) < 2:
        raise ConfigError(f"`spaces` needs two or more feature spaces to partition, got {len(spaces)}")
    if parameters.model != "ridge":
        raise ConfigError("variance partitioning fits banded ridge; use `model` 'ridge'")
    names = list(spaces)
    xs = {name: _checked_features(spaces[name], f"features of {name!r}") for name in names}
    n = xs[names[0]].shape[0]
    if any(x.shape[0] != n for x in xs.values()):
        raise InputError("the feature spaces must have the same stimuli (rows)")
    y = _checked_responses(responses, n)
    tests = _check_test_sets(test_sets, n) if test_sets is not None else outer_folds(n, parameters.folds,
                                                                                     parameters.seed)
    subsets = [combo for size in range(1, len(names) + 1) for combo in itertools.combinations(names, size)]
    single = replace(parameters, inner="kfold")  # the joint fits' inner CV, so that differences compare alike
    r2 = {(name,): fit_encoding(xs[name], y, single, test_sets=tests, device=device, layer=name).r2
          for name in names}
    held = np.concatenate(tests)
    target = torch.device(device)
    joint = {combo: np.full(y.shape, np.nan, dtype=np.float32) for combo in subsets if len(combo) > 1}
    with _himalaya(device):
        from sklearn.model_selection import KFold

        for fold, test in enumerate(tests):
            train = np.setdiff1d(np.arange(n), test)
            transforms = {name: _fit_transform(xs[name][train], parameters, name) for name in names}
            blocks = {name: (transforms[name](xs[name][train]).to(target), transforms[name](xs[name][test]).to(target))
                      for name in names}
            y_mean = y[train].mean(axis=0)
            y_train = torch.from_numpy(y[train] - y_mean).to(target)
            for combo, predictions in joint.items():
                inner = KFold(parameters.inner_folds, shuffle=True, random_state=(parameters.seed + fold) % 2**32)
                predicted = _banded_ridge([blocks[s] for s in combo], y_train, inner, parameters)
                predictions[test] = torch.as_tensor(predicted).cpu().numpy() + y_mean
    for combo, predictions in joint.items():
        r2[combo] = _r2(y[held].astype(np.float64), predictions[held].astype(np.float64))
    return PartitionResult(spaces=names, subsets=r2, unique={name: _region(r2, names, (name,)) for name in names},
                           shared={combo: _region(r2, names, combo) for combo in subsets if len(combo) > 1})


def _banded_ridge(blocks: list[tuple], y_train, inner, parameters: EncodingParameters, *, dual: bool | None = None):
    """Predictions of the test stimuli by banded ridge of the feature spaces `blocks`
    ((train, test) features each), chosen by `inner` cross-validation.

    With fewer training stimuli than features (the usual case: a conv layer has 10^5),
    the same model is fitted in its dual form, himalaya's `MultipleKernelRidgeCV` on a
    linear kernel per space, instead of the primal `BandedRidgeCV`: the same random
    search (space weights drawn alike from `random_state`) and the same solution, but an
    eigendecomposition of each n x n kernel instead of an SVD of each n x p space per
    candidate weight, with its kernels in float64 (the demo's partition: 13x faster, mean
    R^2 equal to 1e-5). The two agree to float32 rounding (tests/brain/test_encoding.py
    compares them); `dual` forces a form."""
    import torch
    from himalaya.kernel_ridge import MultipleKernelRidgeCV
    from himalaya.ridge import BandedRidgeCV

    solver = {"alphas": np.asarray(parameters.alphas, dtype=np.float32), "n_iter": BANDED_ITERATIONS,
              "n_targets_batch": parameters.chunk, "n_targets_batch_refit": parameters.chunk, "progress_bar": False}
    if dual is None:
        dual = sum(train.shape[1] for train, _ in blocks) > blocks[0][0].shape[0]
    if not dual:
        model = BandedRidgeCV(groups="input", cv=inner, random_state=parameters.seed, solver_params=solver)
        model.fit([train for train, _ in blocks], y_train)
        return model.predict([test for _, test in blocks])
    # float64 kernels: standardised (centred) features give each kernel an exact zero
    # eigenvalue, which float32 rounding can push to about -alpha, where 1 / (eigenvalue +
    # alpha) blows up; the primal's SVD has no such step
    model = MultipleKernelRidgeCV(kernels="precomputed", cv=inner, random_state=parameters.seed, solver_params=solver)
    model.fit(torch.stack([_gram(train, train) for train, _ in blocks]), y_train.double())
    return model.predict(torch.stack([_gram(test, train) for train, test in blocks])).float()


def _gram(a, b):
    return a.double() @ b.double().T


def _region(r2: dict[tuple[str, ...], np.ndarray], names: list[str], inside: tuple[str, ...]) -> np.ndarray:
    """The variance explained by every space of `inside` and by no other: the sum over non-empty
    W of `inside` of (-1)^(|W|+1) (R^2(W + outside) - R^2(outside))."""
    outside = tuple(name for name in names if name not in inside)

    def joint(members: set[str]) -> np.ndarray | float:
        return r2[tuple(name for name in names if name in members)] if members else 0.0

    total = 0.0
    for size in range(1, len(inside) + 1):
        for chosen in itertools.combinations(inside, size):
            total = total + (-1) ** (size + 1) * (joint(set(chosen) | set(outside)) - joint(set(outside)))
    return np.asarray(total, dtype=np.float64)


# ------------------------------------------------------------------ saved models


def save_models(path: str | Path, features: np.ndarray, responses: np.ndarray, parameters: EncodingParameters,
                result: EncodingResult, *, device: str = "cpu", layer: str = "features",
                layout: dict[str, np.ndarray] | None = None) -> Path:
    """Refit on all stimuli and write the model to HDF5 (`kind` `encoding-model`) for `predict`.

    The standardisation and reduction are fitted on all stimuli; each target's ridge alpha is
    the geometric median of the alphas it chose in the folds of `result` (no new search).

    Parameters
    ----------
    path : path
        The file to write (replaced atomically).
    features, responses : ndarray
        As given to `fit_encoding`.
    parameters : EncodingParameters
    result : EncodingResult
        `fit_encoding`'s result on the same data.
    device : str
    layer : str
    layout : dict of str to ndarray, optional
        How the targets lie (e.g. a volume's mask and affine), written as datasets of the
        group `layout` so that predictions can be put back in place (`model_layout`).

    Returns
    -------
    Path
    """
    import h5py
    import torch

    from ..io.atomic import atomic_output

    x = _checked_features(features)
    y = _checked_responses(responses, x.shape[0])
    transform = _fit_transform(x, parameters, layer)
    target = torch.device(device)
    z = transform(x).to(target)
    y_mean = y.mean(axis=0)
    y_centred = torch.from_numpy(y - y_mean).to(target)
    if parameters.model == "ridge":
        from himalaya.ridge import solve_ridge_svd

        alphas = np.exp(np.median(np.log(result.alphas), axis=0)).astype(np.float32)
        with _himalaya(device):
            weights = solve_ridge_svd(z, y_centred, alpha=torch.from_numpy(alphas).to(target),
                                      n_targets_batch=parameters.chunk)
    else:
        alphas = np.full(y.shape[1], np.nan, dtype=np.float32)
        weights = _LeastSquares(z).weights(y_centred)
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as file:
        file.attrs["kind"] = ENCODING_MODEL_KIND
        file.attrs["model"] = parameters.model
        file.attrs["layer"] = layer
        file.attrs["features"] = x.shape[1]
        file.attrs["reduce"] = parameters.reduce or "none"
        file["keep"] = transform.keep
        file["mean"] = transform.mean
        file["std"] = transform.std
        if transform.projection is not None:
            file["projection"] = transform.projection
        file["weights"] = torch.as_tensor(weights).cpu().numpy().astype(np.float32)
        file["intercept"] = y_mean.astype(np.float32)
        file["alphas"] = alphas
        for name, values in (layout or {}).items():
            file.create_dataset(f"layout/{name}", data=np.asarray(values))
    return Path(path)


def model_layout(path: str | Path) -> dict[str, np.ndarray]:
    """The `layout` datasets `save_models` wrote with the model at `path` (empty without)."""
    from ..io.hdf5 import open_h5

    with open_h5(path, ENCODING_MODEL_KIND) as file:
        return {name: file["layout"][name][()] for name in file["layout"]} if "layout" in file else {}


def predict(path: str | Path, features: np.ndarray) -> np.ndarray:
    """Predictions of the model `save_models` wrote, for new stimuli.

    Parameters
    ----------
    path : path
        The file `save_models` wrote.
    features : ndarray (stimuli, features)
        The same layer's features of the new stimuli.

    Returns
    -------
    ndarray (stimuli, targets) float32
    """
    from ..io.hdf5 import open_h5

    with open_h5(path, ENCODING_MODEL_KIND) as file:
        expected = int(file.attrs["features"])
        transform = _Transform(file["keep"][()], file["mean"][()], file["std"][()],
                               file["projection"][()] if "projection" in file else None)
        weights, intercept = file["weights"][()], file["intercept"][()]
    x = _checked_features(features)
    if x.shape[1] != expected:
        raise InputError(f"the model of {path} takes {expected} features, got {x.shape[1]}")
    return (transform(x).numpy() @ weights + intercept).astype(np.float32)
