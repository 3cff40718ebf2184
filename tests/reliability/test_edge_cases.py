"""Numbers stay honest at the edges: an undefined correlation (a constant pattern or RDM)
is NaN with a warning, never a silent 0; ties in rank correlations follow the
documented rules (Spearman: average ranks, as scipy; Kendall: tau-a, ties count as
neither concordant nor discordant)."""
from __future__ import annotations

import itertools

import h5py
import numpy as np
import pytest
from scipy.stats import spearmanr

from net2brain_fovex.brain.comparisons import compare, compare_pairs, upper_triangle
from net2brain_fovex.brain.parameters import RSAParameters
from net2brain_fovex.brain.rdm import compute_rdm
from net2brain_fovex.brain.rsa import rsa_roi
from net2brain_fovex.brain.searchlight import SphereIndex, searchlight_scores

RNG = np.random.default_rng(7)


def random_rdm(n=7):
    patterns = RNG.normal(size=(n, 5))
    return np.sqrt(((patterns[:, None] - patterns[None]) ** 2).sum(-1))


@pytest.mark.parametrize("metric", ["correlation", "cosine", "spearman"])
def test_a_constant_pattern_has_undefined_dissimilarities(metric):
    patterns = RNG.normal(size=(5, 9)).astype(np.float32)
    patterns[3] = 0.0 if metric == "cosine" else 2.5  # cosine: only the zero vector has no direction
    with pytest.warns(RuntimeWarning, match="constant"):
        rdm = np.asarray(compute_rdm(patterns, metric))
    others = [i for i in range(5) if i != 3]
    assert np.isnan(rdm[3, others]).all() and np.isnan(rdm[others, 3]).all()
    assert np.isfinite(rdm[np.ix_(others, others)]).all()


def test_euclidean_distances_of_a_constant_pattern_are_defined():
    patterns = RNG.normal(size=(4, 6))
    patterns[1] = 1.0
    rdm = np.asarray(compute_rdm(patterns, "euclidean"))
    assert np.isfinite(rdm).all()
    assert rdm[1, 0] == pytest.approx(np.linalg.norm(patterns[1] - patterns[0]), rel=1e-5)


@pytest.mark.parametrize("method", ["spearman", "pearson", "kendall"])
def test_a_constant_rdm_correlates_with_nothing(method):
    vectors = upper_triangle(np.stack([random_rdm(), np.ones((7, 7)) - np.eye(7)]))
    with pytest.warns(RuntimeWarning, match="constant"):
        values = compare(vectors, vectors, method)
    assert np.isnan(values[1]).all() and np.isnan(values[:, 1]).all()
    assert values[0, 0] == pytest.approx(1.0)
    with pytest.warns(RuntimeWarning, match="constant"):
        pairs = compare_pairs(vectors, vectors[::-1], method)
    assert np.isnan(pairs).all()


@pytest.mark.parametrize("method", ["spearman", "pearson", "kendall"])
def test_rsa_of_a_constant_model_rdm_is_nan_not_zero(method):
    layers = {"informative": random_rdm(), "flat": np.ones((7, 7)) - np.eye(7)}
    brain = np.stack([random_rdm() for _ in range(5)])
    with pytest.warns(RuntimeWarning, match="constant"):
        result = rsa_roi(layers, brain, roi="roi", parameters=RSAParameters(compare=method))
    assert np.isfinite(result.score[0]) and np.isnan(result.score[1]) and np.isnan(result.p[1])


def test_spearman_ties_take_average_ranks_as_scipy():
    a = RNG.integers(0, 4, size=(6, 45)).astype(float)  # many ties
    b = RNG.integers(0, 3, size=(3, 45)).astype(float)
    values = compare(a, b, "spearman")
    for i, j in itertools.product(range(6), range(3)):
        assert values[i, j] == pytest.approx(spearmanr(a[i], b[j]).statistic, abs=1e-12)


def test_kendall_is_tau_a_with_ties_counting_zero():
    a = RNG.integers(0, 4, size=(3, 12)).astype(float)
    b = RNG.integers(0, 3, size=(2, 12)).astype(float)
    values = compare(a, b, "kendall")
    for i, j in itertools.product(range(3), range(2)):
        pairs = list(itertools.combinations(range(12), 2))
        score = sum(np.sign(a[i, p] - a[i, q]) * np.sign(b[j, p] - b[j, q]) for p, q in pairs) / len(pairs)
        assert values[i, j] == pytest.approx(score, abs=1e-12)


def test_searchlight_centres_with_constant_spheres_are_nan_with_a_warning():
    shape, n = (6, 6, 6), 8
    mask = np.ones(shape, dtype=bool)
    index = SphereIndex.build(mask, np.eye(4), 1.5)
    patterns = RNG.normal(size=(mask.sum(), n))
    patterns[:100] = 3.0  # the first voxels (the spheres of the first centres) respond the same to every stimulus
    model = upper_triangle(random_rdm(n)[None])
    with pytest.warns(RuntimeWarning, match="constant sphere RDM"):
        scores = searchlight_scores(patterns, index, model, metric="correlation", compare="spearman", min_voxels=2)
    assert np.isnan(scores[0, 0]) and np.isfinite(scores[0, -1])


def test_the_cli_shows_the_warning_as_one_line(net2brain, tmp_path):
    activations = tmp_path / "acts.h5"
    patterns = RNG.normal(size=(5, 8)).astype(np.float32)
    patterns[2] = 1.0
    with h5py.File(activations, "w") as file:
        file.attrs["kind"] = "activations"
        file.create_dataset("stimuli", data=np.array([f"s{i}" for i in range(5)], dtype=h5py.string_dtype()))
        file.create_dataset("layers/fc", data=patterns)
    result = net2brain("rdm", "--activations", activations, "--out", tmp_path / "rdms.h5")
    assert result.code == 0, result
    warning = [line for line in result.err.splitlines() if "warning:" in line]
    assert len(warning) == 1 and "constant" in warning[0] and "rdm.py" not in result.err
    with h5py.File(tmp_path / "rdms.h5") as file:
        assert np.isnan(file["rdms/fc"][2, 0]) and np.isfinite(file["rdms/fc"][0, 1])


def test_kendall_orders_values_closer_than_float32_resolution():
    """Differences below float32's resolution are orderings, not ties (tau-a 1, not less)."""
    m = 50
    close = 1.0 + np.arange(m) * 1e-9  # all equal in float32
    assert compare(close[None], np.arange(m, dtype=float)[None], "kendall")[0, 0] == pytest.approx(1.0)
