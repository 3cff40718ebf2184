"""Classical (Torgerson) multidimensional scaling of an RDM: the view of a
representational geometry beside its heat map."""
from __future__ import annotations

import numpy as np

__all__ = ["classical_mds"]


def classical_mds(rdm: np.ndarray, dimensions: int = 2) -> np.ndarray:
    """Coordinates whose Euclidean distances best match the dissimilarities `rdm`.

    The squared dissimilarities are double-centred, B = -1/2 J D^2 J with J = I - 11'/n,
    and the coordinates are B's top eigenvectors scaled by the square roots of their
    eigenvalues (negative eigenvalues, of a non-Euclidean RDM, count as 0). Each axis's
    sign is fixed so that its coordinate of largest magnitude is positive: the same RDM
    always gives the same picture. The distances are exact for an RDM of Euclidean
    distances of points in `dimensions` dimensions (the points, up to a rotation).

    Parameters
    ----------
    rdm : array (n, n)
        Dissimilarities; symmetrised as (D + D') / 2.
    dimensions : int, default 2

    Returns
    -------
    array (n, dimensions)

    Raises
    ------
    ValueError
        `rdm` not square or not finite, or `dimensions` not below n.
    """
    rdm = np.asarray(rdm, dtype=float)
    if rdm.ndim != 2 or rdm.shape[0] != rdm.shape[1]:
        raise ValueError(f"an RDM must be a square matrix, got shape {rdm.shape}")
    n = len(rdm)
    if not 1 <= dimensions < n:
        raise ValueError(f"MDS of {n} stimuli gives 1 to {n - 1} dimensions, not {dimensions}")
    if not np.isfinite(rdm).all():
        raise ValueError("MDS needs a complete RDM (it holds NaN or infinite values)")
    squared = ((rdm + rdm.T) / 2) ** 2
    centred = squared - squared.mean(axis=0) - squared.mean(axis=1)[:, None] + squared.mean()
    values, vectors = np.linalg.eigh(-0.5 * centred)
    top = np.argsort(values)[::-1][:dimensions]
    coordinates = vectors[:, top] * np.sqrt(np.clip(values[top], 0, None))
    signs = np.sign(coordinates[np.abs(coordinates).argmax(axis=0), range(dimensions)])
    return coordinates * np.where(signs == 0, 1, signs)
