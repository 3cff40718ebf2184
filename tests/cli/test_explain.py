"""`fovex explain` through the command line, and `fovex demo`."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from net2brain_fovex.explain.attributions import load_images, read_attributions
from net2brain_fovex.explain.base import Context
from net2brain_fovex.explain.methods.fovex import fovex as fovex_maps
from net2brain_fovex.explain.registry import FovExParameters
from net2brain_fovex.extraction.stimuli import discover_stimuli
from net2brain_fovex.models.loading import load_model
from tests.conftest import factory, write_images

FAST = ["--scanpath-length", 2, "--optimization-steps", 3, "--blur-filter-size", 5, "--blur-sigma", 2]


@pytest.fixture
def pictures(tmp_path):
    return write_images(tmp_path / "pictures", 5, size=36)


def base_args(pictures, out, model="tiny_cnn"):
    return ["explain", "--model", factory(model), "--weights", "random", "--images", pictures, "--out", out,
            "--image-size", 32, "--batch-size", 2]


def test_fovex_file_layout_and_values(fovex, tmp_path, pictures):
    out, overlays = tmp_path / "maps.h5", tmp_path / "png"
    result = fovex(*base_args(pictures, out), *FAST, "--png-dir", overlays)
    assert result.code == 0, result
    content = read_attributions(out)
    assert content["stimuli"] == [f"img_{i}.png" for i in range(1, 6)]
    assert content["maps"].shape == (5, 32, 32) and content["maps"].dtype == np.float32
    assert content["fixations"].shape == (5, 2, 2)
    assert content["attrs"]["method"] == "fovex" and '"scanpath_length": 2' in content["attrs"]["parameters"]
    loaded = load_model(factory("tiny_cnn"), weights="random", seed=42, device="cpu", image_size=32)
    images = load_images(discover_stimuli(pictures), loaded)
    probabilities = torch.softmax(loaded.module(images), dim=1)
    np.testing.assert_array_equal(content["targets"], probabilities.argmax(1).numpy())
    np.testing.assert_allclose(content["scores"], probabilities.max(1).values.detach().numpy(), rtol=1e-5)
    direct = fovex_maps(loaded.module, images, probabilities.argmax(1), Context(black=torch.zeros(3), seed=42),
                        parameters=FovExParameters(scanpath_length=2, optimization_steps=3, blur_filter_size=5, blur_sigma=2.0))
    np.testing.assert_allclose(content["maps"], direct.maps.numpy(), atol=1e-5)
    assert sorted(p.name for p in overlays.iterdir()) == [f"img_{i}.png" for i in range(1, 6)]


def test_fovex_converge_and_precision_through_the_cli(fovex, tmp_path, pictures):
    out = tmp_path / "maps.h5"
    fast = ["--scanpath-length", 2, "--optimization-steps", 6, "--blur-filter-size", 5, "--blur-sigma", 2]
    result = fovex(*base_args(pictures, out), *fast, "--converge", 2, "--converge-ratio", 0.5, "--precision", "bf16")
    assert result.code == 0, result
    content = read_attributions(out)
    for recorded in ('"converge": 2', '"converge_ratio": 0.5', '"precision": "bf16"'):
        assert recorded in content["attrs"]["parameters"]
    loaded = load_model(factory("tiny_cnn"), weights="random", seed=42, device="cpu", image_size=32)
    images = load_images(discover_stimuli(pictures), loaded)
    targets = torch.softmax(loaded.module(images), dim=1).argmax(1)
    settings = FovExParameters(scanpath_length=2, optimization_steps=6, blur_filter_size=5, blur_sigma=2.0, converge=2,
                               converge_ratio=0.5, precision="bf16")
    direct = [fovex_maps(loaded.module, images[s:s + 2], targets[s:s + 2], Context(black=torch.zeros(3), seed=42),
                         parameters=settings) for s in range(0, 5, 2)]
    np.testing.assert_array_equal(content["fixations"], torch.cat([d.fixations for d in direct]).numpy())


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "rise", "random"])
def test_baselines_through_the_cli(fovex, tmp_path, pictures, method):
    extra = ["--masks", 50] if method == "rise" else []
    result = fovex(*base_args(pictures, tmp_path / "m.h5"), "--method", method, "--target", 3, *extra)
    assert result.code == 0, result
    content = read_attributions(tmp_path / "m.h5")
    assert (content["targets"] == 3).all() and "fixations" not in content
    assert content["maps"].min() >= 0 and content["maps"].max() <= 1
    if method != "rise":
        assert '"layer": "features"' in content["attrs"]["parameters"]  # the default layer, recorded


def test_vision_transformer_through_the_cli(fovex, tmp_path, pictures):
    result = fovex(*base_args(pictures, tmp_path / "vit.h5", "tiny_vit"), *FAST)
    assert result.code == 0, result
    result = fovex(*base_args(pictures, tmp_path / "vitcam.h5", "tiny_vit"), "--method", "gradcam")
    assert result.code == 0, result


def test_resume_gives_the_same_file(fovex, tmp_path, pictures):
    reference = tmp_path / "reference.h5"
    assert fovex(*base_args(pictures, reference), *FAST).code == 0
    out = tmp_path / "resumed.h5"
    assert fovex(*base_args(pictures, out), *FAST).code == 0
    # a partial file as a kill after the first batch leaves it: the same file cut back to 2 rows done
    import shutil

    partial = tmp_path / "resumed.h5.partial"
    shutil.copy(out, partial)
    out.unlink()
    with h5py.File(partial, "r+") as file:
        file.create_dataset("_rows_done", data=2)
        signature = file.attrs["signature"] if "signature" in file.attrs else None
    assert signature is not None
    result = fovex(*base_args(pictures, out), *FAST, "--resume")
    assert result.code == 0, result
    assert "resuming" in result.err and "at image 3 of 5" in result.err
    a, b = read_attributions(reference), read_attributions(out)
    for name in ("maps", "targets", "scores", "fixations"):
        np.testing.assert_array_equal(a[name], b[name])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "lime"], "Invalid value for '--method'"),
        (["--target", 9], "--target 9 is out of range: the model has 5 classes (0-4)"),
        (["--target", "best"], "--target 'best' is neither pred nor a class index"),
        (["--method", "gradcam", "--layer", "features.9"], "unknown layer 'features.9'"),
        (["--method", "gradcam", "--layer", "head"], "head"),
        (["--masks", 10], "--masks applies to --method rise, not fovex"),
        (["--lr", -1], "invalid FovEx parameter --lr"),
    ],
)
def test_bad_input_exits_2(fovex, tmp_path, pictures, extra, message):
    out = tmp_path / "out.h5"
    fovex_options = FAST if "--method" not in extra and "--masks" not in extra else []
    result = fovex(*base_args(pictures, out), *fovex_options, *extra)
    assert result.code == 2, result
    assert message in " ".join(result.err.split()) and "Traceback" not in result.err
    assert not out.exists() and not (tmp_path / "out.h5.partial").exists()


def test_non_image_file_exits_2(fovex, tmp_path, pictures):
    (pictures / "img_3.png").write_text("not an image")
    result = fovex(*base_args(pictures, tmp_path / "out.h5"), *FAST)
    assert result.code == 2 and "cannot decode image" in result.err
    assert not (tmp_path / "out.h5").exists()


def test_demo(fovex, tmp_path):
    result = fovex("demo", "--out", tmp_path / "demo", "--device", "cpu")
    assert result.code == 0, result
    assert "fovex" in result.out and "gradcam" in result.out and "rise" in result.out
    import re

    rates = dict(re.findall(r"^  (\w+) .*map peaks inside the object's box in (\d+)%", result.out, flags=re.M))
    assert set(rates) == {"fovex", "gradcam", "rise"} and int(rates["fovex"]) >= 60
    assert len(list((tmp_path / "demo" / "overlays" / "fovex").glob("*.png"))) == 8
    # the evaluation of the three methods, gaze metrics against synthetic fixations
    assert "SYNTHETIC fixations" in result.out
    table = dict(re.findall(r"^    (\w+) +(?:lower|higher) +(.+)$", result.out, flags=re.M))
    from net2brain_fovex.evaluate.registry import METRICS

    assert set(table) == set(METRICS)  # every metric: the demo has boxes and (synthetic) fixations
    assert all(row.count("*") >= 1 for row in table.values())  # exact ties star each best
    summary = (tmp_path / "demo" / "metrics.summary.csv").read_text().splitlines()
    assert len(summary) == 1 + 3 * len(METRICS) and summary[0] == "method,metric,mean,sem,n,better"
    assert (tmp_path / "demo" / "curves.png").stat().st_size > 0
