"""The torchvision source beyond classification: segmentation, detection and video models,
their weights' preprocessing, how a batch goes in, their default layers, random builds
with the pretrained architecture, and weights from the torch hub cache."""
from __future__ import annotations

import functools
import os
from unittest import mock

import h5py
import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torchvision.models import get_model, get_model_weights
from torchvision.transforms import functional as TF

from net2brain_fovex.errors import UnknownNameError, WeightsError
from net2brain_fovex.extraction.activations import extract_to_file
from net2brain_fovex.extraction.stimuli import discover_stimuli, load_image
from net2brain_fovex.models.layers import run_layers, top_layers
from net2brain_fovex.models.loading import load_model
from net2brain_fovex.models.sources import list_models
from net2brain_fovex.models.zoo import torchvision as zoo
from tests.conftest import write_images

TASK_MODULES = {"segmentation": torchvision.models.segmentation, "detection": torchvision.models.detection,
                "video": torchvision.models.video}
# the smallest model of each family, with a small input it runs on
SMALL = {"lraspp_mobilenet_v3_large": 64, "ssdlite320_mobilenet_v3_large": 64, "r3d_18": 32}


@functools.cache
def random_model(name: str):
    """One random build per name for the whole module (tests must not change it)."""
    torch.manual_seed(1)
    built = zoo.build(name, False)
    built.module.eval()
    return built


def pretrained_architecture(name: str) -> torch.nn.Module:
    """torchvision's own pretrained build, with the weight loading left out."""
    with mock.patch.object(torchvision.models._api.WeightsEnum, "get_state_dict", lambda *a, **k: {}), \
            mock.patch.object(torch.nn.Module, "load_state_dict", lambda *a, **k: None):
        return get_model(name, weights=get_model_weights(name).DEFAULT)


def hooked_outputs(model, call, batch, names):
    """The literal way: one forward hook per module keeping a copy of its last tensor
    output (or of the first item of a returned tuple), the batch fed through `call` as
    the model documents it (None: `model(batch)`)."""
    got, modules = {}, dict(model.named_modules())

    def keep(name, output):
        if isinstance(output, tuple) and output and isinstance(output[0], torch.Tensor):
            output = output[0]
        if isinstance(output, torch.Tensor):
            got.pop(name, None)
            got[name] = output.clone()

    handles = [modules[n].register_forward_hook(lambda m, i, o, n=n: keep(n, o)) for n in names]
    try:
        with torch.no_grad():
            call(model, batch) if call else model(batch)
    finally:
        for handle in handles:
            handle.remove()
    return got


def small_batch(name: str, size: int) -> torch.Tensor:
    torch.manual_seed(0)
    if random_model(name).input == "video":
        return torch.randn(2, 4, 3, size, size)
    return torch.rand(2, 3, size, size)


def test_catalogue():
    entries = {entry.name: entry for entry in zoo.entries()}
    for task, module in TASK_MODULES.items():
        names = torchvision.models.list_models(module=module)
        assert names and all(entries[n].task == task for n in names)
        assert all(entries[n].input == ("video" if task == "video" else "image") and entries[n].pretrained
                   for n in names)
    assert {"deeplabv3_resnet50", "fcn_resnet101", "lraspp_mobilenet_v3_large", "maskrcnn_resnet50_fpn",
            "keypointrcnn_resnet50_fpn", "fcos_resnet50_fpn", "ssd300_vgg16", "r2plus1d_18", "s3d", "mvit_v2_s",
            "swin3d_b"} <= set(entries)
    assert entries["resnet18"].task == "classification" and entries["resnet18"].input == "image"
    for left_out in ("raft_small", "raft_large", "quantized_resnet18", "resnet18_quantized"):
        assert not zoo.offers(left_out)
    assert not any(name.startswith("quantized_") for name in entries)
    videos = [entry.name for source, entry in list_models(source="torchvision", task="video")]
    assert sorted(videos) == sorted(torchvision.models.list_models(module=torchvision.models.video))


def test_unknown_name():
    with pytest.raises(UnknownNameError, match=r"unknown torchvision model 'fasterrcnn_resnet51_fpn'; "
                                               r"closest: fasterrcnn_resnet50_fpn"):
        zoo.build("fasterrcnn_resnet51_fpn", False)
    with pytest.raises(UnknownNameError, match=r"unknown model 'swin3d_x'; closest: .*swin3d_"):
        load_model("swin3d_x", source="torchvision", weights="random", device="cpu")


@pytest.mark.parametrize(("name", "resize", "mode", "crop", "mean"), [
    ("fcn_resnet50", 520, "shorter", 520, (0.485, 0.456, 0.406)),
    ("lraspp_mobilenet_v3_large", 520, "shorter", 520, (0.485, 0.456, 0.406)),
    ("r3d_18", (128, 171), "squash", 112, (0.43216, 0.394666, 0.37645)),
    ("mc3_18", (128, 171), "squash", 112, (0.43216, 0.394666, 0.37645)),
    ("s3d", (256, 256), "squash", 224, (0.43216, 0.394666, 0.37645)),
    ("mvit_v1_b", 256, "shorter", 224, (0.45, 0.45, 0.45)),
    ("swin3d_t", 256, "shorter", 224, (0.485, 0.456, 0.406)),
])
def test_preprocessing_of_the_weights(name, resize, mode, crop, mean):
    chosen = zoo.preprocessing(name)
    assert (chosen.resize, chosen.resize_mode, chosen.crop, chosen.mean) == (resize, mode, crop, mean)
    assert chosen.interpolation == "bilinear"


def test_segmentation_preprocessing_is_the_preset_at_the_centre():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 90, 3), dtype=np.uint8))
    preset = get_model_weights("lraspp_mobilenet_v3_large").DEFAULT.transforms()
    expected = TF.center_crop(preset(image), [520])  # the preset keeps the whole 520 x 780 image
    assert torch.equal(zoo.preprocessing("lraspp_mobilenet_v3_large")(image), expected)


@pytest.mark.parametrize(("name", "side"), [("ssdlite320_mobilenet_v3_large", 320),
                                            ("fasterrcnn_mobilenet_v3_large_320_fpn", 320)])
def test_detection_input_is_what_the_model_resizes_to(name, side):
    """[0, 1] squares of the model's own size: its internal transform only normalises."""
    model = random_model(name).module
    chosen = random_model(name).preprocessing
    assert (chosen.resize, chosen.crop, chosen.mean, chosen.std) == (side, side, (0.0,) * 3, (1.0,) * 3)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8))
    preset = get_model_weights(name).DEFAULT.transforms()  # ObjectDetection: [0, 1] only
    batch = chosen.normalise(chosen.crop_image(image).unsqueeze(0))
    assert torch.equal(batch[0], preset(chosen.crop_image(image)))
    inside, _ = model.transform(list(batch))
    mean = torch.tensor(model.transform.image_mean).view(3, 1, 1)
    std = torch.tensor(model.transform.image_std).view(3, 1, 1)
    assert inside.tensors.shape == (1, 3, side, side)
    torch.testing.assert_close(inside.tensors, (batch - mean) / std, rtol=0, atol=0)


def test_rcnn_input_side_is_its_evaluation_min_size():
    # keypoint R-CNN trains at several sizes and evaluates at the last, 800
    built = zoo.build("keypointrcnn_resnet50_fpn", False)
    assert built.module.transform.min_size == (640, 672, 704, 736, 768, 800)
    assert (built.preprocessing.resize, built.preprocessing.crop) == (800, 800)
    with pytest.raises(ValueError, match="input size of detector keypointrcnn_resnet50_fpn is read from the built"):
        zoo.preprocessing("keypointrcnn_resnet50_fpn")


@pytest.mark.parametrize("name", SMALL)
def test_call_and_default_layers(name):
    """The batch goes in through `call`; every default layer runs and gives a tensor with
    the batch first."""
    built = random_model(name)
    batch = small_batch(name, SMALL[name])
    executed = hooked_outputs(built.module, built.call,
                              batch, [n for n, _ in built.module.named_modules() if n])
    top = built.top(built.module, list(executed))
    assert top and all(n in executed and isinstance(executed[n], torch.Tensor) and len(executed[n]) == 2 for n in top)


def test_default_layers_per_family():
    # a MobileNet's stage ends: the last block of each resolution (the next one strides), and the last block
    lraspp = random_model("lraspp_mobilenet_v3_large")
    assert lraspp.top(lraspp.module, []) == ["backbone.1", "backbone.3", "backbone.6", "backbone.16", "classifier"]
    detector = random_model("fasterrcnn_mobilenet_v3_large_fpn")
    assert detector.top(detector.module, [])[:5] == [f"backbone.body.{i}" for i in (1, 3, 6, 12, 16)]
    ssdlite = random_model("ssdlite320_mobilenet_v3_large")
    assert ssdlite.top(ssdlite.module, []) == [
        "backbone.features.0", "backbone.features.1", *(f"backbone.extra.{i}" for i in range(4))]
    r3d = random_model("r3d_18")
    assert r3d.top(r3d.module, []) == ["stem", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"]
    fcn = zoo.build("fcn_resnet50", False)
    assert fcn.top(fcn.module, []) == [*(f"backbone.layer{i}" for i in range(1, 5)), "classifier", "aux_classifier"]
    retinanet = zoo.build("retinanet_resnet50_fpn", False)
    assert retinanet.top(retinanet.module, []) == [
        *(f"backbone.body.layer{i}" for i in range(1, 5)), *(f"backbone.fpn.layer_blocks.{i}" for i in range(3)),
        "backbone.fpn.extra_blocks.p6", "backbone.fpn.extra_blocks.p7"]
    ssd = zoo.build("ssd300_vgg16", False)
    assert ssd.top(ssd.module, []) == ["backbone.features", *(f"backbone.extra.{i}" for i in range(5))]


def test_video_models_describe_their_clips():
    r3d = random_model("r3d_18")
    assert (r3d.input, r3d.clip_frames, r3d.time_axis, r3d.class_scores, r3d.task) == ("video", 16, 2, True, "video")
    swin = zoo.build("swin3d_t", False)
    assert (swin.clip_frames, swin.time_axis) == (32, 1)
    mvit = zoo.build("mvit_v2_s", False)
    assert (mvit.clip_frames, mvit.prefix_tokens) == (16, 1)
    assert zoo.build("s3d", False).clip_frames == 128
    assert not random_model("lraspp_mobilenet_v3_large").class_scores
    assert not random_model("ssdlite320_mobilenet_v3_large").class_scores


@pytest.mark.parametrize("name", ["fasterrcnn_mobilenet_v3_large_320_fpn", "deeplabv3_mobilenet_v3_large"])
def test_random_build_has_the_pretrained_architecture(name):
    """Frozen batch norm of the pretrained detectors, the auxiliary head of the FCN and
    DeepLabV3 weights: a state dict of either build fits the other."""
    pretrained = pretrained_architecture(name)
    random = zoo.build(name, False).module
    assert random.state_dict().keys() == pretrained.state_dict().keys()
    assert [type(m) for m in random.modules()] == [type(m) for m in pretrained.modules()]


@pytest.mark.parametrize("name", SMALL)
def test_toolbox_layers_equal_plain_hooks(name):
    loaded = load_model(name, source="torchvision", weights="random", seed=2, device="cpu")
    batch = small_batch(name, SMALL[name])
    modules = [n for n, _ in loaded.module.named_modules() if n]
    expected = hooked_outputs(loaded.module, loaded.call, batch, modules)
    names = top_layers(loaded, list(expected))
    got = run_layers(loaded, batch, names)
    assert list(got) == names
    for layer in names:
        torch.testing.assert_close(got[layer], expected[layer], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("name", "size"), [("lraspp_mobilenet_v3_large", 48), ("ssdlite320_mobilenet_v3_large", 48),
                                            ("r3d_18", 32)])
def test_extraction_equals_plain_hooks(name, size, tmp_path):
    """What `extract_to_file` stores for the default layers; a video model gets each image
    as a still clip and averages its 5-D outputs over time."""
    images = write_images(tmp_path / "images", 3, size=40)
    loaded = load_model(name, source="torchvision", weights="random", seed=5, device="cpu", image_size=size)
    options = {"frames": 2} if loaded.input == "video" else {}
    out = extract_to_file(loaded, images, tmp_path / "acts.h5", batch_size=2, **options).path
    stimuli = discover_stimuli(images)
    frames = torch.stack([loaded.preprocessing(load_image(s.path)) for s in stimuli])
    batch = frames.unsqueeze(1).expand(-1, 2, -1, -1, -1) if loaded.input == "video" else frames
    modules = [n for n, _ in loaded.module.named_modules() if n]
    expected = hooked_outputs(loaded.module, loaded.call, batch, modules)
    names = top_layers(loaded, list(expected))
    with h5py.File(out) as file:
        assert list(file["stimuli"].asstr()) == [s.id for s in stimuli]
        assert set(file["layers"]) == set(names)
        for layer in names:
            tensor = expected[layer]
            if tensor.ndim == 5:
                tensor = tensor.mean(dim=loaded.time_axis)
            np.testing.assert_allclose(file["layers"][layer][()].reshape(len(stimuli), -1),
                                       tensor.reshape(len(stimuli), -1).numpy(), rtol=1e-4, atol=1e-5)


def test_layers_command_marks_the_default_layers(net2brain):
    result = net2brain("layers", "r3d_18", "--source", "torchvision", "--image-size", 32)
    assert result.code == 0, result
    marked = [line.split()[1] for line in result.out.splitlines() if line.startswith("*")]
    assert marked == ["stem", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"]


@pytest.mark.parametrize("name", SMALL)
def test_pretrained_weights_load_offline(name, torch_home):
    """A file under its official name in $TORCH_HOME/hub/checkpoints loads, and nothing
    else (no backbone weights) is fetched."""
    official = os.path.basename(get_model_weights(name).DEFAULT.url)
    reference = random_model(name).module
    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    torch.save(reference.state_dict(), checkpoints / official)
    try:
        with mock.patch("torch.hub.download_url_to_file", side_effect=AssertionError("no download")):
            loaded = load_model(name, source="torchvision", weights="pretrained", device="cpu")
        own, theirs = loaded.module.state_dict(), reference.state_dict()
        assert own.keys() == theirs.keys() and all(torch.equal(own[k], theirs[k]) for k in own)
        assert loaded.weights == "pretrained"
    finally:
        (checkpoints / official).unlink()


def test_missing_pretrained_weights_say_where_to_put_them(torch_home):
    url = get_model_weights("ssdlite320_mobilenet_v3_large").DEFAULT.url
    expected = torch_home / "hub" / "checkpoints" / "ssdlite320_mobilenet_v3_large_coco-a79551df.pth"
    with pytest.raises(WeightsError, match=(
            rf"pretrained weights for ssdlite320_mobilenet_v3_large are not in the cache \({expected} is missing\): "
            rf"download {url} on a machine with internet and place it at {expected}")):
        load_model("ssdlite320_mobilenet_v3_large", source="torchvision", weights="pretrained", device="cpu")


# ------------------------------------------------------------------ every model, slow
ALL = [name for module in TASK_MODULES.values() for name in torchvision.models.list_models(module=module)]


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_every_model_runs_its_default_layers_at_its_own_size(name):
    torch.manual_seed(0)
    built = zoo.build(name, False)
    built.module.eval()
    crop = built.preprocessing.crop
    batch = torch.rand(1, built.clip_frames, 3, crop, crop) if built.input == "video" else torch.rand(1, 3, crop, crop)
    executed = hooked_outputs(built.module, built.call,
                              batch, [n for n, _ in built.module.named_modules() if n])
    top = built.top(built.module, list(executed))
    assert top and all(isinstance(executed.get(n), torch.Tensor) and len(executed[n]) == 1 for n in top)
    assert built.module.state_dict().keys() == pretrained_architecture(name).state_dict().keys()
