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
