"""Figures of `net2brain rdm` and `net2brain rsa`: valid PNGs, written atomically."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from net2brain_fovex.figures.rdm import RDM_FIGURE_SIZE, rdm_figure
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


@pytest.mark.parametrize("n, named", [(6, True), (50, False)])
def test_rdm_figure_writes_png(tmp_path, n, named):
    ids = [f"stim_{i}.png" for i in range(n)]
    picture = rdm_figure(random_rdm(n), tmp_path / "layer4.png", title="layer4 (correlation)", stimuli=ids)
    assert picture.path == tmp_path / "layer4.png" and picture.order == list(range(n))
    assert_png(picture.path, tmp_path)
    with Image.open(picture.path) as image:
        assert image.size == RDM_FIGURE_SIZE


def test_rdm_figure_with_nan_has_no_mds(tmp_path):
    matrix = random_rdm(8)
    matrix[2, :] = matrix[:, 2] = np.nan
    picture = rdm_figure(matrix, tmp_path / "fc.png", title="fc (euclidean)", stimuli=list("abcdefgh"))
    assert picture.coordinates is None
    assert_png(picture.path, tmp_path)


def test_rdm_figure_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="square"):
        rdm_figure(np.zeros((3, 4)), tmp_path / "x.png", title="x", stimuli=list("abc"))
    with pytest.raises(ValueError, match="stimulus ids"):
        rdm_figure(np.zeros((3, 3)), tmp_path / "x.png", title="x", stimuli=["a", "b"])
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


def test_curves_figure_draws_the_labels_that_hold_each_kind(tmp_path):
    from net2brain_fovex.errors import InputError
    from net2brain_fovex.figures.curves import curves_figure

    curve = np.linspace(1, 0, 11)[None].repeat(3, axis=0)
    curve[1, 4] = np.nan  # one image's step: left out of the mean
    values = {"fovex": {"deletion_curve": curve, "deletion": np.array([0.5, np.nan, 0.4])},
              "gradcam": {"insertion_curve": curve[::-1], "insertion": np.array([0.6, 0.6, 0.7])}}
    path = curves_figure(values, tmp_path / "curves.png")
    assert_png(path, tmp_path)
    with pytest.raises(InputError, match="no deletion or insertion curves to draw"):
        curves_figure({"fovex": {"nss": np.ones(3)}}, tmp_path / "none.png")


def test_overlays_take_the_map_of_each_image_s_id(tmp_path):
    """The stimuli given may be any of the file's, in any order: each gets its own map."""
    from net2brain_fovex.errors import InputError
    from net2brain_fovex.explain.attributions import explain_to_file
    from net2brain_fovex.extraction.stimuli import Stimulus, discover_stimuli
    from net2brain_fovex.figures.overlays import write_overlays
    from net2brain_fovex.models.loading import load_model
    from tests.conftest import factory, write_images

    images = write_images(tmp_path / "images", 3, size=32)
    loaded = load_model(factory("tiny_cnn"), weights="random", image_size=32)
    explain_to_file(loaded, images, tmp_path / "maps.h5", method="gradcam")
    stimuli = discover_stimuli(images)
    folder = tmp_path / "png"
    folder.mkdir()
    (single := tmp_path / "single").mkdir()
    write_overlays(tmp_path / "maps.h5", stimuli[::-1], folder, preprocessing=loaded.preprocessing)
    for stimulus in stimuli:  # the same picture as an overlay drawn for that image alone
        write_overlays(tmp_path / "maps.h5", [stimulus], single, preprocessing=loaded.preprocessing, overwrite=True)
        assert np.array_equal(np.asarray(Image.open(folder / stimulus.id)), np.asarray(Image.open(single / stimulus.id)))
    with pytest.raises(InputError, match=r"maps.h5 holds no map of other.png; draw the overlays of its own stimuli"):
        write_overlays(tmp_path / "maps.h5", [Stimulus("other.png", stimuli[0].path)], folder,
                       preprocessing=loaded.preprocessing, overwrite=True)
