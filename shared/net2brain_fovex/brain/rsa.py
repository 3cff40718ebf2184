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

Everything is vectorised over layers, subjects and time points. Each RDM vector is
ranked (spearman) once: a subject's for its scores and its noise ceilings, a model's for
every ROI (`ModelVectors`); nothing is cached between calls.
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..io.config import options_output, record_options
from ..io.locks import holds_outputs
from ..io.outputs import Output, check_outputs
from ..io.tables import write_csv
from ..selection import ALL
from .comparisons import compare, correlate, prepare, upper_triangle
from .noise_ceilings import noise_ceiling
from .parameters import RSAParameters
from .registry import COMPARISONS
from .statistics import correct, one_sample_t
from .weighted import WeightedResult, weighted_rsa

__all__ = ["ROIResult", "RSAResult", "ModelVectors", "rsa_roi", "bootstrap_ci", "rsa_to_file", "tidy_rows", "weight_rows",
           "RESULT_COLUMNS"]

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class ModelVectors:
    """Model RDMs in the form `rsa_roi` compares, made once for every ROI.

    Attributes
    ----------
    layers : list of str
    vectors : ndarray (layers, m)
        The upper triangles (`upper_triangle`).
    prepared : ndarray (layers, m)
        `prepare(vectors, method)`: for spearman, ranked once instead of once per ROI.
    method : str
        The comparison they are prepared for.
    """

    layers: list[str]
    vectors: np.ndarray
    prepared: np.ndarray
    method: str

    @classmethod
    def from_rdms(cls, model_rdms: Mapping[str, np.ndarray], method: str) -> ModelVectors:
        """{layer: (n, n)} prepared for the comparison `method` (a name of `COMPARISONS`)."""
        COMPARISONS.check(method)
        layers = list(model_rdms)
        vectors = upper_triangle(np.stack([model_rdms[name] for name in layers]))
        return cls(layers, vectors, prepare(vectors, method), method)


def rsa_roi(
    model_rdms: Mapping[str, np.ndarray] | ModelVectors, brain: np.ndarray, *, roi: str = "roi",
    parameters: RSAParameters | None = None,
) -> ROIResult:
    """Score every model RDM against one ROI's subjects.

    Parameters
    ----------
    model_rdms : {layer: (n, n)} or ModelVectors
        ModelVectors (prepared for `parameters.compare`) where many ROIs are scored.
    brain : (subjects, n, n) or (subjects, time, n, n)
    roi : str
    parameters : RSAParameters, optional
        Uses compare, squared, correction, bootstrap and seed (default: the defaults).
    """
    parameters = parameters or RSAParameters()
    models = model_rdms if isinstance(model_rdms, ModelVectors) else ModelVectors.from_rdms(model_rdms, parameters.compare)
    if models.method != parameters.compare:
        raise ConfigError(f"the model vectors are prepared for {models.method!r}, the comparison is {parameters.compare!r}")
    vectors = upper_triangle(brain)  # (S, [T,] m)
    subjects = vectors.shape[0]
    own = prepare(vectors.reshape(-1, vectors.shape[-1]), parameters.compare)  # ranked once: scores and ceilings
    values = correlate(models.prepared, own, parameters.compare).reshape(len(models.layers), *vectors.shape[:-1])  # (L, S, [T])
    if parameters.squared:
        values = values**2
    timed = brain.ndim == 4
    if timed:  # the aggregate over time is one more "time point"
        values = np.concatenate([values, values.mean(axis=2, keepdims=True)], axis=2)
    mean, sem, _, p = one_sample_t(values, axis=1)
    lower, upper = noise_ceiling(vectors, parameters.compare, parameters.squared, prepared=own)
    if timed:
        lower, upper = np.append(lower, lower.mean()), np.append(upper, upper.mean())
    result = ROIResult(
        roi=roi, layers=list(models.layers), score=mean, sem=sem, p=p, p_corrected=correct(p, parameters.correction),
        lnc=np.broadcast_to(lower, mean.shape).copy(), unc=np.broadcast_to(upper, mean.shape).copy(),
        n_subjects=subjects, subject_values=values,
        times=[str(t) for t in range(brain.shape[1])] + ["mean"] if timed else None,
    )
    if parameters.bootstrap:
        result.ci = bootstrap_ci(models.vectors, brain, parameters=parameters)
    return result


def bootstrap_ci(model: np.ndarray, brain: np.ndarray, *, parameters: RSAParameters, level: float = 0.95) -> np.ndarray:
    """Percentile confidence intervals of each layer's group score, resampling stimuli
    with replacement (pairs of a stimulus with its own copy are left out).

    Parameters
    ----------
    model : (layers, n(n-1)/2)
        Upper triangles of the model RDMs.
    brain : (subjects, n, n) or (subjects, time, n, n)
    parameters : RSAParameters
        Uses compare, squared, bootstrap (the number of samples) and seed.
    level : float, default 0.95

    Returns (layers, 2, [time (+ mean)]) with the lower and upper bounds.

    A sample in which a score is undefined (few distinct stimuli drawn, as happens often
    with 3 or 4 stimuli: fewer than 3 pairs, or a constant resampled RDM) is left out of
    that score's interval, with one warning saying how many; an interval no sample
    defines is NaN.
    """
    rng = np.random.default_rng(parameters.seed)
    n = brain.shape[-1]
    model_square = _square_from_upper(model, n)
    rows, cols = np.triu_indices(n, k=1)
    shape = (len(model), *brain.shape[1:-2]) if brain.ndim == 3 else (len(model), brain.shape[1] + 1)
    samples = np.full((parameters.bootstrap, *shape), np.nan)
    for sample in range(parameters.bootstrap):
        index = rng.integers(0, n, n)
        keep = index[rows] != index[cols]
        a, b = index[rows][keep], index[cols][keep]
        if len(a) < 3:  # no correlation over fewer than 3 pairs: the sample stays NaN
            continue
        brain_vectors = brain[..., a, b]
        with warnings.catch_warnings():  # a constant resample: counted below, not warned per sample
            warnings.simplefilter("ignore", RuntimeWarning)
            values = compare(model_square[:, a, b], brain_vectors.reshape(-1, len(a)), parameters.compare)
        values = values.reshape(len(model), *brain_vectors.shape[:-1])
        if parameters.squared:
            values = values**2
        group = values.mean(axis=1)  # (L, [T])
        if brain.ndim == 4:
            group = np.concatenate([group, group.mean(axis=1, keepdims=True)], axis=1)
        samples[sample] = group
    undefined = int(np.isnan(samples.reshape(len(samples), -1)).any(axis=1).sum())
    if undefined:
        warnings.warn(f"{undefined} of {parameters.bootstrap} bootstrap samples over {n} stimuli drew too few distinct "
                      "stimuli (or a constant RDM) for a score; they are left out of the confidence intervals",
                      RuntimeWarning, stacklevel=2)
    tail = (1 - level) / 2 * 100
    with warnings.catch_warnings():  # an interval no sample defines is NaN, as said above
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanpercentile(samples, [tail, 100 - tail], axis=0)
    return np.stack([low, high], axis=1)


def _square_from_upper(vectors: np.ndarray, n: int) -> np.ndarray:
    rows, cols = np.triu_indices(n, k=1)
    square = np.zeros((len(vectors), n, n))
    square[:, rows, cols] = vectors
    square[:, cols, rows] = vectors
    return square


# --------------------------------------------------------------------------- tables

RESULT_COLUMNS = ["roi", "model", "layer", "time", "score", "sem", "p", "p_corrected", "lnc", "unc",
                  "pct_of_nc", "n_subjects", "measure", "ci_low", "ci_high"]


def tidy_rows(results: list[ROIResult | WeightedResult], model: str, parameters: RSAParameters) -> list[dict]:
    """One row per (ROI, layer[, time]); weighted results give the layer "weighted"."""
    rows = []
    for result in results:
        weighted = isinstance(result, WeightedResult)
        layers = ["weighted"] if weighted else result.layers
        times = result.times or [None]
        for li, layer in enumerate(layers):
            for ti, time in enumerate(times):
                def at(array, layer=None if weighted else li, ti=ti):
                    return _entry(array, layer, ti)

                score, lnc = at(result.score), at(result.lnc)
                row = {
                    "roi": result.roi, "model": model, "layer": layer, "time": "" if time is None else time,
                    "score": score, "sem": at(result.sem), "p": at(result.p),
                    "p_corrected": at(result.p) if weighted else at(result.p_corrected),
                    "lnc": lnc, "unc": at(result.unc),
                    "pct_of_nc": score / lnc * 100 if lnc and np.isfinite(lnc) else float("nan"),
                    "n_subjects": result.n_subjects, "measure": parameters.measure,
                }
                if not weighted and result.ci is not None:
                    ci = result.ci[li]
                    row["ci_low"], row["ci_high"] = (float(ci[0][ti]), float(ci[1][ti])) if ci.ndim > 1 else (float(ci[0]), float(ci[1]))
                rows.append(row)
    return rows


def _entry(array, layer: int | None, time: int) -> float:
    """One value of a result array (layers, [time]), or of a weighted result's ([time])."""
    value = np.asarray(array, dtype=float)
    value = value if layer is None else value[layer]
    return float(value[time]) if value.ndim else float(value)


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


# --------------------------------------------------------------------------- the rsa entry point


@dataclass(frozen=True)
class RSAResult:
    """What `rsa_to_file` computed and wrote.

    Attributes
    ----------
    rows : list of dict
        The table, one row per (ROI, layer[, time]) with `columns`.
    columns : list of str
    results : list of ROIResult
        Per ROI (time-resolved results hold every time point and the aggregate).
    weighted : list of WeightedResult
        Per ROI, with `weighted`.
    parameters : RSAParameters
    paths : dict of str to Path
        `results`, and `weights` and `plot` where written.
    """

    rows: list[dict]
    columns: list[str]
    results: list[ROIResult]
    weighted: list[WeightedResult]
    parameters: RSAParameters
    paths: dict[str, Path]


@holds_outputs
def rsa_to_file(
    model_rdms: str | Path,
    brain_rdms: str | Path,
    out: str | Path,
    *,
    compare: str = RSAParameters.compare,
    squared: bool = RSAParameters.squared,
    correction: str = RSAParameters.correction,
    layers: str | Sequence[str] = ALL,
    weighted: bool = RSAParameters.weighted,
    fit: str = RSAParameters.fit,
    folds: int = RSAParameters.folds,
    bootstrap: int = RSAParameters.bootstrap,
    seed: int = RSAParameters.seed,
    plot: str | Path | None = None,
    overwrite: bool = False,
    config: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RSAResult:
    """Compare model RDMs with brain RDMs per ROI and write the tidy table `out`.

    Parameters
    ----------
    model_rdms : path
        An RDM file (`rdms_to_file`) or a MATLAB struct array (`read_model_rdms`).
    brain_rdms : path
        Brain RDMs: our RDM file, Net2Brain's .npz, MATLAB .mat, or a folder of them
        (`read_brain_rdms`); reordered to the model's stimuli when both name them.
    out : path
        The CSV (columns: `RESULT_COLUMNS`, `time` only for time-resolved data, the
        interval only with `bootstrap`).
    compare, squared, correction, weighted, fit, folds, bootstrap, seed
        As `RSAParameters`.
    layers : str or sequence of str, default "all"
        The model RDMs to compare (NAME,NAME).
    plot : path, optional
        A PNG of the best layer per ROI with its noise ceiling, and the layer profiles.
    overwrite : bool
        Replace existing outputs.
    config : dict, optional
        The resolved options, recorded beside the table (`record_options`).
    progress : callable (done, total), optional
        Called after every ROI.

    Returns
    -------
    RSAResult
        With `weighted`, the mean fitted weights go to `<out stem>.weights.csv`.
    """
    from .rdm_files import align_to_model, choose_rdms, read_brain_rdms, read_model_rdms

    parameters = RSAParameters(compare, squared, correction, weighted, fit, folds, bootstrap, seed)
    out = Path(out)
    weights_path = out.with_name(out.stem + ".weights.csv")
    outputs = [Output("out", out, "csv"), *options_output(out, config)]
    outputs += [Output("out", weights_path, "csv")] if weighted else []
    outputs += [Output("plot", Path(plot), "figure")] if plot is not None else []
    check_outputs(outputs, {"model_rdms": [model_rdms], "brain_rdms": [brain_rdms]}, overwrite=overwrite)
    model = read_model_rdms(model_rdms)
    model.rdms = choose_rdms(model, layers)
    brain = align_to_model(model, read_brain_rdms(brain_rdms))
    model_name = model.model or Path(model_rdms).stem
    models = ModelVectors.from_rdms(model.rdms, parameters.compare)
    results, fitted = [], []
    for index, (roi, stack) in enumerate(brain.items()):
        results.append(rsa_roi(models, stack, roi=roi, parameters=parameters))
        if weighted:
            fitted.append(weighted_rsa(model.rdms, stack, roi=roi, parameters=parameters))
        if progress:
            progress(index + 1, len(brain))
    rows = tidy_rows(results + fitted, model_name, parameters)
    timed = any(r.times for r in results)
    columns = [c for c in RESULT_COLUMNS if (c != "time" or timed) and (c not in ("ci_low", "ci_high") or bootstrap)]
    paths = {"results": write_csv(out, rows, columns)}
    if fitted:
        paths["weights"] = write_csv(weights_path, weight_rows(fitted),
                                     ["roi", "time", "layer", "weight"] if timed else ["roi", "layer", "weight"])
    if plot is not None:
        from ..figures.rsa import rsa_figure

        paths["plot"] = rsa_figure([_aggregate(r) for r in results], plot, parameters.measure)
    record_options(out, config)
    return RSAResult(rows, columns, results, fitted, parameters, paths)


def _aggregate(result: ROIResult) -> ROIResult:
    """A time-resolved result reduced to its aggregate over time, for the figure."""
    if result.times is None:
        return result
    return replace(result, **{k: getattr(result, k)[:, -1] for k in ("score", "sem", "p", "p_corrected", "lnc", "unc")})
