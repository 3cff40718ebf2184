"""`net2brain demo` and the synthetic stimuli behind it; the `fovex` app skeleton."""
from __future__ import annotations

import csv

import h5py
import numpy as np

from net2brain_fovex.demo.synthetic import shape_stimuli


def test_shape_stimuli_are_seeded_and_distinct():
    first, again = shape_stimuli(size=64, seed=1), shape_stimuli(size=64, seed=1)
    assert len(first) == 24 and len({s.id for s in first}) == 24
    assert all(np.array_equal(np.asarray(a.image), np.asarray(b.image)) for a, b in zip(first, again, strict=True))
    red_left = next(s for s in first if s.colour == "red" and s.position == "left")
    pixels = np.asarray(red_left.image).astype(int)
    assert pixels[32, 64 * 3 // 10, 0] > 200 and pixels[32, 64 * 3 // 10, 1] < 60  # red shape at the left
    assert abs(pixels[5, 60] - 128).max() < 60  # grey textured background


def test_simulated_brain_rdms_are_noisy_copies():
    from scipy.stats import pearsonr

    from net2brain_fovex.brain.comparisons import upper_triangle
    from net2brain_fovex.demo.synthetic import simulate_brain_rdms

    rng = np.random.default_rng(0)
    layer = np.abs(rng.normal(size=(12, 12)))
    layer = layer + layer.T
    np.fill_diagonal(layer, 0)
    brain = simulate_brain_rdms({"a": layer}, {"roi": "a"}, subjects=3, noise=0.5, seed=1)["roi"]
    assert brain.shape == (3, 12, 12) and (brain >= 0).all()
    assert np.allclose(brain, np.swapaxes(brain, 1, 2)) and (np.diagonal(brain, axis1=1, axis2=2) == 0).all()
    r = pearsonr(upper_triangle(brain[0]), upper_triangle(layer)).statistic
    assert 0.75 < r < 0.98  # 1 / sqrt(1 + 0.5^2) = 0.89 expected


def test_demo(net2brain, net2brain_demo):
    out, result = net2brain_demo.folder, net2brain_demo
    assert "24 generated stimuli" in result.out and "layer4   512 x 7 x 7" in result.out
    assert "early  best layer1" in result.out and "late   best fc" in result.out
    assert "NOT recovered" not in result.out and result.out.count("recovered") == 4  # RSA and encoding, two each
    assert "[read out from layer1: recovered]" in result.out and "[read out from fc: recovered]" in result.out
    summary = list(csv.DictReader(open(out / "encoding" / "summary.csv")))
    best = {roi: max((row for row in summary if row["roi"] == roi and row["subject"] == "group"),
                     key=lambda row: float(row["mean_r"]))["layer"] for roi in ("early", "late")}
    assert best == {"early": "layer1", "late": "fc"}
    assert "[unique to layer1: attributed]" in result.out and "[unique to fc: attributed]" in result.out
    partition = [row for row in csv.DictReader(open(out / "partition" / "summary.csv"))
                 if row["subject"] == "group" and row["measure"] == "unique"]
    unique = {(row["roi"], row["spaces"]): float(row["mean_r2"]) for row in partition}
    assert unique["early", "layer1"] > unique["early", "fc"] and unique["late", "fc"] > unique["late", "layer1"]
    assert "layer1   peak r" in result.out and "at voxel (4, 8, 6), planted at (4, 8, 6): in the planted sphere" in result.out
    assert "at voxel (11, 8, 6), planted at (11, 8, 6): in the planted sphere" in result.out
    assert (out / "searchlight" / "group_fc_mean.nii.gz").exists() and (out / "searchlight" / "summary.csv").exists()
    assert len(list((out / "stimuli").glob("*.png"))) == 24
    assert (out / "factors.csv").read_text().splitlines()[1] == "stim_01_circle_red_left.png,circle,red,left"
    with h5py.File(out / "activations.h5") as file:
        assert list(file["layers"]) == ["layer1", "layer2", "layer3", "layer4", "avgpool", "fc"]
        assert file["layers/fc"].shape == (24, 1000) and np.isfinite(file["layers/fc"][()]).all()
    assert (out / "demo.config.yaml").exists()
    for name in ("rdms.h5", "brain_rdms.h5", "rsa.csv", "rsa.png"):
        assert (out / name).stat().st_size > 0
    again = net2brain("demo", "--out", out, "--device", "cpu")
    assert again.code == 2 and "exists already; add --overwrite" in again.err


def test_fovex_skeleton(fovex):
    assert fovex("--version").out.startswith("fovex ")
    assert fovex("--help").code == 0
    assert fovex("explain").code == 2
