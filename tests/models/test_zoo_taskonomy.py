"""The taskonomy source: the 25 Taskonomy encoders of visualpriors, their released weight
files in the torch hub cache, the colorization encoder's lightness input."""
from __future__ import annotations

import math
import re

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from net2brain_fovex.errors import UnknownNameError, WeightsError
from net2brain_fovex.extraction.activations import extract_to_file
from net2brain_fovex.extraction.stimuli import discover_stimuli, load_image
from net2brain_fovex.models.layers import run_layers
from net2brain_fovex.models.loading import load_model
from net2brain_fovex.models.preprocessing import Preprocessing
from net2brain_fovex.models.registry import TASKS
from net2brain_fovex.models.sources import find_source, list_models
from net2brain_fovex.models.zoo import taskonomy

# visualpriors' VisualPrior.viable_feature_tasks
VIABLE_TASKS = [
    "autoencoding", "colorization", "curvature", "denoising", "edge_texture", "edge_occlusion", "egomotion",
    "fixated_pose", "jigsaw", "keypoints2d", "keypoints3d", "nonfixated_pose", "point_matching", "reshading",
    "depth_zbuffer", "depth_euclidean", "normal", "room_layout", "segment_unsup25d", "segment_unsup2d",
    "segment_semantic", "class_object", "class_scene", "inpainting", "vanishing_point",
]
TOP = ["layer1", "layer2", "layer3", "layer4", "groupnorm"]


def randomised_state(module: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """The module's state with every batch norm's affine parameters and running statistics
    drawn at random (seeded), so that no normalisation is an identity."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in module.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = value.clone()
        elif value.ndim == 1:
            uniform = torch.rand(value.shape, generator=generator)
            state[key] = {"weight": 0.5 + 0.5 * uniform, "running_var": 0.5 + uniform,
                          "bias": 0.1 * (uniform - 0.5), "running_mean": 0.2 * (uniform - 0.5)}[key.rsplit(".", 1)[1]]
        else:
            state[key] = torch.randn(value.shape, generator=generator) * math.sqrt(2 / value[0].numel())
    return state


def reference_forward(state: dict[str, torch.Tensor], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """visualpriors' `TaskonomyEncoder.forward` written out literally with torch.nn.functional
    on a state dict: the outputs of the four stages and of the GroupNorm."""
    def bn(h, prefix):
        return F.batch_norm(h, state[f"{prefix}.running_mean"], state[f"{prefix}.running_var"],
                            state[f"{prefix}.weight"], state[f"{prefix}.bias"], training=False, eps=1e-5)

    outputs = {}
    h = F.pad(x, (3, 3, 3, 3), mode="constant", value=0)
    h = F.relu(bn(F.conv2d(h, state["conv1.weight"], stride=2), "bn1"))
    h = F.max_pool2d(h, kernel_size=3, stride=2, padding=0, ceil_mode=True)
    for stage, (blocks, stride) in enumerate([(3, 2), (4, 2), (6, 1), (3, 1)], start=1):
        for index in range(blocks):
            p = f"layer{stage}.{index}"
            step = stride if index == blocks - 1 else 1
            out = F.relu(bn(F.conv2d(h, state[f"{p}.conv1.weight"]), f"{p}.bn1"))
            out = F.relu(bn(F.conv2d(out, state[f"{p}.conv2.weight"], stride=step, padding=1), f"{p}.bn2"))
            out = bn(F.conv2d(out, state[f"{p}.conv3.weight"]), f"{p}.bn3")
            if f"{p}.downsample.0.weight" in state:
                shortcut = bn(F.conv2d(h, state[f"{p}.downsample.0.weight"]), f"{p}.downsample.1")
            else:
                shortcut = F.max_pool2d(h, kernel_size=1, stride=step)
            h = F.relu(out + shortcut)
        outputs[f"layer{stage}"] = h
    h = F.relu(bn(F.conv2d(h, state["compress1.weight"], padding=1), "compress_bn"))
    outputs["groupnorm"] = F.group_norm(h, 8, eps=1e-5)
    return outputs


def hooked(module: torch.nn.Module, names, run) -> dict[str, torch.Tensor]:
    """The outputs of modules `names` while `run()` runs, recorded with plain forward hooks."""
    modules = dict(module.named_modules())
    outputs = {}
    handles = [modules[name].register_forward_hook(
        lambda _m, _i, output, name=name: outputs.__setitem__(name, output.detach().clone())) for name in names]
    try:
        with torch.no_grad():
            run()
    finally:
        for handle in handles:
            handle.remove()
    return outputs


def lightness_literal(r: float, g: float, b: float) -> float:
    """CIELAB L* of one sRGB pixel in [0, 1] (D65), scaled from [0, 100] to [-1, 1], pixel by
    pixel as skimage's rgb2lab and Taskonomy's rescale_image compute it."""
    def linear(c):
        return ((c + 0.055) / 1.055) ** 2.4 if c > 0.04045 else c / 12.92

    y = 0.212671 * linear(r) + 0.715160 * linear(g) + 0.072169 * linear(b)
    f = y ** (1 / 3) if y > 0.008856 else 7.787 * y + 16 / 116
    return min(max(116 * f - 16, 0.0), 100.0) / 100 * 2 - 1


@pytest.fixture(scope="module")
def normal():
    """The normal encoder with random weights, its randomised state and a 64 px batch."""
    built = taskonomy.build("taskonomy_normal", pretrained=False)
    state = randomised_state(built.module, seed=1)
    built.module.load_state_dict(state)
    built.module.eval()
    batch = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2)) * 2 - 1
    return built, state, batch


@pytest.fixture
def checkpoints(torch_home):
    """$TORCH_HOME/hub/checkpoints, emptied of this source's files afterwards."""
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    yield folder
    for file_name in taskonomy.WEIGHT_FILES.values():
        (folder / file_name).unlink(missing_ok=True)


def test_catalogue():
    entries = taskonomy.entries()
    assert [entry.name for entry in entries] == [f"taskonomy_{task}" for task in VIABLE_TASKS]
    assert {(entry.task, entry.input, entry.pretrained) for entry in entries} == {("taskonomy", "image", True)}
    assert "taskonomy" in TASKS
    assert all(taskonomy.offers(entry.name) for entry in entries)
    assert not any(taskonomy.offers(name) for name in ("normal", "taskonomy_", "taskonomy_normals", "resnet50"))
    assert list(taskonomy.WEIGHT_FILES) == VIABLE_TASKS
    for task, file_name in taskonomy.WEIGHT_FILES.items():
        assert re.fullmatch(rf"{task}_encoder-[0-9a-f]{{64}}\.pth", file_name), file_name
    listed = [entry.name for source, entry in list_models("taskonomy")]
    assert listed == [entry.name for entry in entries]
    assert find_source("taskonomy_jigsaw") == "taskonomy"


def test_architecture_matches_the_released_layout():
    """The state-dict keys and shapes are those of visualpriors' TaskonomyEncoder: a
    torchvision ResNet-50 without `fc` (its stages project the shortcut in the same
    places) plus compress1 and compress_bn; the GroupNorm has no parameters."""
    module = taskonomy.taskonomy_encoder()
    shapes = {key: tuple(value.shape) for key, value in module.state_dict().items()}
    expected = {key: tuple(value.shape) for key, value in torchvision.models.resnet50().state_dict().items()
                if not key.startswith("fc.")}
    expected["compress1.weight"] = (8, 2048, 3, 3)
    expected.update({f"compress_bn.{name}": (8,) for name in ("weight", "bias", "running_mean", "running_var")})
    expected["compress_bn.num_batches_tracked"] = ()
    assert shapes == expected
    grey = taskonomy.taskonomy_encoder(in_channels=1).state_dict()
    assert tuple(grey["conv1.weight"].shape) == (64, 1, 7, 7)


def test_build_with_random_weights(normal):
    built, state, batch = normal
    assert built.task == "taskonomy" and built.input == "image" and built.class_scores is False
    assert built.call is None
    assert built.preprocessing == Preprocessing(resize=256, crop=256, mean=(0.5,) * 3, std=(0.5,) * 3)
    assert built.preprocessing.resize_mode == "shorter"
    names = [name for name, _ in built.module.named_modules()]
    assert built.top(built.module, names) == TOP


def test_forward_matches_the_reference_and_scales_by_one_sixteenth(normal):
    built, state, batch = normal
    outputs = hooked(built.module, TOP, lambda: built.module(batch))
    expected = reference_forward(state, batch)
    assert {name: tuple(t.shape[1:]) for name, t in outputs.items()} == {
        "layer1": (256, 8, 8), "layer2": (512, 4, 4), "layer3": (1024, 4, 4), "layer4": (2048, 4, 4),
        "groupnorm": (8, 4, 4)}
    for name in TOP:
        torch.testing.assert_close(outputs[name], expected[name], rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        assert built.module(torch.zeros(1, 3, 80, 96)).shape == (1, 8, 5, 6)


def test_toolbox_layers_equal_forward_hooks(normal):
    built, state, batch = normal
    loaded = load_model("taskonomy_normal", source="taskonomy", weights="random", device="cpu")
    loaded.module.load_state_dict(state)
    got = run_layers(loaded, batch, TOP)
    expected = hooked(loaded.module, TOP, lambda: loaded.module(batch))
    assert list(got) == TOP
    for name in TOP:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0)


def test_extraction_equals_forward_hooks(normal, images, tmp_path):
    built, state, _ = normal
    loaded = load_model("taskonomy_normal", source="taskonomy", weights="random", device="cpu", image_size=64)
    loaded.module.load_state_dict(state)
    assert loaded.preprocessing.crop == 64 and loaded.preprocessing.mean == (0.5,) * 3
    out = tmp_path / "acts.h5"
    extract_to_file(loaded, images, out, batch_size=3)
    batch = torch.stack([loaded.preprocessing(load_image(s.path)) for s in discover_stimuli(images)])
    # The reference runs the same batches of 3 as the extraction: a batch of 7 picks other float32 convolution
    # kernels, whose summation order moves single values by ~2e-5 on deep layers.
    chunks = [hooked(loaded.module, TOP, lambda part=part: loaded.module(part)) for part in batch.split(3)]
    expected = {name: torch.cat([chunk[name] for chunk in chunks]) for name in TOP}
    with h5py.File(out, "r") as f:
        assert set(f["layers"]) == set(TOP)
        for name in TOP:
            stored = f["layers"][name][()]
            np.testing.assert_allclose(stored.reshape(len(batch), -1), expected[name].reshape(len(batch), -1).numpy(),
                                       rtol=1e-5, atol=1e-5)


def test_colorization_takes_lightness():
    built = taskonomy.build("taskonomy_colorization", pretrained=False)
    built.module.eval()
    assert built.module.conv1.in_channels == 1 and built.call is not None
    pixels = torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(3))
    got = taskonomy.lightness(pixels * 2 - 1)
    assert got.shape == (2, 1, 5, 7)
    literal = [[[lightness_literal(*pixels[b, :, i, j].tolist()) for j in range(7)] for i in range(5)] for b in range(2)]
    torch.testing.assert_close(got[:, 0], torch.tensor(literal), rtol=0, atol=1e-5)
    anchors = taskonomy.lightness(torch.tensor([1.0, -1.0, 0.0]).view(3, 1, 1, 1).expand(3, 3, 1, 1))
    torch.testing.assert_close(anchors.flatten(), torch.tensor([1.0, -1.0, 53.389 / 50 - 1]), rtol=0, atol=1e-4)

    loaded = load_model("taskonomy_colorization", source="taskonomy", weights="random", device="cpu")
    batch = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(4)) * 2 - 1
    got = run_layers(loaded, batch, TOP)
    expected = hooked(loaded.module, TOP, lambda: loaded.module(taskonomy.lightness(batch)))
    for name in TOP:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0)
    assert got["groupnorm"].shape == (2, 8, 4, 4)


def test_pretrained_file_in_the_cache_loads(normal, checkpoints):
    built, state, batch = normal
    official = checkpoints / taskonomy.WEIGHT_FILES["normal"]
    torch.save({"state_dict": state}, official)  # visualpriors' container
    pretrained = taskonomy.build("taskonomy_normal", pretrained=True).module.eval()
    with torch.no_grad():
        torch.testing.assert_close(pretrained(batch), built.module(batch), rtol=0, atol=0)
    loaded = load_model("taskonomy_normal", source="taskonomy", weights="pretrained", device="cpu")
    assert all(torch.equal(loaded.module.state_dict()[key], value) for key, value in state.items())
    # without batch norm's counters, as torch itself accepts them
    torch.save({"state_dict": {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}}, official)
    again = taskonomy.build("taskonomy_normal", pretrained=True).module.eval()
    with torch.no_grad():
        torch.testing.assert_close(again(batch), built.module(batch), rtol=0, atol=0)


def test_pretrained_file_that_does_not_fit_is_refused(checkpoints):
    official = checkpoints / taskonomy.WEIGHT_FILES["colorization"]
    torch.save({"state_dict": taskonomy.taskonomy_encoder(in_channels=3).state_dict()}, official)
    with pytest.raises(WeightsError, match=r"do not fit the model: conv1.weight has shape \(64, 3, 7, 7\), "
                                           r"the model \(64, 1, 7, 7\)"):
        taskonomy.build("taskonomy_colorization", pretrained=True)


def test_missing_pretrained_weights_name_the_url_and_the_place(torch_home):
    file_name = taskonomy.WEIGHT_FILES["depth_zbuffer"]
    expected = torch_home / "hub" / "checkpoints" / file_name
    url = f"https://github.com/alexsax/visual-prior/raw/networks/assets/pytorch/{file_name}"
    message = (f"pretrained weights for taskonomy_depth_zbuffer are not in the cache ({expected} is missing): "
               f"download {url} on a machine with internet and place it at {expected}")
    with pytest.raises(WeightsError, match=re.escape(message) + r".*`weights=PATH`"):
        taskonomy.build("taskonomy_depth_zbuffer", pretrained=True)


def test_missing_pretrained_weights_on_the_command_line(net2brain, torch_home, images, tmp_path):
    result = net2brain("extract", "--model", "taskonomy_normal", "--source", "taskonomy", "--stimuli", images,
                       "--out", tmp_path / "a.h5")
    assert result.code == 2, result
    assert taskonomy.WEIGHT_URL.format(file=taskonomy.WEIGHT_FILES["normal"]) in result.err
    assert str(torch_home / "hub" / "checkpoints" / taskonomy.WEIGHT_FILES["normal"]) in result.err
    assert "--weights PATH" in result.err
    assert not (tmp_path / "a.h5").exists()


def test_layers_command(net2brain):
    result = net2brain("layers", "taskonomy_keypoints2d", "--source", "taskonomy")
    assert result.code == 0, result
    marked = [line.split()[1] for line in result.out.splitlines() if line.startswith("*")]
    assert marked == TOP
    assert "groupnorm 8 x 16 x 16" in " ".join(" ".join(line.split()) for line in result.out.splitlines())


def test_unknown_names():
    with pytest.raises(UnknownNameError, match="unknown taskonomy model 'taskonomy_normals'; closest: taskonomy_normal"):
        taskonomy.build("taskonomy_normals", pretrained=False)
    with pytest.raises(UnknownNameError, match="unknown model 'taskonomy_normals'"):
        load_model("taskonomy_normals", source="taskonomy", weights="random", device="cpu")
