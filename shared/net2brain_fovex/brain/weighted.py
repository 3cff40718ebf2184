"""Weighted RSA: a non-negative (or least-squares) mix of all layer RDMs fitted to the
brain RDMs, cross-validated over subjects (Khaligh-Razavi & Kriegeskorte 2014)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .comparisons import compare_pairs, upper_triangle
from .noise_ceilings import noise_ceiling
from .parameters import RSAParameters
from .statistics import one_sample_t

__all__ = ["WeightedResult", "weighted_rsa"]


@dataclass
class WeightedResult:
    """Cross-validated weighted RSA of one ROI; arrays over [time] (scalars untimed)."""

    roi: str
    layers: list[str]
    score: np.ndarray
    sem: np.ndarray
    p: np.ndarray
    lnc: np.ndarray
    unc: np.ndarray
    weights: np.ndarray  # (layers, [time]) mean over folds
    fold_scores: np.ndarray  # (folds, [time])
    n_subjects: int
    times: list[str] | None = None


def weighted_rsa(
    model_rdms: Mapping[str, np.ndarray],
    brain: np.ndarray,
    *,
    roi: str = "roi",
    parameters: RSAParameters | None = None,
) -> WeightedResult:
    """Fit a weighted sum of all layer RDMs to the brain RDMs, cross-validated over subjects.

    For each of `parameters.folds` folds of subjects (a seeded shuffle; more folds than
    subjects is leave-one-subject-out): fit y = b + sum_l w_l x_l on
    the upper triangles of the training subjects' mean RDM (`nnls`: w >= 0 and b >= 0,
    Khaligh-Razavi & Kriegeskorte 2014; `lstsq`: ordinary least squares), predict, and
    compare the prediction with each held-out subject (same comparison and squaring as
    plain RSA); the fold score is their mean. Reported: mean and SEM over folds, the
    t-test of the fold scores against 0, the noise ceilings, the mean weights.

    Parameters
    ----------
    model_rdms : {layer: (n, n)}
    brain : (subjects, n, n) or (subjects, time, n, n)
    roi : str
    parameters : RSAParameters
        Uses compare, squared, fit, folds and seed.
    """
    parameters = parameters or RSAParameters()
    subjects = brain.shape[0]
    if subjects < 2:
        raise InputError(f"weighted RSA of ROI {roi!r} needs at least 2 subjects to cross-validate, got {subjects}")
    folds = min(parameters.folds, subjects)
    layers = list(model_rdms)
    design = upper_triangle(np.stack([model_rdms[name] for name in layers])).T  # (m, L)
    design = np.column_stack([design, np.ones(len(design))])
    vectors = upper_triangle(brain)  # (S, [T,] m)
    timed = brain.ndim == 4
    per_time = vectors if timed else vectors[:, None]  # (S, T, m)
    order = np.random.default_rng(parameters.seed).permutation(subjects)
    splits = np.array_split(order, folds)
    fold_scores = np.zeros((folds, per_time.shape[1]))
    weights = np.zeros((folds, len(layers), per_time.shape[1]))
    for k, test in enumerate(splits):
        train = np.setdiff1d(order, test)
        for t in range(per_time.shape[1]):
            target = per_time[train, t].mean(axis=0)
            w = _fit(design, target, parameters.fit)
            prediction = design @ w
            values = compare_pairs(np.broadcast_to(prediction, (len(test), len(prediction))), per_time[test, t], parameters.compare)
            fold_scores[k, t] = (values**2 if parameters.squared else values).mean()
            weights[k, :, t] = w[:-1]
    lower, upper = noise_ceiling(vectors, parameters.compare, parameters.squared)
    if timed:
        fold_scores = np.concatenate([fold_scores, fold_scores.mean(axis=1, keepdims=True)], axis=1)
        weights = np.concatenate([weights, weights.mean(axis=2, keepdims=True)], axis=2)
        lower, upper = np.append(lower, lower.mean()), np.append(upper, upper.mean())
    score, sem, _, p = one_sample_t(fold_scores, axis=0)
    squeeze = (lambda x: x[..., 0]) if not timed else (lambda x: x)
    return WeightedResult(
        roi=roi, layers=layers, score=squeeze(score), sem=squeeze(sem), p=squeeze(p), lnc=np.asarray(lower),
        unc=np.asarray(upper), weights=squeeze(weights.mean(axis=0)), fold_scores=squeeze(fold_scores),
        n_subjects=subjects, times=[str(t) for t in range(brain.shape[1])] + ["mean"] if timed else None,
    )


def _fit(design: np.ndarray, target: np.ndarray, fit: str) -> np.ndarray:
    if fit == "nnls":
        from scipy.optimize import nnls

        return nnls(design, target)[0]
    return np.linalg.lstsq(design, target, rcond=None)[0]


