"""Figures of `net2brain rdm` and `net2brain rsa`: valid PNGs, written atomically."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from net2brain_fovex.figures.rdm import rdm_heatmap
from net2brain_fovex.figures.rsa import rsa_figure, significance_stars

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path, folder):
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "RGBA"
        assert image.width > 100 and image.height > 100
    assert [p.name for p in folder.iterdir()] == [path.name]  # no temporary file left behind


def random_rdm(n, seed=0):
    points = np.random.default_rng(seed).normal(size=(n, 5))
    return np.linalg.norm(points[:, None] - points[None], axis=-1)


@pytest.mark.parametrize("n, labels", [(6, [f"stim_{i}.png" for i in range(6)]), (6, None), (50, None)])
def test_rdm_heatmap_writes_png(tmp_path, n, labels):
    path = rdm_heatmap(random_rdm(n), tmp_path / "layer4.png", title="layer4 (correlation)", labels=labels)
    assert path == tmp_path / "layer4.png"
    assert_png(path, tmp_path)


def test_rdm_heatmap_with_nan(tmp_path):
    matrix = random_rdm(8)
    matrix[2, :] = matrix[:, 2] = np.nan
    assert_png(rdm_heatmap(matrix, tmp_path / "fc.png", title="fc (euclidean)"), tmp_path)


def test_rdm_heatmap_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="square"):
        rdm_heatmap(np.zeros((3, 4)), tmp_path / "x.png", title="x")
    with pytest.raises(ValueError, match="labels"):
        rdm_heatmap(np.zeros((3, 3)), tmp_path / "x.png", title="x", labels=["a", "b"])
    assert list(tmp_path.iterdir()) == []


def rsa_result(roi, score, p):
    layers = ["layer1", "layer2", "layer3"]
    return SimpleNamespace(
        roi=roi,
        layers=layers,
        score=np.array(score),
        sem=np.full(3, 0.02),
        p_corrected=np.array(p),
        lnc=np.full(3, 0.3),
        unc=np.full(3, 0.45),
    )


def test_rsa_figure_two_rois(tmp_path):
    results = [
        rsa_result("V1", [0.10, 0.25, 0.15], [0.04, 0.0005, 0.2]),
        rsa_result("IT", [0.05, np.nan, 0.30], [0.5, np.nan, 0.003]),
    ]
    path = rsa_figure(results, tmp_path / "rsa.png", "spearman r^2")
    assert path == tmp_path / "rsa.png"
    assert_png(path, tmp_path)


def test_rsa_figure_roi_without_scores(tmp_path):
    results = [rsa_result("V1", [np.nan] * 3, [np.nan] * 3)]
    results[0].lnc = results[0].unc = np.full(3, np.nan)
    assert_png(rsa_figure(results, tmp_path / "rsa.png", "kendall tau-a"), tmp_path)


@pytest.mark.parametrize(
    "p, stars",
    [(0.0, "***"), (0.0009, "***"), (0.001, "**"), (0.0099, "**"), (0.01, "*"), (0.049, "*"), (0.05, ""), (1.0, ""), (np.nan, "")],
)
def test_significance_stars(p, stars):
    assert significance_stars(p) == stars
