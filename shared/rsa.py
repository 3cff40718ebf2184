"""Representational similarity analysis: model RDMs against brain RDMs.

For every ROI and layer, the upper triangle (k=1, row-major: scipy's `squareform`
order) of the model RDM is compared with each subject's, by Spearman's rho (average
ranks for ties), Pearson's r or Kendall's tau-a. With `squared` (the default, as in
Net2Brain) each subject's r is squared before averaging. Reported per (ROI, layer[,
time]): the mean over subjects, its SEM (sample standard deviation / sqrt(subjects)), the
two-sided one-sample t-test of the subject values against 0, its correction across
layers (Bonferroni or Benjamini-Hochberg FDR), and the noise ceiling: lower = each
subject against the mean RDM of the other subjects, upper = each subject against the
mean RDM of all, with the same comparison and squaring, averaged over subjects; the
score as % of the lower ceiling.

Time-resolved data (subjects, time, n, n) give one row per time point and an aggregate
row (`time` = "mean") whose subject values are the per-time values averaged over time.

Everything is vectorised over layers, subjects and time points; nothing is cached
between calls.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError, InputError, unknown_name

COMPARISONS = ("spearman", "pearson", "kendall")
CORRECTIONS = ("bonferroni", "fdr", "none")
FITS = ("nnls", "lstsq")


def upper_triangle(rdms: np.ndarray) -> np.ndarray:
    """(..., n, n) -> (..., n(n-1)/2): the entries above the diagonal, row by row."""
    n = rdms.shape[-1]
    rows, cols = np.triu_indices(n, k=1)
    return rdms[..., rows, cols]


def check_comparison(method: str) -> str:
    if method not in COMPARISONS:
        raise unknown_name("comparison", method, COMPARISONS)
    return method


def compare(a: np.ndarray, b: np.ndarray, method: str = "spearman") -> np.ndarray:
    """All pairs: a (A, m) against b (B, m) -> (A, B) correlations."""
    check_comparison(method)
    a, b = np.atleast_2d(a).astype(float), np.atleast_2d(b).astype(float)
    if method == "kendall":
        return _undefined_where_constant(_kendall_tau_a(a, b), a, b)
    return prepare(a, method) @ prepare(b, method).T


def compare_pairs(a: np.ndarray, b: np.ndarray, method: str = "spearman") -> np.ndarray:
    """Row by row: a (K, m) against b (K, m) -> (K,) correlations."""
    check_comparison(method)
    a, b = np.atleast_2d(a).astype(float), np.atleast_2d(b).astype(float)
    if method == "kendall":
        return np.array([compare(x, y, "kendall")[0, 0] for x, y in zip(a, b)])
    return np.einsum("km,km->k", prepare(a, method), prepare(b, method))


def prepare(x: np.ndarray, method: str) -> np.ndarray:
    """Vectors turned into unit-length centred rows (of their ranks for spearman), so
    that Pearson and Spearman correlations are dot products."""
    return _unit(ranks(x) if method == "spearman" else np.asarray(x, dtype=float))


def ranks(x: np.ndarray) -> np.ndarray:
    """Ranks along the last axis, 1..m, ties given their average rank (as scipy's
    `rankdata`, with numpy's faster unstable sort: ties are averaged anyway). Float32
    input gives float32 ranks (exact up to 2^24 entries)."""
    x = np.asarray(x)
    x = x if x.dtype in (np.float32, np.float64) else x.astype(float)
    flat = x.reshape(-1, x.shape[-1])
    rows, m = flat.shape
    order = np.argsort(flat, axis=-1)
    ordered = np.sort(flat, axis=-1)  # the same values as flat[order], and cheaper to get
    ties = ordered[:, 1:] == ordered[:, :-1]
    if not ties.any():  # the usual case for continuous data: ranks are the inverse permutation
        ranked = np.broadcast_to(np.arange(1, m + 1, dtype=x.dtype), flat.shape)
    else:
        starts = np.ones(ordered.shape, dtype=bool)
        starts[:, 1:] = ~ties
        group = np.cumsum(starts, axis=-1) - 1 + (np.arange(rows) * m)[:, None]
        positions = np.broadcast_to(np.arange(1, m + 1, dtype=float), flat.shape)
        size = np.bincount(group.ravel(), minlength=rows * m)
        mean_rank = np.bincount(group.ravel(), weights=positions.ravel(), minlength=rows * m) / np.maximum(size, 1)
        ranked = mean_rank[group].astype(x.dtype)
    result = np.empty_like(flat)
    np.put_along_axis(result, order, ranked, axis=-1)
    return result.reshape(x.shape)


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
    ta, tb = torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32)
    total = torch.zeros(len(a), len(b), dtype=torch.float64)
    for start in range(0, m, block):
        sa = torch.sign(ta[:, start:start + block, None] - ta[:, None, :]).reshape(len(a), -1)
        sb = torch.sign(tb[:, start:start + block, None] - tb[:, None, :]).reshape(len(b), -1)
        total += (sa @ sb.T).double()  # block sums stay below 2^24: exact in float32
    return (total / (m * (m - 1))).numpy()


# ----------------------------------------------------------------------------- results


def summarise(values: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, SEM (ddof 1) and two-sided one-sample t-test p against 0 along `axis`."""
    from scipy.stats import ttest_1samp

    count = values.shape[axis]
    mean = values.mean(axis=axis)
    if count < 2:
        nan = np.full_like(mean, np.nan)
        return mean, nan, nan
    sem = values.std(axis=axis, ddof=1) / np.sqrt(count)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # zero variance: p is NaN, said in the docs
        p = ttest_1samp(values, 0.0, axis=axis).pvalue
    return mean, sem, np.asarray(p)


def correct(p: np.ndarray, method: str) -> np.ndarray:
    """Correct p values along the first axis (layers)."""
    if method not in CORRECTIONS:
        raise unknown_name("correction", method, CORRECTIONS)
    p = np.asarray(p, dtype=float)
    if method == "none":
        return p.copy()
    if method == "bonferroni":
        return np.minimum(p * p.shape[0], 1.0)
    from scipy.stats import false_discovery_control

    corrected = np.full_like(p, np.nan)
    flat_p, flat_c = p.reshape(p.shape[0], -1), corrected.reshape(p.shape[0], -1)
    for column in range(flat_p.shape[1]):
        finite = np.isfinite(flat_p[:, column])
        if finite.any():
            flat_c[finite, column] = false_discovery_control(flat_p[finite, column], method="bh")
    return corrected


def noise_ceiling(vectors: np.ndarray, method: str, squared: bool) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper noise ceilings of brain RDM vectors (subjects, [time,] m).

    Lower: each subject against the mean of the other subjects; upper: against the mean
    of all; squared when the scores are; averaged over subjects. Returns arrays of shape
    [time] (scalars for untimed data); the lower ceiling is NaN for a single subject.
    """
    subjects = vectors.shape[0]
    flat = vectors.reshape(subjects, -1, vectors.shape[-1])  # (S, T, m)
    mean_all = flat.mean(axis=0)  # (T, m)
    if method == "kendall":
        upper = compare_pairs(flat.reshape(-1, flat.shape[-1]), np.broadcast_to(mean_all, flat.shape).reshape(-1, flat.shape[-1]), method)
        upper = upper.reshape(subjects, -1)
    else:  # each distinct vector is ranked and normalised once
        own = prepare(flat, method)
        upper = np.einsum("stm,tm->st", own, prepare(mean_all, method))
    if subjects > 1:
        others = (flat.sum(axis=0, keepdims=True) - flat) / (subjects - 1)
        if method == "kendall":
            lower = compare_pairs(flat.reshape(-1, flat.shape[-1]), others.reshape(-1, flat.shape[-1]), method).reshape(subjects, -1)
        else:
            lower = np.einsum("stm,stm->st", own, prepare(others, method))
    else:
        lower = np.full(upper.shape, np.nan)
    if squared:
        lower, upper = lower**2, upper**2
    lower, upper = lower.mean(axis=0), upper.mean(axis=0)
    return (lower[0], upper[0]) if vectors.ndim == 2 else (lower, upper)


@dataclass
class RSAOptions:
    """How to compare (see the module docstring)."""

    method: str = "spearman"
    squared: bool = True
    correction: str = "bonferroni"
    bootstrap: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        check_comparison(self.method)
        if self.correction not in CORRECTIONS:
            raise unknown_name("correction", self.correction, CORRECTIONS)
        if self.bootstrap < 0:
            raise ConfigError(f"--bootstrap must be 0 or more, got {self.bootstrap}")

    @property
    def measure(self) -> str:
        return f"{self.method} r^2" if self.squared else f"{self.method} r"


@dataclass
class ROIResult:
    """Scores of every layer for one ROI; arrays are (layers, [time])."""

    roi: str
    layers: list[str]
    score: np.ndarray
    sem: np.ndarray
    p: np.ndarray
    p_corrected: np.ndarray
    lnc: np.ndarray
    unc: np.ndarray
    n_subjects: int
    subject_values: np.ndarray  # (layers, subjects, [time])
    times: list[str] | None = None
    ci: np.ndarray | None = None  # (layers, 2, [time])


def rsa_roi(
    model_rdms: Mapping[str, np.ndarray], brain: np.ndarray, roi: str, options: RSAOptions
) -> ROIResult:
    """Score every model RDM against one ROI's subjects.

    Parameters
    ----------
    model_rdms : {layer: (n, n)}
    brain : (subjects, n, n) or (subjects, time, n, n)
    """
    layers = list(model_rdms)
    model = upper_triangle(np.stack([model_rdms[name] for name in layers]))  # (L, m)
    vectors = upper_triangle(brain)  # (S, [T,] m)
    subjects = vectors.shape[0]
    flat = vectors.reshape(-1, vectors.shape[-1])
    values = compare(model, flat, options.method).reshape(len(layers), *vectors.shape[:-1])  # (L, S, [T])
    if options.squared:
        values = values**2
    timed = brain.ndim == 4
    if timed:  # the aggregate over time is one more "time point"
        values = np.concatenate([values, values.mean(axis=2, keepdims=True)], axis=2)
    mean, sem, p = summarise(values, axis=1)
    lower, upper = noise_ceiling(vectors, options.method, options.squared)
    if timed:
        lower, upper = np.append(lower, lower.mean()), np.append(upper, upper.mean())
    result = ROIResult(
        roi=roi, layers=layers, score=mean, sem=sem, p=p, p_corrected=correct(p, options.correction),
        lnc=np.broadcast_to(lower, mean.shape).copy(), unc=np.broadcast_to(upper, mean.shape).copy(),
        n_subjects=subjects, subject_values=values,
        times=[str(t) for t in range(brain.shape[1])] + ["mean"] if timed else None,
    )
    if options.bootstrap:
        result.ci = bootstrap_ci(model, brain, options)
    return result


def bootstrap_ci(model: np.ndarray, brain: np.ndarray, options: RSAOptions, level: float = 0.95) -> np.ndarray:
    """Percentile confidence intervals of each layer's group score, resampling stimuli
    with replacement (pairs of a stimulus with its own copy are left out).

    Returns (layers, 2, [time (+ mean)]) with the lower and upper bounds.
    """
    rng = np.random.default_rng(options.seed)
    n = brain.shape[-1]
    model_square = _square_from_upper(model, n)
    samples = []
    for _ in range(options.bootstrap):
        index = rng.integers(0, n, n)
        rows, cols = np.triu_indices(n, k=1)
        keep = index[rows] != index[cols]
        a, b = index[rows][keep], index[cols][keep]
        model_vectors = model_square[:, a, b]
        brain_vectors = brain[..., a, b]
        values = compare(model_vectors, brain_vectors.reshape(-1, len(a)), options.method)
        values = values.reshape(len(model), *brain_vectors.shape[:-1])
        if options.squared:
            values = values**2
        group = values.mean(axis=1)  # (L, [T])
        if brain.ndim == 4:
            group = np.concatenate([group, group.mean(axis=1, keepdims=True)], axis=1)
        samples.append(group)
    stacked = np.stack(samples)  # (B, L, [T])
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(stacked, [tail, 100 - tail], axis=0)
    return np.stack([low, high], axis=1)


def _square_from_upper(vectors: np.ndarray, n: int) -> np.ndarray:
    rows, cols = np.triu_indices(n, k=1)
    square = np.zeros((len(vectors), n, n))
    square[:, rows, cols] = vectors
    square[:, cols, rows] = vectors
    return square


# ---------------------------------------------------------------------- weighted RSA


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
    roi: str,
    options: RSAOptions,
    folds: int = 5,
    fit: str = "nnls",
) -> WeightedResult:
    """Fit a weighted sum of all layer RDMs to the brain RDMs, cross-validated over subjects.

    For each of `folds` folds of subjects (a seeded shuffle): fit y = b + sum_l w_l x_l on
    the upper triangles of the training subjects' mean RDM (`nnls`: w >= 0 and b >= 0,
    Khaligh-Razavi & Kriegeskorte 2014; `lstsq`: ordinary least squares), predict, and
    compare the prediction with each held-out subject (same comparison and squaring as
    plain RSA); the fold score is their mean. Reported: mean and SEM over folds, the
    t-test of the fold scores against 0, the noise ceilings, the mean weights.
    """
    if fit not in FITS:
        raise unknown_name("fit", fit, FITS)
    subjects = brain.shape[0]
    if subjects < 2:
        raise InputError(f"weighted RSA of ROI {roi!r} needs at least 2 subjects to cross-validate, got {subjects}")
    folds = min(folds, subjects)
    if folds < 2:
        raise ConfigError(f"--folds must be at least 2, got {folds}")
    layers = list(model_rdms)
    design = upper_triangle(np.stack([model_rdms[name] for name in layers])).T  # (m, L)
    design = np.column_stack([design, np.ones(len(design))])
    vectors = upper_triangle(brain)  # (S, [T,] m)
    timed = brain.ndim == 4
    per_time = vectors if timed else vectors[:, None]  # (S, T, m)
    order = np.random.default_rng(options.seed).permutation(subjects)
    splits = np.array_split(order, folds)
    fold_scores = np.zeros((folds, per_time.shape[1]))
    weights = np.zeros((folds, len(layers), per_time.shape[1]))
    for k, test in enumerate(splits):
        train = np.setdiff1d(order, test)
        for t in range(per_time.shape[1]):
            target = per_time[train, t].mean(axis=0)
            w = _fit(design, target, fit)
            prediction = design @ w
            values = compare_pairs(np.broadcast_to(prediction, (len(test), len(prediction))), per_time[test, t], options.method)
            fold_scores[k, t] = (values**2 if options.squared else values).mean()
            weights[k, :, t] = w[:-1]
    lower, upper = noise_ceiling(vectors, options.method, options.squared)
    if timed:
        fold_scores = np.concatenate([fold_scores, fold_scores.mean(axis=1, keepdims=True)], axis=1)
        weights = np.concatenate([weights, weights.mean(axis=2, keepdims=True)], axis=2)
        lower, upper = np.append(lower, lower.mean()), np.append(upper, upper.mean())
    score, sem, p = summarise(fold_scores, axis=0)
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


# --------------------------------------------------------------------------- tables

RESULT_COLUMNS = ["roi", "model", "layer", "time", "score", "sem", "p", "p_corrected", "lnc", "unc",
                  "pct_of_nc", "n_subjects", "measure", "ci_low", "ci_high"]


def tidy_rows(results: list[ROIResult | WeightedResult], model: str, options: RSAOptions) -> list[dict]:
    """One row per (ROI, layer[, time]); weighted results give the layer "weighted"."""
    rows = []
    for result in results:
        weighted = isinstance(result, WeightedResult)
        layers = ["weighted"] if weighted else result.layers
        times = result.times or [None]
        for li, layer in enumerate(layers):
            for ti, time in enumerate(times):
                def at(array):
                    value = np.asarray(array, dtype=float)
                    value = value if weighted else value[li]
                    return float(value[ti]) if value.ndim else float(value)

                score, lnc = at(result.score), at(result.lnc)
                row = {
                    "roi": result.roi, "model": model, "layer": layer, "time": "" if time is None else time,
                    "score": score, "sem": at(result.sem), "p": at(result.p),
                    "p_corrected": at(result.p) if weighted else at(result.p_corrected),
                    "lnc": lnc, "unc": at(result.unc),
                    "pct_of_nc": score / lnc * 100 if lnc and np.isfinite(lnc) else float("nan"),
                    "n_subjects": result.n_subjects, "measure": options.measure,
                }
                if not weighted and result.ci is not None:
                    ci = result.ci[li]
                    row["ci_low"], row["ci_high"] = (float(ci[0][ti]), float(ci[1][ti])) if ci.ndim > 1 else (float(ci[0]), float(ci[1]))
                rows.append(row)
    return rows


def weight_rows(results: list[WeightedResult]) -> list[dict]:
    """The mean fitted weight of every layer, per ROI [and time]."""
    rows = []
    for result in results:
        times = result.times or [None]
        for li, layer in enumerate(result.layers):
            for ti, time in enumerate(times):
                weight = result.weights[li] if result.times is None else result.weights[li, ti]
                rows.append({"roi": result.roi, "time": "" if time is None else time, "layer": layer, "weight": float(weight)})
    return rows
