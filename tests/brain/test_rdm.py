"""RDMs: every metric against scipy, standardisation, precision, streaming, files."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist, squareform
from scipy.stats import spearmanr, zscore

from net2brain_fovex.brain.parameters import RDMParameters
from net2brain_fovex.brain.rdm import _COLUMNS, _symmetric_product, compute_rdm, compute_rdms
from net2brain_fovex.brain.rdm_files import feature_chunks, rdms_from_activations, read_rdm_file, write_rdms
from net2brain_fovex.brain.registry import RDM_METRICS as METRICS
from net2brain_fovex.errors import ConfigError, InputError, UnknownNameError

SCIPY = {"correlation": "correlation", "euclidean": "euclidean", "sqeuclidean": "sqeuclidean",
         "cosine": "cosine", "manhattan": "cityblock"}


def reference(x: np.ndarray, metric: str) -> np.ndarray:
    if metric == "spearman":
        return 1 - spearmanr(x.T).statistic
    return squareform(pdist(x, SCIPY[metric]))


@pytest.fixture
def patterns():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(11, 37)) * rng.uniform(0.5, 2, size=(1, 37)) + 2.0
    x[3, :6] = x[3, 6]  # ties for the rank-based metric
    return x


@pytest.mark.parametrize("metric", list(METRICS))
def test_metric_against_scipy(patterns, metric):
    double = compute_rdm(patterns, metric, precision="double")
    np.testing.assert_allclose(double, reference(patterns, metric), atol=1e-10, rtol=1e-10)
    single = compute_rdm(patterns, metric)
    assert single.dtype == np.float32
    np.testing.assert_allclose(single, reference(patterns, metric), atol=1e-4 * max(1, np.abs(double).max()), rtol=1e-5)
    assert np.array_equal(double, double.T) and np.all(np.diag(double) == 0)


@pytest.mark.parametrize("metric", ["correlation", "euclidean", "spearman"])
def test_standardize_is_feature_zscore(patterns, metric):
    expected = reference(zscore(patterns, axis=0), metric)
    np.testing.assert_allclose(compute_rdm(patterns, metric, standardize=True, precision="double"), expected, atol=1e-10)


def test_constant_feature_under_standardize_is_zero(patterns):
    patterns[:, 0] = 5.0
    z = zscore(patterns[:, 1:], axis=0)
    expected = squareform(pdist(np.column_stack([np.zeros(len(z)), z]), "euclidean"))
    np.testing.assert_allclose(compute_rdm(patterns, "euclidean", standardize=True, precision="double"), expected, atol=1e-10)


def test_constant_pattern_gives_nan_with_warning(patterns):
    patterns[2] = 1.0
    with pytest.warns(RuntimeWarning, match="constant: their correlation dissimilarities are undefined"):
        rdm = compute_rdm(patterns, "correlation", precision="double")
    assert np.isnan(rdm[2]).all() and np.isnan(rdm[:, 2]).all()
    assert np.isfinite(np.delete(np.delete(rdm, 2, 0), 2, 1)).all()


def test_batched_rdms_equal_single(patterns):
    rng = np.random.default_rng(1)
    batch = rng.normal(size=(4, 9, 20))
    many = compute_rdms(batch, "correlation", precision="double")
    for index in range(4):
        np.testing.assert_allclose(many[index], reference(batch[index], "correlation"), atol=1e-12)


def test_bad_input():
    with pytest.raises(UnknownNameError, match="unknown metric 'pearson'"):
        compute_rdm(np.ones((3, 3)), "pearson")
    with pytest.raises(InputError, match="NaN or infinite"):
        compute_rdm(np.array([[1.0, np.nan], [2, 3], [4, 5]]))
    with pytest.raises(InputError, match="at least 2 stimuli"):
        compute_rdm(np.ones((1, 4)))
    with pytest.raises(ConfigError, match="unknown precision 'half'"):
        compute_rdm(np.ones((3, 3)), precision="half")


def write_activations(path, layers: dict[str, np.ndarray], stimuli):
    with h5py.File(path, "w") as file:
        file.attrs["kind"] = "activations"
        file.attrs["model"] = "toy"
        file.create_dataset("stimuli", data=np.array(stimuli, dtype=h5py.string_dtype()))
        group = file.create_group("layers", track_order=True)
        for name, values in layers.items():
            group.create_dataset(name, data=values, chunks=(2, *values.shape[1:]))


@pytest.mark.parametrize("metric", ["correlation", "euclidean", "sqeuclidean", "cosine", "manhattan"])
def test_streaming_equals_in_memory(tmp_path, metric):
    rng = np.random.default_rng(2)
    conv = rng.normal(size=(9, 6, 5, 4)).astype(np.float32) + 1
    path = tmp_path / "acts.h5"
    write_activations(path, {"conv": conv}, [f"s{i}" for i in range(9)])
    with h5py.File(path) as file:
        count, _ = feature_chunks(file["layers/conv"], memory_bytes=9 * 20 * 8, itemsize=8)
    assert count == 6  # one slab per channel: the smallest chunk
    streamed, _ = rdms_from_activations(path, parameters=RDMParameters(metric, precision="double"), chunk_bytes=9 * 20 * 8)
    whole, _ = rdms_from_activations(path, parameters=RDMParameters(metric, precision="double"))
    np.testing.assert_allclose(streamed.rdms["conv"], whole.rdms["conv"], atol=1e-10)
    np.testing.assert_allclose(whole.rdms["conv"], reference(conv.reshape(9, -1).astype(float), metric), atol=1e-5)


def test_spearman_cannot_stream(tmp_path):
    path = tmp_path / "acts.h5"
    write_activations(path, {"conv": np.ones((4, 3, 10), dtype=np.float32)}, list("abcd"))
    with pytest.raises(InputError, match="spearman metric cannot be streamed"):
        rdms_from_activations(path, parameters=RDMParameters("spearman"), chunk_bytes=4 * 10 * 4)


def test_rdm_file_round_trip(tmp_path):
    rdm = squareform(pdist(np.random.default_rng(3).normal(size=(5, 3))))
    path = write_rdms(tmp_path / "r.h5", list("abcde"), {"b": rdm, "a": rdm * 2}, metric="euclidean", attrs={"model": "toy"})
    read = read_rdm_file(path)
    assert list(read.rdms) == ["b", "a"] and read.stimuli == list("abcde")
    assert read.metric == "euclidean" and read.model == "toy"
    np.testing.assert_array_equal(read.rdms["a"], rdm * 2)


@pytest.mark.parametrize("metric", ["correlation", "euclidean", "cosine"])
def test_many_features_are_centred_part_by_part(metric):
    x = np.random.default_rng(4).normal(size=(23, 2 * _COLUMNS + 123)) + 1  # three parts, the last narrower
    np.testing.assert_allclose(compute_rdm(x, metric, precision="double"), reference(x, metric), atol=1e-10)


@pytest.mark.parametrize("kind", ["numpy", "tensor"])
def test_symmetric_product_is_out_plus_the_full_product(kind):
    """Both kernels: numpy's rank-k update (a CPU) and a tensor's symmetric blocks (a GPU,
    from 256 stimuli)."""
    rng = np.random.default_rng(5)
    x, start = rng.normal(size=(2, 301, 17)), rng.normal(size=(2, 301, 301))
    start += start.transpose(0, 2, 1)
    convert = torch.from_numpy if kind == "tensor" else np.copy
    result = np.asarray(_symmetric_product(convert(x), convert(start.copy())))
    np.testing.assert_allclose(result, start + x @ x.transpose(0, 2, 1), rtol=1e-10, atol=1e-10)
