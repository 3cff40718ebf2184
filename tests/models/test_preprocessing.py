"""Preprocessing overrides: crop fraction, interpolation, resize mode (Net2Brain's squash),
against torchvision's transforms written out by hand, through the core and the CLI."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms
from torchvision.transforms import InterpolationMode

from net2brain_fovex.errors import ConfigError, UnknownNameError
from net2brain_fovex.models.loading import load_model
from net2brain_fovex.models.preprocessing import Preprocessing
from tests.conftest import factory, write_images
from tests.extraction.test_activations import reference_outputs

NORMALISE = transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def photo(width=60, height=40, seed=0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize("overrides, by_hand", [
    ({}, [transforms.Resize(256), transforms.CenterCrop(224)]),
    ({"crop_pct": 1.0}, [transforms.Resize(224), transforms.CenterCrop(224)]),  # no crop: the shorter side is 224
    ({"crop_pct": 0.5, "image_size": 32}, [transforms.Resize(64), transforms.CenterCrop(32)]),
    ({"resize_mode": "squash"}, [transforms.Resize((256, 256)), transforms.CenterCrop(224)]),
    ({"resize_mode": "squash", "crop_pct": 1.0, "image_size": 256}, [transforms.Resize((256, 256))]),  # Net2Brain's
    ({"interpolation": "bicubic"}, [transforms.Resize(256, InterpolationMode.BICUBIC), transforms.CenterCrop(224)]),
])
def test_overrides_equal_torchvision_transforms(overrides, by_hand):
    preprocessing = Preprocessing().with_overrides(**overrides)
    image = photo()
    expected = transforms.Compose([*by_hand, transforms.PILToTensor()])(image)
    assert torch.equal(preprocessing.crop_image(image), expected)


def test_a_fixed_height_and_width_is_squashed_to_before_the_crop():
    preprocessing = Preprocessing(resize=(128, 171), resize_mode="squash", crop=112)
    image = photo(90, 70)
    expected = transforms.Compose([transforms.Resize((128, 171)), transforms.CenterCrop(112), transforms.PILToTensor()])
    assert torch.equal(preprocessing.crop_image(image), expected(image))
    assert preprocessing.geometry(90, 70) == (171 / 90, 128 / 70, round((171 - 112) / 2), 8)
    assert Preprocessing(resize=(128, 171), resize_mode="squash", crop=112).with_overrides(image_size=56).resize == (64, 85)


@pytest.mark.parametrize("overrides, error, message", [
    ({"crop_pct": 0}, ConfigError, "`crop_pct` must be between 0 and 1"),
    ({"crop_pct": 1.5}, ConfigError, "`crop_pct` must be between 0 and 1"),
    ({"interpolation": "lanczos"}, UnknownNameError, "unknown interpolation 'lanczos'"),
    ({"resize_mode": "longest"}, UnknownNameError, "unknown resize mode 'longest'"),
])
def test_bad_overrides_are_refused_before_the_model_is_built(overrides, error, message):
    with pytest.raises(error, match=message):
        load_model("no_such_model", weights="random", device="cpu", **overrides)


def test_extract_records_and_applies_the_overrides(net2brain, tmp_path):
    """A factory model at 32 px given 40 px images: with --crop-pct 1 --resize-mode squash nothing is cropped away
    (today's default zooms to 36 and crops back to 32)."""
    folder = write_images(tmp_path / "images", 2, size=40)
    out = tmp_path / "acts.h5"
    result = net2brain("extract", "--model", factory("tiny_cnn"), "--weights", "random", "--stimuli", folder, "--out",
                       out, "--image-size", 32, "--crop-pct", 1.0, "--resize-mode", "squash", "--interpolation",
                       "nearest", "--layers", "head")
    assert result.code == 0, result
    model = load_model(factory("tiny_cnn"), weights="random", device="cpu").module
    pipeline = transforms.Compose([transforms.Resize((32, 32), InterpolationMode.NEAREST), transforms.ToTensor(),
                                   NORMALISE])
    batch = torch.stack([pipeline(Image.open(path).convert("RGB")) for path in sorted(folder.iterdir())])
    expected = reference_outputs(model, batch, ["head"])["head"]
    with h5py.File(out) as file:
        np.testing.assert_allclose(file["layers/head"][()], expected.numpy(), rtol=1e-5, atol=1e-6)
        recorded = file.attrs["preprocessing"]
    assert '"resize_mode": "squash"' in recorded and '"interpolation": "nearest"' in recorded
    assert '"resize": 32' in recorded and '"crop": 32' in recorded


@pytest.mark.parametrize("command", ["extract", "explain", "evaluate"])
def test_the_overrides_are_options_of_every_model_command(net2brain, fovex, command):
    run = net2brain if command == "extract" else fovex
    result = run(command, "--help")
    assert all(flag in result.out for flag in ("--crop-pct", "--interpolation", "--resize-mode")), result.out


def test_normalise_equals_torchvision_bit_for_bit():
    # every uint8 value in every channel (three times each), and a random batch of odd
    # sizes, whose last elements fall in the element-wise kernels' scalar tail
    every_value = torch.arange(256, dtype=torch.uint8).repeat(3, 3, 1).reshape(1, 3, 24, 32)
    random_batch = torch.randint(0, 256, (5, 3, 17, 23), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    for preprocessing in (Preprocessing(), Preprocessing(mean=(0.5, 0.25, 0.1), std=(0.3, 0.7, 1.9))):
        for batch in (every_value, random_batch):
            expected = transforms.Normalize(preprocessing.mean, preprocessing.std)(
                transforms.functional.convert_image_dtype(batch, torch.float32))
            assert torch.equal(preprocessing.normalise(batch).view(torch.int32), expected.view(torch.int32))
