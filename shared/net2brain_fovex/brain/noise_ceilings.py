"""Noise ceilings of brain RDMs: how well any model could do, given the subjects' agreement.

Lower ceiling: each subject against the mean RDM of the other subjects; upper ceiling:
each subject against the mean RDM of all subjects (Nili et al. 2014), with the
comparison and the squaring of the scores they bound, averaged over subjects.
"""
from __future__ import annotations

import numpy as np

from .comparisons import correlate_pairs, prepare
from .registry import COMPARISONS

__all__ = ["noise_ceiling"]


def noise_ceiling(
    vectors: np.ndarray, method: str, squared: bool, *, prepared: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper noise ceilings of brain RDM vectors (subjects, [time,] m).

    Lower: each subject against the mean of the other subjects; upper: against the mean
    of all; squared when the scores are; averaged over subjects. Returns arrays of shape
    [time] (scalars for untimed data); the lower ceiling is NaN for a single subject.

    Parameters
    ----------
    vectors : array (subjects, m) or (subjects, time, m)
        Each subject's brain RDM vectors (`upper_triangle`); at each time point a subject
        is compared with the mean at that time point.
    method : str
        A name of `COMPARISONS`, as the scores use.
    squared : bool
        Square each subject's correlation before the mean over subjects.
    prepared : array, optional
        `prepare(vectors, method)`, where the caller has it already (the scores compare
        the same vectors), so that they are not ranked twice.

    Returns
    -------
    lower, upper : float or ndarray (time,)
        Numpy scalars for (subjects, m) input.
    """
    COMPARISONS.check(method)
    subjects = vectors.shape[0]
    flat = vectors.reshape(subjects, -1, vectors.shape[-1])  # (S, T, m)
    own = (prepare(flat, method) if prepared is None else prepared).reshape(flat.shape)
    upper = correlate_pairs(own, prepare(flat.mean(axis=0), method), method)  # (S, T)
    if subjects > 1:
        others = (flat.sum(axis=0, keepdims=True) - flat) / (subjects - 1)
        lower = correlate_pairs(own, prepare(others, method), method)
    else:
        lower = np.full(upper.shape, np.nan)
    if squared:
        lower, upper = lower**2, upper**2
    lower, upper = lower.mean(axis=0), upper.mean(axis=0)
    return (lower[0], upper[0]) if vectors.ndim == 2 else (lower, upper)
