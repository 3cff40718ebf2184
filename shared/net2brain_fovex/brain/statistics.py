"""Group statistics of scores over subjects: the one-sample t-test, and the corrections
for many tests (Bonferroni, Benjamini-Hochberg FDR). RSA tests each ROI's layers, the
searchlight every voxel of a map, with these same routines."""
from __future__ import annotations

import warnings

import numpy as np

from ..checks import check_range
from .registry import CORRECTIONS

__all__ = ["one_sample_t", "fdr_adjust", "correct", "fdr_mask"]


def one_sample_t(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean, SEM (ddof 1), t and two-sided p of the one-sample t-test against 0 along `axis`.

    SEM, t and p are NaN with fewer than two values, and t and p where the values do not
    vary or one is NaN.

    Parameters
    ----------
    values : array
        The scores, with the samples (subjects) along `axis`.
    axis : int, default 0
        The axis of the samples.

    Returns
    -------
    mean, sem, t, p : ndarray
        Each of the shape of `values` without `axis` (t and p: scipy's `ttest_1samp`).
    """
    from scipy.stats import ttest_1samp

    count = values.shape[axis]
    mean = values.mean(axis=axis)
    if count < 2:
        nan = np.full_like(mean, np.nan)
        return mean, nan, nan, nan
    sem = values.std(axis=axis, ddof=1) / np.sqrt(count)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # zero variance: p is NaN, said in the docs
        test = ttest_1samp(values, 0.0, axis=axis)
    return mean, sem, np.asarray(test.statistic), np.asarray(test.pvalue)


def fdr_adjust(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p values over the finite entries of `p` (any shape);
    NaN where `p` is not finite."""
    from scipy.stats import false_discovery_control

    p = np.asarray(p, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        adjusted[finite] = false_discovery_control(p[finite], method="bh")
    return adjusted


def correct(p: np.ndarray, method: str) -> np.ndarray:
    """p values corrected along the first axis (layers), separately for every index of
    the others (time points): a name of `CORRECTIONS`.

    Parameters
    ----------
    p : array (layers, ...)
        Uncorrected p values; NaN stays NaN.
    method : str
        A name of `CORRECTIONS`. `bonferroni`: p times the number of tests, at most 1;
        `fdr`: Benjamini-Hochberg adjusted p values (`fdr_adjust`); `none`: a copy. Both
        count as tests the finite entries of each column: a NaN p (an undefined score, as
        of a constant RDM) is no test, and would otherwise make the others stricter under
        one correction than under the other.

    Returns
    -------
    ndarray float64
        The shape of `p`.

    Raises
    ------
    UnknownNameError
        An unknown `method`.
    """
    CORRECTIONS.check(method)
    p = np.asarray(p, dtype=float)
    if method == "none":
        return p.copy()
    if method == "bonferroni":
        return np.minimum(p * np.isfinite(p).sum(axis=0), 1.0)
    flat = p.reshape(p.shape[0], -1)
    return np.stack([fdr_adjust(flat[:, column]) for column in range(flat.shape[1])], axis=1).reshape(p.shape)


def fdr_mask(p: np.ndarray, fdr: float) -> np.ndarray:
    """Where `p` is significant at false discovery rate `fdr` (Benjamini-Hochberg over
    the finite p values).

    Parameters
    ----------
    p : array
        p values of any shape; NaN and infinite entries are not counted as tests.
    fdr : float
        The false discovery rate q, strictly between 0 and 1.

    Returns
    -------
    ndarray of bool
        The shape of `p`: True where the adjusted p value is below `fdr` (False where `p`
        is not finite).

    Raises
    ------
    ConfigError
        `fdr` not strictly between 0 and 1.
    """
    check_range("fdr", fdr)
    return fdr_adjust(p) < fdr
