"""Classical MDS (net2brain_fovex.brain.mds) against planted configurations and a literal
double-centring loop."""
from __future__ import annotations

import numpy as np
import pytest

from net2brain_fovex.brain.mds import classical_mds

RNG = np.random.default_rng(3)


def distances(points):
    return np.linalg.norm(points[:, None] - points[None], axis=-1)


def literal_mds(d, k=2):
    """Torgerson's recipe written out element by element."""
    n = len(d)
    b = np.zeros((n, n))
    row = [sum(d[i, j] ** 2 for j in range(n)) / n for i in range(n)]
    total = sum(row) / n
    for i in range(n):
        for j in range(n):
            b[i, j] = -0.5 * (d[i, j] ** 2 - row[i] - row[j] + total)
    values, vectors = np.linalg.eigh(b)
    top = np.argsort(values)[::-1][:k]
    return vectors[:, top] * np.sqrt(values[top])


def test_points_in_the_plane_are_recovered_up_to_a_rotation():
    points = RNG.normal(size=(12, 2))
    found = classical_mds(distances(points))
    np.testing.assert_allclose(distances(found), distances(points), atol=1e-10)


def test_it_equals_the_literal_recipe_up_to_the_axes_signs():
    d = distances(RNG.normal(size=(9, 5)))
    found, literal = classical_mds(d), literal_mds(d)
    np.testing.assert_allclose(np.abs(found), np.abs(literal), atol=1e-10)
    np.testing.assert_allclose(found * np.sign(found[0]), literal * np.sign(literal[0]), atol=1e-10)


def test_the_signs_are_fixed_and_two_clusters_split_on_the_first_axis():
    points = np.vstack([RNG.normal(0, 0.1, (6, 3)), RNG.normal(5, 0.1, (6, 3))])
    d = distances(points)
    found = classical_mds(d)
    assert np.array_equal(found, classical_mds(d.copy()))
    for axis in range(2):  # the coordinate of largest magnitude is positive
        assert found[np.abs(found[:, axis]).argmax(), axis] > 0
    first = found[:, 0]
    assert (np.sign(first[:6]) == np.sign(first[0])).all() and (np.sign(first[6:]) == -np.sign(first[0])).all()


def test_incomplete_or_misshapen_rdms_are_refused():
    d = distances(RNG.normal(size=(4, 2)))
    d[0, 1] = np.nan
    with pytest.raises(ValueError, match="complete RDM"):
        classical_mds(d)
    with pytest.raises(ValueError, match="square"):
        classical_mds(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="1 to 2 dimensions"):
        classical_mds(np.zeros((3, 3)), dimensions=3)
