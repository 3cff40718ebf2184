"""The MIT1003 folder layout as fixations of `fovex evaluate`, and the saliency-benchmark
metrics (sAUC, information gain) and the centre baseline through the command line: a tiny
folder with the data set's names, read by the core and by `fovex evaluate`, whose values
are checked against the core's, with a planted map (the fixation density) that must beat
the centre bias."""
from __future__ import annotations

import csv
import shutil

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

from net2brain_fovex.errors import InputError
from net2brain_fovex.evaluate import gaze
from net2brain_fovex.evaluate.evaluation import Truth, evaluate_maps, read_curves
from net2brain_fovex.evaluate.ground_truth import (
    density_to_input,
    points_to_input,
    read_density_maps,
    read_fixations,
)
from net2brain_fovex.evaluate.registry import METRICS
from net2brain_fovex.explain.attributions import load_images, read_attributions
from net2brain_fovex.extraction.stimuli import discover_stimuli
from net2brain_fovex.models.loading import load_model
from net2brain_fovex.models.preprocessing import Preprocessing
from tests.conftest import factory

NAMES = ["i05june05_static_street_boston_p1010764", "i102423191", "istatic_submitted_alex_tgr"]
SIZE = (48, 36)  # width x height, MIT1003's 4:3 landscape
GAZE = ["nss", "auc_judd", "cc", "kld", "sim", "sauc", "info_gain"]


def points_of(index: int) -> np.ndarray:
    """Distinct fixated pixels (row, col) of image `index`, clustered off centre, in row-major order."""
    rng = np.random.default_rng(index)
    centre = [(10, 34), (25, 12), (18, 24)][index]
    points = {(int(np.clip(round(r), 0, SIZE[1] - 1)), int(np.clip(round(c), 0, SIZE[0] - 1)))
              for r, c in rng.normal(centre, 3, size=(14, 2))}
    return np.array(sorted(points), dtype=np.float64)


def make_mit1003(root, names=NAMES):
    """ALLSTIMULI/<name>.jpeg and ALLFIXATIONMAPS/<name>_fixPts.jpg, <name>_fixMap.jpg, as the data set has them."""
    (root / "ALLSTIMULI").mkdir(parents=True)
    (root / "ALLFIXATIONMAPS").mkdir()
    rng = np.random.default_rng(0)
    for index, name in enumerate(names):
        Image.fromarray(rng.integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8)).save(root / "ALLSTIMULI" / f"{name}.jpeg")
        fixated = np.zeros((SIZE[1], SIZE[0]), dtype=np.uint8)
        points = points_of(index).astype(int)
        fixated[points[:, 0], points[:, 1]] = 255
        Image.fromarray(fixated).save(root / "ALLFIXATIONMAPS" / f"{name}_fixPts.jpg")  # JPEG, as MIT1003's
        density = gaussian_filter(fixated.astype(float), 3)
        Image.fromarray(np.round(density / density.max() * 255).astype(np.uint8)).save(
            root / "ALLFIXATIONMAPS" / f"{name}_fixMap.jpg")
    return root


@pytest.fixture
def mit1003(tmp_path):
    return make_mit1003(tmp_path / "MIT1003")


# ------------------------------------------------------------------ the reader

def test_the_points_come_back_from_jpeg_fixation_maps(mit1003):
    stimuli = discover_stimuli(mit1003 / "ALLSTIMULI")
    for given in (mit1003, mit1003 / "ALLFIXATIONMAPS"):  # the root or its fixation-map folder
        found = read_fixations(given, stimuli)
        assert list(found) == [s.id for s in stimuli]
        for s in stimuli:
            np.testing.assert_array_equal(found[s.id], points_of(NAMES.index(s.id.removesuffix(".jpeg"))))
    # JPEG spreads faint non-zero values around each point: "non-zero" would find far more
    noisy = np.array(Image.open(mit1003 / "ALLFIXATIONMAPS" / f"{NAMES[0]}_fixPts.jpg"))
    assert (noisy > 0).sum() > 3 * len(points_of(0)) and 0 < noisy[noisy < 128].max() < 128


def test_density_maps_are_found_and_carried_onto_the_input(mit1003):
    stimuli = discover_stimuli(mit1003 / "ALLSTIMULI")
    maps = read_density_maps(mit1003, stimuli)
    assert {s: p.name for s, p in maps.items()} == {f"{n}.jpeg": f"{n}_fixMap.jpg" for n in NAMES}
    # no resize (the input is the image's shorter side, cropped): the grey levels of the crop, summing to 1
    same = Preprocessing(resize=36, crop=36)
    grey = np.asarray(Image.open(maps[f"{NAMES[0]}.jpeg"]).convert("L"), dtype=np.float64)[:, 6:42]
    np.testing.assert_allclose(density_to_input(maps[f"{NAMES[0]}.jpeg"], same), grey / grey.sum(), rtol=1e-6)
    # resized: the peak lands where the fixations land
    small = Preprocessing(resize=18, crop=16)
    density = density_to_input(maps[f"{NAMES[1]}.jpeg"], small)
    assert density.shape == (16, 16) and density.sum() == pytest.approx(1) and density.min() >= 0
    peak = np.unravel_index(np.argmax(gaussian_filter(np.asarray(Image.open(maps[f"{NAMES[1]}.jpeg"]), float), 1)),
                            (SIZE[1], SIZE[0]))
    expected = points_to_input(np.array([peak], dtype=float), SIZE, small)[0]
    assert np.abs(np.array(np.unravel_index(np.argmax(density), density.shape)) - expected).max() <= 1.5


def test_other_fixation_inputs_have_no_density_maps(mit1003, tmp_path):
    stimuli = discover_stimuli(mit1003 / "ALLSTIMULI")
    table = tmp_path / "gaze.csv"
    table.write_text(f"image,row,col\n{stimuli[0].id},3,4\n")
    plain = tmp_path / "plain"
    plain.mkdir()
    shutil.copy(mit1003 / "ALLFIXATIONMAPS" / f"{NAMES[0]}_fixPts.jpg", plain)
    assert read_density_maps(table, stimuli) is None and read_density_maps(plain, stimuli) is None
    # a plain folder of JPEG point maps is thresholded too, and stimuli without a map are left out
    found = read_fixations(plain, stimuli)
    assert list(found) == [f"{NAMES[0]}.jpeg"]
    np.testing.assert_array_equal(found[f"{NAMES[0]}.jpeg"], points_of(0))


@pytest.mark.parametrize(("remove", "reader", "named"), [
    ("_fixPts.jpg", read_fixations, "fixation points map"),
    ("_fixMap.jpg", read_density_maps, "fixation density map"),
])
def test_a_stimulus_without_its_map_is_named(mit1003, remove, reader, named):
    (mit1003 / "ALLFIXATIONMAPS" / f"{NAMES[1]}{remove}").unlink()
    stimuli = discover_stimuli(mit1003 / "ALLSTIMULI")
    with pytest.raises(InputError, match=rf"MIT1003 folder {mit1003} has no {named} .*{NAMES[1]}{remove} for "
                                         rf"stimulus {NAMES[1]}.jpeg; ALLFIXATIONMAPS needs <name>_fixPts.jpg"):
        reader(mit1003, stimuli)


@pytest.mark.parametrize(("suffix", "reader"), [("_fixPts.jpg", read_fixations), ("_fixMap.jpg", read_density_maps)])
def test_a_fixation_map_of_another_size_is_refused(mit1003, suffix, reader):
    Image.fromarray(np.zeros((30, 40), dtype=np.uint8)).save(mit1003 / "ALLFIXATIONMAPS" / f"{NAMES[2]}{suffix}")
    with pytest.raises(InputError, match=rf"{NAMES[2]}{suffix} is 40 x 30 px but {NAMES[2]}.jpeg is 48 x 36 px"):
        reader(mit1003, discover_stimuli(mit1003 / "ALLSTIMULI"))


# ------------------------------------------------------------------ through the command line

MODEL = ["--model", factory("tiny_cnn"), "--weights", "random", "--image-size", 32]


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def planted_density_file(source, out, density):
    """An attribution file like `source` whose maps are the fixation density (a planted, perfect map)."""
    shutil.copy(source, out)
    with h5py.File(out, "r+") as file:
        file["maps"][...] = (density / density.max(axis=(1, 2), keepdims=True)).astype(np.float32)
        file.attrs["method"] = "density"


def test_evaluate_with_an_mit1003_folder_and_the_centre_baseline(fovex, mit1003, tmp_path):
    images = mit1003 / "ALLSTIMULI"
    files = {}
    for method in ("centre", "gradcam"):
        files[method] = tmp_path / f"{method}.h5"
        assert fovex("explain", *MODEL, "--images", images, "--out", files[method], "--method", method).code == 0

    # the core's view: points and densities on the 32 px input, the partners of seed 42
    loaded = load_model(factory("tiny_cnn"), weights="random", seed=42, device="cpu", image_size=32)
    stimuli = discover_stimuli(images)
    points = [points_to_input(points_of(NAMES.index(s.id.removesuffix(".jpeg"))), SIZE, loaded.preprocessing)
              for s in stimuli]
    counts, _ = gaze.fixation_counts(points, 32, 32)
    density = torch.from_numpy(np.stack([density_to_input(mit1003 / "ALLFIXATIONMAPS" / f"{s.id[:-5]}_fixMap.jpg",
                                                          loaded.preprocessing) for s in stimuli]))
    partners = gaze.shuffle_partners([True] * 3, seed=42)
    others, _ = gaze.fixation_counts([np.concatenate([points[j] for j in chosen]) for chosen in partners], 32, 32)
    planted_density_file(files["centre"], tmp_path / "density.h5", density.numpy())

    out = tmp_path / "gaze.csv"
    result = fovex("evaluate", *MODEL, "--images", images, "--maps", files["centre"], "--maps", files["gradcam"],
                   "--maps", tmp_path / "density.h5", "--out", out, "--fixations", mit1003, "--metrics", ",".join(GAZE))
    assert result.code == 0, result
    rows = read_rows(out)
    assert list(rows[0]) == ["image", "method", "target", *GAZE]
    written = {(r["image"], r["method"]): r for r in rows}
    black = -torch.tensor(loaded.preprocessing.mean) / torch.tensor(loaded.preprocessing.std)
    batch = load_images(stimuli, loaded)
    for label, path in [("centre", files["centre"]), ("gradcam", files["gradcam"]), ("density", tmp_path / "density.h5")]:
        content = read_attributions(path)
        values, _ = evaluate_maps(loaded.module, batch, torch.from_numpy(content["maps"]),
                                  torch.from_numpy(content["targets"]), black=black, names=GAZE,
                                  truth=Truth(counts=counts, density=density, others=others), seed=42)
        for name in GAZE:
            got = [float(written[(s.id, label)][name]) for s in stimuli]
            np.testing.assert_allclose(got, values[name].numpy(), rtol=1e-9, atol=1e-12, err_msg=f"{label} {name}")

    summary = {(r["method"], r["metric"]): float(r["mean"]) for r in read_rows(tmp_path / "gaze.summary.csv")}
    assert abs(summary[("centre", "info_gain")]) < 1e-5  # the centre bias over itself
    for name in ("nss", "auc_judd", "cc", "sim", "sauc", "info_gain"):  # the planted map beats the centre bias
        assert summary[("density", name)] > summary[("centre", name)], name
    assert summary[("density", "kld")] < summary[("centre", "kld")]
    assert summary[("density", "info_gain")] > 1 and summary[("density", "sauc")] > 0.8
    assert {METRICS[n].better for n in ("sauc", "info_gain")} == {"higher"}
    _, attrs = read_curves(tmp_path / "gaze.curves.h5")
    assert attrs["gaze_density"] == "data set maps" and attrs["gaze_seed"] == 42

    # --gaze-sigma blurs the fixation points instead of reading the data set's densities
    blurred = tmp_path / "blurred.csv"
    result = fovex("evaluate", *MODEL, "--images", images, "--maps", files["centre"], "--out", blurred,
                   "--fixations", mit1003, "--metrics", "cc", "--gaze-sigma", 2)
    assert result.code == 0, result
    expected = gaze.cc(torch.from_numpy(read_attributions(files["centre"])["maps"]), gaze.fixation_density(counts, 2.0))
    np.testing.assert_allclose([float(r["cc"]) for r in read_rows(blurred)], expected.numpy(), rtol=1e-9)
    assert read_curves(tmp_path / "blurred.curves.h5")[1]["gaze_density"] == "blurred fixations"


def test_sauc_does_not_depend_on_the_batches(fovex, mit1003, tmp_path):
    images = mit1003 / "ALLSTIMULI"
    maps = tmp_path / "gradcam.h5"
    assert fovex("explain", *MODEL, "--images", images, "--out", maps, "--method", "gradcam").code == 0
    outputs = []
    for size in (1, 3):
        outputs.append(tmp_path / f"b{size}.csv")
        result = fovex("evaluate", *MODEL, "--images", images, "--maps", maps, "--out", outputs[-1],
                       "--fixations", mit1003, "--metrics", "sauc", "--batch-size", size)
        assert result.code == 0, result
    assert [r["sauc"] for r in read_rows(outputs[0])] == [r["sauc"] for r in read_rows(outputs[1])]
