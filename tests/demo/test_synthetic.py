"""Synthetic brain RDMs with a known answer."""
from __future__ import annotations

import numpy as np
import pytest

from net2brain_fovex.demo.synthetic import simulate_brain_rdms
from net2brain_fovex.errors import ConfigError, UnknownNameError


def test_bad_arguments_are_named():
    model = {"conv": np.ones((4, 4)) - np.eye(4)}
    with pytest.raises(UnknownNameError, match=r"^unknown layer \(the generator of ROI 'V1'\) 'fc'$"):
        simulate_brain_rdms(model, {"V1": "fc"})
    with pytest.raises(ConfigError, match="`subjects` must be a whole number of at least 1, got 0"):
        simulate_brain_rdms(model, {"V1": "conv"}, subjects=0)
    with pytest.raises(ConfigError, match="`noise` must be a finite number of 0 or more, got nan"):
        simulate_brain_rdms(model, {"V1": "conv"}, noise=float("nan"))
    with pytest.raises(ConfigError, match="`seed` must be 0 or more"):
        simulate_brain_rdms(model, {"V1": "conv"}, seed=-1)


def test_the_roi_is_its_layer_plus_noise():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(6, 3))
    model = {"a": np.linalg.norm(points[:, None] - points[None], axis=-1), "b": rng.random((6, 6))}
    model["b"] = (model["b"] + model["b"].T) * (1 - np.eye(6))
    brain = simulate_brain_rdms(model, {"V1": "a"}, subjects=4, noise=0.0, seed=1)["V1"]
    rows, cols = np.triu_indices(6, 1)
    for subject in brain:  # without noise every subject is the layer's RDM up to scale and shift
        assert np.corrcoef(subject[rows, cols], model["a"][rows, cols])[0, 1] == pytest.approx(1)
        assert np.allclose(subject, subject.T) and np.all(np.diag(subject) == 0) and subject.min() >= 0


def test_simulated_voxels_follow_their_layer():
    from net2brain_fovex.demo.synthetic import simulate_voxel_responses

    rng = np.random.default_rng(1)
    layers = {"a": rng.normal(size=(30, 12)), "b": rng.normal(size=(30, 5))}
    volumes, masks = simulate_voxel_responses(layers, {"ra": "a", "rb": "b"}, shape=(4, 2, 2), subjects=2, noise=0.0)
    assert len(volumes) == 2 and volumes[0].shape == (4, 2, 2, 30)
    assert not (masks["ra"] & masks["rb"]).any() and (masks["ra"] | masks["rb"]).all()
    z = (layers["a"] - layers["a"].mean(0)) / layers["a"].std(0)
    voxels = volumes[0][masks["ra"]].T  # (30, voxels): without noise, each a linear read-out of layer a
    weights, residuals, *_ = np.linalg.lstsq(np.c_[z, np.ones(30)], voxels, rcond=None)
    assert np.allclose(np.c_[z, np.ones(30)] @ weights, voxels, atol=1e-4)
    np.testing.assert_allclose(voxels.std(axis=0), 1.0, rtol=1e-4)
