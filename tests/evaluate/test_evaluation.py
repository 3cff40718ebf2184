"""Evaluating explanations: the new metrics against literal formulas, the ground-truth
readers and their geometry, batched against per-image, and `fovex evaluate` end to end."""
from __future__ import annotations

import csv

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from net2brain_fovex.errors import ConfigError, InputError, UnknownNameError
from net2brain_fovex.evaluate import gaze
from net2brain_fovex.evaluate.complexity import sparseness
from net2brain_fovex.evaluate.evaluation import Truth, choose_metrics, evaluate_maps, read_curves
from net2brain_fovex.evaluate.faithfulness import confidence_change, deletion_insertion
from net2brain_fovex.evaluate.ground_truth import boxes_to_input, points_to_input, read_boxes, read_fixations
from net2brain_fovex.evaluate.localisation import box_regions, energy_in_box, pointing_game
from net2brain_fovex.evaluate.registry import METRICS
from net2brain_fovex.explain.attributions import load_images, read_attributions
from net2brain_fovex.extraction.stimuli import discover_stimuli
from net2brain_fovex.models.loading import load_model
from net2brain_fovex.models.preprocessing import Preprocessing
from tests.conftest import factory, write_images

BLACK = torch.tensor([-2.0, -1.5, -1.8])


def tiny_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 8 * 10, 3)).eval()


def tiny_batch(count=4, seed=1):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(count, 3, 8, 10, generator=generator)
    maps = torch.rand(count, 8, 10, generator=generator)
    return images, maps, torch.arange(count) % 3


# --- the new metrics against literal formulas --------------------------------------

def test_confidence_change_against_a_literal_pixel_space_product():
    model, (images, maps, targets) = tiny_model(), tiny_batch()
    mean, std = torch.tensor([0.4, 0.5, 0.6]), torch.tensor([0.2, 0.25, 0.3])
    black = -mean / std
    result = confidence_change(model, images, maps, targets, black=black, batch=3)
    for b in range(len(images)):
        pixels = images[b] * std[:, None, None] + mean[:, None, None]  # back to [0, 1] colours
        explained = (pixels * maps[b] - mean[:, None, None]) / std[:, None, None]
        with torch.no_grad():
            y = torch.softmax(model(images[b:b + 1]), 1)[0, targets[b]].item()
            o = torch.softmax(model(explained[None]), 1)[0, targets[b]].item()
        assert result["avg_drop"][b].item() == pytest.approx(max(0.0, y - o) / y * 100, rel=1e-4, abs=1e-5)
        assert result["avg_increase"][b].item() == (100.0 if o > y else 0.0)
        assert result["clean"][b].item() == pytest.approx(y, rel=1e-5)


def test_confidence_change_of_a_full_map_keeps_the_score():
    model, (images, maps, targets) = tiny_model(), tiny_batch()
    result = confidence_change(model, images, torch.ones_like(maps), targets, black=BLACK)
    assert torch.allclose(result["avg_drop"], torch.zeros(len(images)), atol=1e-3)
    torch.testing.assert_close(result["explained"], result["clean"])


def test_sparseness_is_the_gini_index_by_mean_absolute_difference():
    _, maps, _ = tiny_batch(3)
    maps[1] = 0.5  # uniform: 0
    maps[2] = 0
    maps[2, 3, 4] = 1  # one pixel: (n - 1) / n
    values = sparseness(maps)
    flat = maps.flatten(1).double().numpy()
    n = flat.shape[1]
    literal = np.abs(flat[0][:, None] - flat[0][None, :]).sum() / (2 * n * n * flat[0].mean())
    assert values[0].item() == pytest.approx(literal, rel=1e-10)
    assert values[1].item() == pytest.approx(0.0, abs=1e-12)
    assert values[2].item() == pytest.approx((n - 1) / n)
    assert torch.isnan(sparseness(torch.zeros(1, 4, 4)))[0]
    with pytest.raises(InputError, match="non-negative"):
        sparseness(-torch.ones(1, 2, 2))


def test_several_boxes_per_image_count_as_their_union():
    regions = box_regions([np.array([[0, 0, 2, 2], [3, 1, 5, 3]]), np.zeros((0, 4))], 4, 6)
    expected = np.zeros((2, 4, 6), dtype=bool)
    expected[0, 0:2, 0:2] = expected[0, 1:3, 3:5] = True
    np.testing.assert_array_equal(regions.numpy(), expected)
    maps = torch.zeros(2, 4, 6)
    maps[0, 2, 4] = 1.0  # inside the second box only
    assert pointing_game(maps, regions)[0] and energy_in_box(maps, regions)[0] == 100
    box = torch.zeros(1, 4, 6)
    box[0, 1:3, 3:5] = 1  # a map equal to the box: EBPG 100 and a hit
    assert energy_in_box(box, torch.tensor([[3, 1, 5, 3]]))[0] == 100 and pointing_game(box, torch.tensor([[3, 1, 5, 3]]))[0]


def test_deletion_substrate_defaults_to_zeros_in_normalised_space():
    model, (images, maps, targets) = tiny_model(), tiny_batch(2)
    default = deletion_insertion(model, images, maps, targets, step=40)
    zeros = deletion_insertion(model, images, maps, targets, substrate=torch.zeros(3), step=40)
    torch.testing.assert_close(default["deletion_curve"], zeros["deletion_curve"])
    with torch.no_grad():
        last = torch.softmax(model(torch.zeros_like(images)), 1).gather(1, targets[:, None])[:, 0]
    torch.testing.assert_close(default["deletion_curve"][:, -1], last)


def test_channels_last_leaves_the_model_as_it_was():
    model, (images, maps, targets) = tiny_model(), tiny_batch(2)
    before = {name: p.clone() for name, p in model.named_parameters()}
    deletion_insertion(model, images, maps, targets, step=40)
    for name, parameter in model.named_parameters():
        assert parameter.is_contiguous() and torch.equal(parameter, before[name])


# --- choosing metrics ----------------------------------------------------------------

def test_choose_metrics_by_ground_truth_and_by_name():
    assert choose_metrics(None, False, False) == ["avg_drop", "avg_increase", "deletion", "insertion", "sparseness"]
    assert choose_metrics(None, True, True) == list(METRICS)
    assert choose_metrics("nss, deletion,nss", False, True) == ["nss", "deletion"]
    with pytest.raises(ConfigError, match="`boxes=boxes.csv`"):
        choose_metrics("ebpg", False, True)
    with pytest.raises(ConfigError, match="`fixations=FILE.csv`"):
        choose_metrics(["cc"], True, False)
    with pytest.raises(UnknownNameError, match="insertion"):
        choose_metrics("insertoin", False, False)


# --- ground truth: readers and geometry --------------------------------------------

def write_csv_rows(path, header, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_geometry_follows_resize_and_centre_crop(tmp_path):
    """A white square drawn into an image lands where the converted box says."""
    preprocessing = Preprocessing(resize=40, crop=32)
    pixels = np.zeros((60, 90, 3), dtype=np.uint8)
    pixels[20:35, 40:55] = 255
    crop = preprocessing.crop_image(Image.fromarray(pixels))[0].numpy() > 127
    box = boxes_to_input(np.array([[40, 20, 55, 35]]), (90, 60), preprocessing)[0]
    rows, cols = np.nonzero(crop)
    assert box[0] <= cols.min() and cols.max() < box[2] and box[1] <= rows.min() and rows.max() < box[3]
    assert box[2] - box[0] <= 12 and box[3] - box[1] <= 12  # 15 px at scale 2/3, plus at most a pixel each side
    point = points_to_input(np.array([[27.0, 47.0]]), (90, 60), preprocessing)[0]  # the square's centre
    np.testing.assert_allclose(point, [rows.mean(), cols.mean()], atol=0.6)


def test_read_boxes_and_its_errors(tmp_path):
    pictures = write_images(tmp_path / "pictures", 2, size=20)
    stimuli = discover_stimuli(pictures)
    boxes = read_boxes(write_csv_rows(tmp_path / "b.csv", ["image", "x0", "y0", "x1", "y1"],
                                      [["img_1.png", 0, 0, 5, 5], ["img_1.png", 10, 10, 20, 20], ["img_2.png", 1, 2, 3, 4]]), stimuli)
    np.testing.assert_array_equal(boxes["img_1.png"], [[0, 0, 5, 5], [10, 10, 20, 20]])
    cases = {
        "outside": ([["img_1.png", 0, 0, 21, 5]], "outside img_1.png"),
        "empty": ([["img_1.png", 5, 0, 5, 5]], "empty"),
        "unknown image": ([["img_9.png", 0, 0, 5, 5]], "img_9.png"),
        "not a number": ([["img_1.png", 0, 0, "five", 5]], "whole number"),
    }
    for name, (rows, message) in cases.items():
        with pytest.raises(InputError, match=message):
            read_boxes(write_csv_rows(tmp_path / f"{name}.csv", ["image", "x0", "y0", "x1", "y1"], rows), stimuli)
    with pytest.raises(InputError, match="lacks the column"):
        read_boxes(write_csv_rows(tmp_path / "c.csv", ["image", "x0", "y0", "x1"], [["img_1.png", 0, 0, 5]]), stimuli)
    with pytest.raises(InputError, match="does not exist"):
        read_boxes(tmp_path / "missing.csv", stimuli)


def test_read_fixations_from_a_csv_and_from_mit1003_style_maps(tmp_path):
    pictures = write_images(tmp_path / "pictures", 2, size=20)
    stimuli = discover_stimuli(pictures)
    points = read_fixations(write_csv_rows(tmp_path / "f.csv", ["image", "row", "col", "subject"],
                                           [["img_1.png", 3, 4, "s1"], ["img_1.png", 3.4, 4, "s2"]]), stimuli)
    np.testing.assert_array_equal(points["img_1.png"], [[3, 4], [3.4, 4]])
    with pytest.raises(InputError, match="outside img_2.png"):
        read_fixations(write_csv_rows(tmp_path / "g.csv", ["image", "row", "col"], [["img_2.png", 20, 0]]), stimuli)
    folder = tmp_path / "maps"
    folder.mkdir()
    fixated = np.zeros((20, 20), dtype=np.uint8)
    fixated[2, 5] = fixated[11, 7] = 255
    Image.fromarray(fixated).save(folder / "img_1_fixPts.png")
    found = read_fixations(folder, stimuli)
    assert list(found) == ["img_1.png"]
    np.testing.assert_array_equal(found["img_1.png"], [[2, 5], [11, 7]])
    Image.fromarray(np.zeros((10, 20), dtype=np.uint8)).save(folder / "img_2.png")
    with pytest.raises(InputError, match="must have its image's size"):
        read_fixations(folder, stimuli)


# --- evaluate_maps: batched equals per image ------------------------------------------

def test_evaluate_maps_batched_equals_one_image_at_a_time():
    model, (images, maps, targets) = tiny_model(), tiny_batch(5)
    regions = box_regions([np.array([[1, 1, 5, 4]])] * 5, 8, 10)
    counts, _ = gaze.fixation_counts([np.array([[2.0, 3.0], [5.0, 7.0]])] * 5, 8, 10)
    others, _ = gaze.fixation_counts([np.array([[1.0, 1.0], [4.0, 6.0], [6.0, 2.0], [2.0, 3.0]])] * 5, 8, 10)
    truth = Truth(regions, counts, gaze.fixation_density(counts, 1.5), others)
    batched, curves = evaluate_maps(model, images, maps, targets, black=BLACK, names=list(METRICS), truth=truth, step=9)
    for b in range(5):
        one = Truth(regions[b:b + 1], counts[b:b + 1], truth.density[b:b + 1], others[b:b + 1])
        single, single_curves = evaluate_maps(model, images[b:b + 1], maps[b:b + 1], targets[b:b + 1], black=BLACK,
                                              names=list(METRICS), truth=one, step=9)
        for name in METRICS:
            torch.testing.assert_close(batched[name][b:b + 1], single[name], rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(curves["deletion_curve"][b:b + 1], single_curves["deletion_curve"])


def test_a_box_outside_the_crop_gives_no_localisation_value():
    model, (images, maps, targets) = tiny_model(), tiny_batch(2)
    regions = box_regions([np.array([[1, 1, 5, 4]]), np.zeros((0, 4))], 8, 10)
    values, _ = evaluate_maps(model, images, maps, targets, black=BLACK, names=["ebpg", "pointing_game"],
                              truth=Truth(regions=regions))
    assert np.isfinite(values["ebpg"][0].item()) and np.isnan(values["ebpg"][1].item())
    assert np.isnan(values["pointing_game"][1].item())


# --- fovex evaluate through the command line ----------------------------------------

@pytest.fixture
def scene(tmp_path, fovex):
    """Five images, two attribution files (gradcam and random CAM), boxes and fixations."""
    pictures = write_images(tmp_path / "pictures", 5, size=36)
    model = ["--model", factory("tiny_cnn"), "--weights", "random", "--image-size", 32]
    files = {}
    for method in ("gradcam", "random"):
        files[method] = tmp_path / f"{method}.h5"
        result = fovex("explain", *model, "--images", pictures, "--out", files[method], "--method", method)
        assert result.code == 0, result
    boxes = write_csv_rows(tmp_path / "boxes.csv", ["image", "x0", "y0", "x1", "y1"],
                           [[f"img_{i}.png", 4, 6, 20, 24] for i in range(1, 6)])
    fixations = write_csv_rows(tmp_path / "gaze.csv", ["image", "row", "col"],
                               [[f"img_{i}.png", r, c] for i in range(1, 6) for r, c in ((10, 12), (15, 15), (30, 5))])
    return {"pictures": pictures, "model": model, "files": files, "boxes": boxes, "fixations": fixations, "tmp": tmp_path}


def evaluate_args(scene, out, *extra):
    return ["evaluate", *scene["model"], "--images", scene["pictures"], "--maps", scene["files"]["gradcam"],
            "--maps", scene["files"]["random"], "--out", out, "--boxes", scene["boxes"], "--fixations", scene["fixations"],
            "--step", 64, *extra]


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_evaluate_writes_the_tables_curves_and_plot_with_the_core_values(fovex, scene):
    out, plot = scene["tmp"] / "metrics.csv", scene["tmp"] / "curves.png"
    result = fovex(*evaluate_args(scene, out, "--plot", plot))
    assert result.code == 0, result
    rows = read_rows(out)
    assert [(r["image"], r["method"]) for r in rows[:3]] == [("img_1.png", "gradcam"), ("img_1.png", "random"), ("img_2.png", "gradcam")]
    assert len(rows) == 10 and list(rows[0]) == ["image", "method", "target", *METRICS]
    summary = read_rows(scene["tmp"] / "metrics.summary.csv")
    assert len(summary) == 2 * len(METRICS)
    assert {r["metric"]: r["better"] for r in summary} == {name: m.better for name, m in METRICS.items()}
    assert "explanation metrics" in result.err and "gradcam" in result.err
    assert plot.stat().st_size > 0 and (scene["tmp"] / "metrics.config.yaml").exists()

    # the same numbers from the core, on the same model, images and ground truth
    loaded = load_model(factory("tiny_cnn"), weights="random", seed=42, device="cpu", image_size=32)
    stimuli = discover_stimuli(scene["pictures"])
    images = load_images(stimuli, loaded)
    content = read_attributions(scene["files"]["gradcam"])
    sizes = [Image.open(s.path).size for s in stimuli]
    regions = box_regions([boxes_to_input(np.array([[4, 6, 20, 24]]), size, loaded.preprocessing) for size in sizes], 32, 32)
    points = [points_to_input(np.array([[10.0, 12], [15, 15], [30, 5]]), size, loaded.preprocessing) for size in sizes]
    counts, _ = gaze.fixation_counts(points, 32, 32)
    partners = gaze.shuffle_partners([True] * 5, seed=42)  # the command's seed: 4 partners each, all the others
    others, _ = gaze.fixation_counts([np.concatenate([points[j] for j in chosen]) for chosen in partners], 32, 32)
    truth = Truth(regions, counts, gaze.fixation_density(counts, 1.0), others)
    black = -torch.tensor(loaded.preprocessing.mean) / torch.tensor(loaded.preprocessing.std)
    values, curves = evaluate_maps(loaded.module, images, torch.from_numpy(content["maps"]),
                                   torch.from_numpy(content["targets"]), black=black, names=list(METRICS), truth=truth,
                                   step=64, seed=42)
    for name in METRICS:
        written = np.array([float(r[name]) if r[name] else np.nan for r in rows if r["method"] == "gradcam"])
        np.testing.assert_allclose(written, values[name].numpy(), rtol=1e-6, atol=1e-9, err_msg=name)
        finite = values[name].numpy()[np.isfinite(values[name].numpy())]
        mean = next(float(r["mean"]) for r in summary if r["method"] == "gradcam" and r["metric"] == name)
        assert mean == pytest.approx(finite.mean(), rel=1e-9)
    stored, attrs = read_curves(scene["tmp"] / "metrics.curves.h5")
    np.testing.assert_allclose(stored["gradcam"]["deletion_curve"], curves["deletion_curve"].numpy(), rtol=1e-6)
    assert stored["gradcam"]["deletion_curve"].shape == (5, 17)  # 1024 pixels in steps of 64, plus the start


def test_evaluate_in_bf16_stays_within_its_tolerance_of_fp32(fovex, scene):
    full, half = scene["tmp"] / "fp32.csv", scene["tmp"] / "bf16.csv"
    metrics = ["--metrics", "avg_drop,deletion,insertion"]
    assert fovex(*evaluate_args(scene, full, *metrics)).code == 0
    result = fovex(*evaluate_args(scene, half, *metrics, "--precision", "bf16"))
    assert result.code == 0, result
    for a, b in zip(read_rows(full), read_rows(half), strict=True):
        for name in ("deletion", "insertion"):
            assert abs(float(a[name]) - float(b[name])) < 0.01  # README: at most 0.006 on the demo task
        assert abs(float(a["avg_drop"]) - float(b["avg_drop"])) < 2
    _, attrs = read_curves(scene["tmp"] / "bf16.curves.h5")
    assert attrs["precision"] == "bf16"


def test_evaluate_defaults_to_the_metrics_the_ground_truth_allows(fovex, scene):
    out = scene["tmp"] / "m.csv"
    result = fovex("evaluate", *scene["model"], "--images", scene["pictures"], "--maps", scene["files"]["gradcam"],
                   "--out", out, "--step", 128)
    assert result.code == 0, result
    assert list(read_rows(out)[0])[3:] == ["avg_drop", "avg_increase", "deletion", "insertion", "sparseness"]


def test_evaluate_resumes_an_interrupted_run_to_the_same_values(fovex, scene):
    first, second = scene["tmp"] / "a.csv", scene["tmp"] / "b.csv"
    assert fovex(*evaluate_args(scene, first, "--batch-size", 2)).code == 0
    args = evaluate_args(scene, second, "--batch-size", 2)
    assert fovex(*args).code == 0
    # simulate a kill after the first batch: a partial curves file, no CSVs
    partial = scene["tmp"] / "b.curves.h5.partial"
    (scene["tmp"] / "b.curves.h5").rename(partial)
    for name in ("b.csv", "b.summary.csv"):
        (scene["tmp"] / name).unlink()
    with h5py.File(partial, "r+") as file:
        file.create_dataset("_rows_done", data=2)
        file["gradcam/deletion"][2:] = -1
    refused = fovex(*args)
    assert refused.code == 2 and "--resume" in refused.err
    assert fovex(*args, "--resume").code == 0
    assert read_rows(first) == read_rows(second)


@pytest.mark.parametrize("case, message", [
    ("missing ids", "lacks maps for img_6.png"),
    ("maps of the wrong size", "32 x 32"),
    ("NaN maps", "NaN"),
    ("unknown metric", "unknown metric"),
    ("box outside the image", "outside img_1.png"),
    ("ebpg without boxes", "--boxes"),
    ("not an attribution file", "expected attributions"),
])
def test_evaluate_refuses_bad_input_with_exit_2(fovex, scene, case, message):
    tmp = scene["tmp"]
    args = evaluate_args(scene, tmp / "bad.csv")
    if case == "missing ids":
        (scene["pictures"] / "img_5.png").rename(scene["pictures"] / "img_6.png")
    elif case == "maps of the wrong size":
        args[args.index("--image-size") + 1] = 24
    elif case == "NaN maps":
        with h5py.File(scene["files"]["random"], "r+") as file:
            file["maps"][1, 3, 3] = np.nan
    elif case == "unknown metric":
        args += ["--metrics", "deletion,insertoin"]
    elif case == "box outside the image":
        write_csv_rows(scene["boxes"], ["image", "x0", "y0", "x1", "y1"], [["img_1.png", 0, 0, 99, 5]])
    elif case == "ebpg without boxes":
        position = args.index("--boxes")
        del args[position:position + 2]
        args += ["--metrics", "ebpg"]
    elif case == "not an attribution file":
        with h5py.File(scene["files"]["random"], "r+") as file:
            file.attrs["kind"] = "activations"
    result = fovex(*args)
    assert result.code == 2, result
    assert message in result.err and len(result.err.strip().splitlines()) == 1
    assert not any(p.name.startswith("bad.") for p in tmp.iterdir())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gives_the_cpu_values():
    model, (images, maps, targets) = tiny_model(), tiny_batch(5)
    regions = box_regions([np.array([[1, 1, 5, 4]])] * 5, 8, 10)
    counts, _ = gaze.fixation_counts([np.array([[2.0, 3.0], [5.0, 7.0]])] * 5, 8, 10)
    others, _ = gaze.fixation_counts([np.array([[1.0, 1.0], [4.0, 6.0], [6.0, 2.0]])] * 5, 8, 10)
    truth = Truth(regions, counts, gaze.fixation_density(counts, 1.5), others)
    on_cpu, curves_cpu = evaluate_maps(model, images, maps, targets, black=BLACK, names=list(METRICS), truth=truth, step=9)
    cuda_truth = Truth(regions.cuda(), counts.cuda(), truth.density.cuda(), others.cuda())
    on_gpu, curves_gpu = evaluate_maps(model.cuda(), images.cuda(), maps.cuda(), targets.cuda(), black=BLACK.cuda(),
                                       names=list(METRICS), truth=cuda_truth, step=9)
    for name in METRICS:
        torch.testing.assert_close(on_gpu[name], on_cpu[name], rtol=1e-4, atol=1e-5, equal_nan=True)
    torch.testing.assert_close(curves_gpu["insertion_curve"], curves_cpu["insertion_curve"], rtol=1e-4, atol=1e-5)


def test_evaluate_json_summary_on_stdout(fovex, scene):
    import json

    out = scene["tmp"] / "j.csv"
    result = fovex(*evaluate_args(scene, out, "--metrics", "deletion,ebpg,nss", "--json"))
    assert result.code == 0, result
    document = json.loads(result.out)
    assert {(r["method"], r["metric"]) for r in document["summary"]} == {
        (m, n) for m in ("gradcam", "random") for n in ("deletion", "ebpg", "nss")}
    assert document["files"]["summary"] == str(scene["tmp"] / "j.summary.csv")
    assert "explanation metrics" not in result.err  # the table is replaced, not added
