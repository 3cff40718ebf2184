"""Video networks fed natively: clips built with the documented sampling and transforms,
averaged over clips and time or kept, images repeated into a clip, and the options of one
kind of model refused for the other."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from torchvision import transforms

from net2brain_fovex.errors import ConfigError
from net2brain_fovex.extraction.stimuli import video_clip_indices
from net2brain_fovex.models.loading import load_model
from tests.conftest import factory, write_images
from tests.extraction.test_activations import decoded_frames, reference_outputs, write_video

KINETICS = ((0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989))
# r3d_18's preset resizes uint8 frames to exactly 128 x 171 without antialiasing and crops 112; at a 32 px crop the
# resize keeps that fraction
BY_HAND = transforms.Compose([transforms.PILToTensor(), transforms.Resize((36, 48), antialias=False),
                              transforms.CenterCrop(32), transforms.ConvertImageDtype(torch.float32),
                              transforms.Normalize(*KINETICS)])


def test_clip_indices_cut_the_video_into_equal_segments():
    np.testing.assert_array_equal(video_clip_indices(10, 4, 2), [[0, 1, 3, 4], [5, 6, 8, 9]])
    np.testing.assert_array_equal(video_clip_indices(16, 16, 1), [list(range(16))])
    assert video_clip_indices(100, 8, 3).shape == (3, 8)
    assert np.all(np.diff(video_clip_indices(37, 5, 3).ravel()) > 0)  # distinct and in time order
    with pytest.raises(ValueError, match="2 clip.*of 4 frames need 8 frames"):
        video_clip_indices(7, 4, 2)


@pytest.fixture
def videos(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    write_video(folder / "a.mp4", 10)
    write_video(folder / "b.mp4", 12)
    return folder


def clips_by_hand(path, frames: int, clips: int) -> torch.Tensor:
    """(clips, 3, frames, H, W) as torchvision's video models take them."""
    decoded = decoded_frames(path)
    length = len(decoded) // clips  # equal segments (the videos here divide evenly)
    assert length * clips == len(decoded)
    chosen = [np.rint(np.linspace(k * length, (k + 1) * length - 1, frames)).astype(int) for k in range(clips)]
    return torch.stack([torch.stack([BY_HAND(decoded[i]) for i in indices], dim=1) for indices in chosen])


@pytest.mark.parametrize("per_clip", [False, True])
def test_a_video_model_gets_clips_as_documented(net2brain, tmp_path, videos, per_clip):
    out = tmp_path / "r3d.h5"
    args = ["--per-clip"] if per_clip else []
    result = net2brain("extract", "--model", "r3d_18", "--weights", "random", "--stimuli", videos, "--out", out,
                       "--image-size", 32, "--frames", 4, "--clips", 2, "--layers", "layer1,fc", "--batch-size", 1,
                       *args)
    assert result.code == 0, result
    model = load_model("r3d_18", weights="random", device="cpu").module
    with h5py.File(out) as file:
        assert file.attrs["input"] == "video" and file.attrs["task"] == "video" and file.attrs["clips"] == 2
        for row, name in enumerate(["a.mp4", "b.mp4"]):
            expected = reference_outputs(model, clips_by_hand(videos / name, 4, 2), ["layer1", "fc"])
            layer1 = expected["layer1"].mean(dim=2)  # time averaged (--time mean)
            if per_clip:
                assert file["layers/layer1"].shape == (2, 2, *layer1.shape[1:])
                np.testing.assert_allclose(file["layers/layer1"][row], layer1.numpy(), rtol=1e-4, atol=1e-5)
                np.testing.assert_allclose(file["layers/fc"][row], expected["fc"].numpy(), rtol=1e-4, atol=1e-5)
            else:
                np.testing.assert_allclose(file["layers/layer1"][row], layer1.mean(0).numpy(), rtol=1e-4, atol=1e-5)
                np.testing.assert_allclose(file["layers/fc"][row], expected["fc"].mean(0).numpy(), rtol=1e-4, atol=1e-5)


def test_time_all_keeps_the_time_axis_and_an_image_is_repeated_into_a_clip(net2brain, tmp_path):
    folder = write_images(tmp_path / "images", 2, size=40)
    out = tmp_path / "r3d.h5"
    result = net2brain("extract", "--model", "r3d_18", "--weights", "random", "--stimuli", folder, "--out", out,
                       "--image-size", 32, "--frames", 4, "--layers", "layer1", "--time", "all")
    assert result.code == 0, result
    model = load_model("r3d_18", weights="random", device="cpu").module
    from PIL import Image

    image = Image.open(sorted(folder.iterdir())[0]).convert("RGB")
    clip = BY_HAND(image).unsqueeze(1).expand(-1, 4, -1, -1).unsqueeze(0)  # the image as 4 identical frames
    expected = reference_outputs(model, clip, ["layer1"])["layer1"][0]
    with h5py.File(out) as file:
        assert file["layers/layer1"].shape[1:] == expected.shape  # (channels, time, height, width)
        np.testing.assert_allclose(file["layers/layer1"][0], expected.numpy(), rtol=1e-4, atol=1e-5)


def test_frames_default_to_the_models_clip_length(tmp_path, videos):
    from net2brain_fovex.extraction.activations import plan_extraction

    loaded = load_model("r3d_18", weights="random", device="cpu", image_size=32)
    assert loaded.is_video and loaded.clip_frames == 16
    assert plan_extraction(loaded, "fc").frames == 16
    image_model = load_model(factory("tiny_cnn"), weights="random", device="cpu", image_size=32)
    assert plan_extraction(image_model, "head").frames == 8
    with pytest.raises(ConfigError, match="`clips` applies to video models"):
        plan_extraction(image_model, "head", clips=2)
    with pytest.raises(ConfigError, match="video model: it sees clips, not frames"):
        plan_extraction(loaded, "fc", per_frame=True)


@pytest.mark.parametrize("args, message", [
    (["--frames", 8, "--clips", 2], "has 10 frames, but 2 clip(s) of 8 frames need 16 frames; lower --frames or --clips"),
    (["--per-frame"], "is a video model: it sees clips, not frames; use --per-clip"),
    (["--time", "sometimes"], "sometimes"),
    (["--clips", 0], "--clips"),
])
def test_video_options_refused(net2brain, tmp_path, videos, args, message):
    out = tmp_path / "r3d.h5"
    result = net2brain("extract", "--model", "r3d_18", "--weights", "random", "--stimuli", videos, "--out", out,
                       "--image-size", 32, "--layers", "fc", *args)
    assert result.code == 2 and message in result.err, result
    assert len(result.err.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob("r3d*"))


def test_video_options_refused_for_an_image_model(net2brain, tmp_path, videos):
    out = tmp_path / "x.h5"
    result = net2brain("extract", "--model", factory("tiny_cnn"), "--weights", "random", "--stimuli", videos,
                       "--out", out, "--image-size", 32, "--per-clip")
    assert result.code == 2 and "--per-clip applies to video models" in result.err, result
    assert not out.exists()
