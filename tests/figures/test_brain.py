"""Brain pictures (`brain_figure`) and `searchlight --plot`: the peak in the title is the
planted one (affine @ voxel, computed here literally), the t maps are drawn at the FDR level
of a literal Benjamini-Hochberg, the PNG decodes and is not blank, and the background is the
MNI template only for maps in MNI space."""
from __future__ import annotations

import csv

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from net2brain_fovex.brain.rdm import compute_rdm
from net2brain_fovex.brain.rdm_files import write_rdms
from net2brain_fovex.demo.synthetic import simulate_volumes
from net2brain_fovex.figures.brain import brain_figure, find_peak, in_mni_space
from tests.brain.test_encoding_files import planted  # noqa: F401  (the fixture)

SHAPE = (12, 14, 10)
AFFINE = np.array([[2.0, 0, 0, -12], [0, 2.0, 0, -16], [0, 0, 2.0, -8], [0, 0, 0, 1]])
PLANTED = (7, 5, 6)


def planted_map(code: int):
    rng = np.random.default_rng(3)
    data = np.full(SHAPE, np.nan, dtype=np.float32)
    inside = np.zeros(SHAPE, dtype=bool)
    inside[1:11, 1:13, 1:9] = True
    data[inside] = rng.normal(0, 0.05, int(inside.sum()))
    i, j, k = PLANTED
    data[i - 1:i + 2, j - 1:j + 2, k - 1:k + 2] += 0.5
    data[PLANTED] = 1.0
    image = nib.Nifti1Image(data, AFFINE)
    image.header.set_sform(AFFINE, code)
    return image, nib.Nifti1Image(inside.astype(np.float32), AFFINE)


def literal_mm(voxel):
    return [sum(AFFINE[row, col] * voxel[col] for col in range(3)) + AFFINE[row, 3] for row in range(3)]


def not_blank(path, size):
    picture = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert picture.shape[:2] == size[::-1]
    assert picture.std() > 10 and len(np.unique(picture.reshape(-1, 3), axis=0)) > 50
    return picture


@pytest.mark.parametrize("code, under", [(4, "MNI152"), (2, "fallback")])
def test_peak_title_and_background(tmp_path, code, under):
    image, mask = planted_map(code)
    assert in_mni_space(image) == (code == 4)
    title, peak, drawn = brain_figure(image, tmp_path / "map.png", threshold=0.3, title="s", fallback=mask)
    assert peak.voxel == PLANTED and peak.value == pytest.approx(1.0)
    assert list(peak.mm) == pytest.approx(literal_mm(PLANTED))
    x, y, z = literal_mm(PLANTED)
    assert f"({x:g}, {y:g}, {z:g}) mm" in title and "> 0.3" in title
    assert drawn == under
    not_blank(tmp_path / "map.png", (1400, 400))


def test_a_given_background_is_drawn_for_a_non_mni_map(tmp_path):
    image, mask = planted_map(1)
    other = nib.Nifti1Image(np.random.default_rng(0).random((20, 20, 20)).astype(np.float32), np.diag([3, 3, 3, 1.0]))
    _, _, drawn = brain_figure(image, tmp_path / "a.png", threshold=0.3, title="s", background=other, fallback=mask)
    assert drawn == "background"
    _, _, plain = brain_figure(image, tmp_path / "b.png", threshold=0.3, title="s", fallback=mask)
    # the pictures differ where the backgrounds do
    assert np.abs(not_blank(tmp_path / "a.png", (1400, 400)) - not_blank(tmp_path / "b.png", (1400, 400))).sum() > 0


def test_find_peak_skips_nan_and_takes_the_first_of_ties():
    values = np.array([np.nan, 2.0, 2.0, 1.0])
    voxels = np.array([[0, 0, 0], [1, 2, 3], [3, 2, 1], [0, 1, 0]])
    peak = find_peak(values, voxels, np.eye(4))
    assert peak.voxel == (1, 2, 3) and peak.mm == (1.0, 2.0, 3.0)
    assert find_peak(np.array([np.nan]), voxels[:1], np.eye(4)) is None


# ------------------------------------------------------------------ searchlight --plot


@pytest.fixture(scope="module")
def volumes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("brainpics")
    rng = np.random.default_rng(11)
    rdms = {name: compute_rdm(rng.normal(size=(10, 30)), precision="double") for name in "ab"}
    simulated, affine = simulate_volumes(rdms, {"a": (4, 4, 2)}, shape=(9, 8, 6), radius=4.0, subjects=6, seed=5)
    paths = []
    for number, volume in enumerate(simulated):
        paths.append(folder / f"sub-{number + 1}.nii.gz")
        nib.save(nib.Nifti1Image(volume, affine), paths[-1])
    write_rdms(folder / "model.h5", [f"s{i:02d}" for i in range(10)], rdms, metric="correlation")
    return folder, paths


def run(net2brain, volumes, out, paths, *extra):
    folder, _ = volumes
    betas = [arg for path in paths for arg in ("--betas", path)]
    return net2brain("searchlight", *betas, "--model-rdms", folder / "model.h5", "--radius", 4, "--min-voxels", 3,
                     "--out-dir", out, "--plot", *extra)


def literal_bh(p, q):
    """Benjamini-Hochberg, literally: the largest k with p_(k) <= k q / m; p <= p_(k) pass."""
    finite = sorted(value for value in p if np.isfinite(value))
    m, cut = len(finite), -1.0
    for k, value in enumerate(finite, start=1):
        if value <= k * q / m:
            cut = value
    return np.array([np.isfinite(value) and value <= cut for value in p])


def test_searchlight_plot_group_maps(net2brain, volumes, tmp_path):
    out = tmp_path / "out"
    result = run(net2brain, volumes, out, volumes[1], "--fdr", 0.2, "--threshold", 0.05)
    assert result.code == 0, result
    rows = list(csv.DictReader((out / "summary.csv").open()))
    drawn = {row["map"]: row for row in rows if row["plot"]}
    assert sorted(drawn) == ["group_a_mean.nii.gz", "group_a_t.nii.gz", "group_b_mean.nii.gz", "group_b_t.nii.gz"]
    for name, row in drawn.items():
        assert row["plot"] == name.replace(".nii.gz", ".png")
        not_blank(out / row["plot"], (1400, 400))
        image = nib.load(out / name)
        voxel = (int(row["peak_i"]), int(row["peak_j"]), int(row["peak_k"]))
        data = image.get_fdata()
        assert data[voxel] == pytest.approx(np.nanmax(data)) and float(row["peak_value"]) == pytest.approx(np.nanmax(data))
        assert [float(row[c]) for c in ("peak_x", "peak_y", "peak_z")] == pytest.approx(
            list((image.affine @ np.append(voxel, 1))[:3]))
    assert float(drawn["group_a_mean.nii.gz"]["plot_threshold"]) == 0.05
    t = nib.load(out / "group_a_t.nii.gz").get_fdata()
    p = nib.load(out / "group_a_p.nii.gz").get_fdata()
    passed = literal_bh(p.ravel(), 0.2) & (t.ravel() > 0)
    assert passed.any()  # the planted layer survives
    assert float(drawn["group_a_t.nii.gz"]["plot_threshold"]) == pytest.approx(t.ravel()[passed].min())
    assert not (out / "sub-1_a.png").exists()  # with several subjects only the group maps are drawn


def test_searchlight_plot_one_subject_with_background(net2brain, volumes, tmp_path):
    out = tmp_path / "one"
    background = tmp_path / "bg.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((9, 8, 6), dtype=np.float32), nib.load(volumes[1][0]).affine), background)
    result = run(net2brain, volumes, out, volumes[1][:1], "--background", background)
    assert result.code == 0, result
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert [row["plot"] for row in rows] == ["sub-1_a.png", "sub-1_b.png"]
    assert all(float(row["plot_threshold"]) == 0.1 for row in rows)  # the default --threshold
    not_blank(out / "sub-1_a.png", (1400, 400))


def test_searchlight_without_plot_keeps_its_columns(net2brain, volumes, tmp_path):
    folder, paths = volumes
    result = net2brain("searchlight", "--betas", paths[0], "--model-rdms", folder / "model.h5", "--radius", 4,
                       "--min-voxels", 3, "--out-dir", tmp_path / "plain", "--layers", "a")
    assert result.code == 0, result
    header = (tmp_path / "plain" / "summary.csv").read_text().splitlines()[0].split(",")
    assert "plot" not in header and not list((tmp_path / "plain").glob("*.png"))


# ------------------------------------------------------------------ encode --betas --plot


@pytest.mark.filterwarnings("ignore:.*chose an alpha at an edge:RuntimeWarning")
def test_encode_plot_draws_each_r2_map(net2brain, planted, tmp_path):  # noqa: F811
    folder, betas, _ = planted
    args = ["--activations", folder / "acts.h5", *[a for b in betas for a in ("--betas", b)],
            "--rois", folder / "A.nii.gz", "--device", "cpu", "--layers", "a"]
    result = net2brain("encode", *args, "--out-dir", tmp_path / "enc", "--plot", tmp_path / "profile.png")
    assert result.code == 0, result.err
    rows = [row for row in csv.DictReader((tmp_path / "enc" / "summary.csv").open()) if row["plot"]]
    # each subject's R^2 map, and with several subjects the group's mean r map
    assert sorted(row["plot"] for row in rows) == sorted(
        [f"{b.name.split('.')[0]}_a_r2.png" for b in betas] + ["group_a_mean_r.png"])
    assert {row["subject"] for row in rows if row["plot"] == "group_a_mean_r.png"} == {"group"}
    for row in rows:
        assert row["roi"] == "mask" and float(row["plot_threshold"]) == 0.0
        image = nib.load(tmp_path / "enc" / row["plot"].replace(".png", ".nii.gz"))
        data = image.get_fdata()
        voxel = np.unravel_index(np.nanargmax(data), data.shape)  # literal: the largest R^2, C order
        assert float(row["peak_value"]) == pytest.approx(np.nanmax(data), rel=1e-6)
        assert [float(row[c]) for c in ("peak_x", "peak_y", "peak_z")] == pytest.approx(
            list((image.affine @ np.append(voxel, 1))[:3]))
        not_blank(tmp_path / "enc" / row["plot"], (1400, 400))
    assert (tmp_path / "profile.png").is_file()  # the layer profile, as before


@pytest.mark.filterwarnings("ignore:.*chose an alpha at an edge:RuntimeWarning")
def test_encode_plot_draws_over_the_given_background(net2brain, planted, tmp_path):  # noqa: F811
    folder, betas, _ = planted
    background = tmp_path / "bg.nii.gz"
    shape = nib.load(betas[0]).shape[:3]
    nib.save(nib.Nifti1Image(np.random.default_rng(2).random(shape).astype(np.float32), nib.load(betas[0]).affine),
             background)
    args = ["--activations", folder / "acts.h5", "--betas", betas[0], "--device", "cpu", "--layers", "a"]
    for name, extra in (("plain", []), ("over", ["--background", background])):
        result = net2brain("encode", *args, "--out-dir", tmp_path / name, "--plot", tmp_path / f"{name}.png", *extra)
        assert result.code == 0, result.err
    plain, over = (not_blank(tmp_path / name / "sub-1_a_r2.png", (1400, 400)) for name in ("plain", "over"))
    assert np.abs(plain - over).sum() > 0  # the same map over another image
    assert "sub-1_a_r2.png" in {row["plot"] for row in csv.DictReader((tmp_path / "over" / "summary.csv").open())}
