"""`net2brain cka` end to end: the table, the p-values, the heat map and the config sidecar."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from net2brain_fovex.brain.cka import linear_cka
from tests.brain.test_cka import write_activations


def test_cka_command_writes_the_table_plot_and_sidecar(net2brain, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 6))
    y = x @ rng.normal(size=(6, 4)) + 0.3 * rng.normal(size=(10, 4))
    write_activations(tmp_path / "a.h5", {"x": x})
    write_activations(tmp_path / "b.h5", {"y": y, "noise": rng.normal(size=(10, 3))})
    out = tmp_path / "cka.csv"
    result = net2brain("cka", "--activations", tmp_path / "a.h5", "--against", tmp_path / "b.h5", "--out", out,
                       "--permutations", 99, "--seed", 3, "--plot", tmp_path / "cka.png")
    assert result.code == 0, result.err
    rows = list(csv.DictReader(open(out)))
    assert [(r["layer_a"], r["layer_b"]) for r in rows] == [("x", "y"), ("x", "noise")]
    assert float(rows[0]["cka"]) == pytest.approx(linear_cka(x, y), rel=1e-9)
    assert float(rows[0]["p"]) == pytest.approx(0.01)
    assert (tmp_path / "cka.png").read_bytes().startswith(b"\x89PNG")
    sidecar = (tmp_path / "cka.config.yaml").read_text()
    assert "permutations: 99" in sidecar and "estimator: debiased" in sidecar
    again = net2brain("cka", "--activations", tmp_path / "a.h5", "--against", tmp_path / "b.h5", "--out", out,
                      "--permutations", 99, "--seed", 3, "--overwrite")
    assert again.code == 0 and list(csv.DictReader(open(out))) == rows  # seeded: the same p-values


def test_cka_help_lists_its_options(net2brain):
    result = net2brain("cka", "--help")
    assert result.code == 0
    text = " ".join(result.out.split())
    assert all(option in text for option in ("--estimator", "--permutations", "--against", "--responses", "--betas"))
