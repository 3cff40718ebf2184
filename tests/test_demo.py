"""`net2brain demo` and the synthetic stimuli behind it; the `fovex` app skeleton."""
from __future__ import annotations

import h5py
import numpy as np

from shared.synthetic import shape_stimuli


def test_shape_stimuli_are_seeded_and_distinct():
    first, again = shape_stimuli(size=64, seed=1), shape_stimuli(size=64, seed=1)
    assert len(first) == 24 and len({s.id for s in first}) == 24
    assert all(np.array_equal(np.asarray(a.image), np.asarray(b.image)) for a, b in zip(first, again))
    red_left = next(s for s in first if s.colour == "red" and s.position == "left")
    pixels = np.asarray(red_left.image).astype(int)
    assert pixels[32, 64 * 3 // 10, 0] > 200 and pixels[32, 64 * 3 // 10, 1] < 60  # red shape at the left
    assert abs(pixels[5, 60] - 128).max() < 60  # grey textured background


def test_demo(net2brain, tmp_path):
    out = tmp_path / "demo"
    result = net2brain("demo", "--out", out, "--device", "cpu")
    assert result.code == 0, result
    assert "24 generated stimuli" in result.out and "/layers/layer4" in result.out
    assert len(list((out / "stimuli").glob("*.png"))) == 24
    assert (out / "factors.csv").read_text().splitlines()[1] == "stim_01_circle_red_left.png,circle,red,left"
    with h5py.File(out / "activations.h5") as file:
        assert list(file["layers"]) == ["layer1", "layer2", "layer3", "layer4", "avgpool", "fc"]
        assert file["layers/fc"].shape == (24, 1000) and np.isfinite(file["layers/fc"][()]).all()
    assert (out / "activations.config.yaml").exists()
    again = net2brain("demo", "--out", out, "--device", "cpu")
    assert again.code == 2 and "exists already; add --overwrite" in again.err


def test_fovex_skeleton(fovex):
    assert fovex("--version").out.startswith("fovex ")
    assert fovex("--help").code == 0
    assert fovex("explain").code == 2
