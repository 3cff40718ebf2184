"""Layer discovery, output shapes, the default selection and name validation."""
from __future__ import annotations

import pytest
import torch

from net2brain_fovex.errors import UnknownNameError
from net2brain_fovex.models.layers import list_layers, run_layers, select_layers, top_layers
from net2brain_fovex.models.loading import load_model
from tests.conftest import factory


@pytest.fixture(scope="module")
def tiny():
    return load_model(factory("tiny_cnn"), weights="random", device="cpu", image_size=16)


def test_execution_order_and_shapes(tiny):
    infos = list_layers(tiny)
    assert [i.name for i in infos] == [
        "features", "features.0", "features.1", "features.2", "features.3", "features.4", "pool", "dropout", "head",
    ]  # `unused` never runs, so it is no layer
    shapes = {i.name: i.shape for i in infos}
    assert shapes["features.0"] == (4, 16, 16) and shapes["features.2"] == (4, 8, 8) and shapes["head"] == (5,)
    assert [i.name for i in infos if i.top] == ["features.0", "features.1", "features.2", "features.3", "features.4", "pool", "head"]


def test_selection(tiny):
    available = [i.name for i in list_layers(tiny)]
    assert select_layers(tiny, "all", available) == available
    assert select_layers(tiny, "head, features.2", available) == ["features.2", "head"]  # execution order
    assert select_layers(tiny, ["pool", "pool"], available) == ["pool"]
    with pytest.raises(UnknownNameError, match=r"unknown layer 'features.9'; closest: features.4, features.3"):
        select_layers(tiny, "features.9", available)
    with pytest.raises(UnknownNameError, match="does not run in the model's forward pass"):
        select_layers(tiny, "unused", available)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("resnet18", ["layer1", "layer2", "layer3", "layer4", "avgpool", "fc"]),
        ("alexnet", ["features.1", "features.4", "features.7", "features.9", "features.11", "classifier.2", "classifier.5", "classifier.6"]),
        ("vit_tiny_patch16_224", [f"blocks.{i}" for i in range(12)] + ["head"]),
        ("convnext_atto", ["stages.0", "stages.1", "stages.2", "stages.3", "head.fc"]),
        ("mobilenet_v3_small", [f"features.{i}" for i in range(13)] + ["avgpool", "classifier.0", "classifier.1", "classifier.3"]),
    ],
)
def test_top_selection_per_family(name, expected):
    loaded = load_model(name, weights="random", device="cpu")
    assert [i.name for i in list_layers(loaded) if i.top] == expected


def test_torchscript_layers_are_its_outputs(tmp_path):
    from tests.toy_models import Features

    path = tmp_path / "f.pt"
    torch.jit.save(torch.jit.script(Features().eval()), str(path))
    loaded = load_model(str(path), device="cpu", image_size=16)
    infos = list_layers(loaded)
    assert [(i.name, i.shape, i.top) for i in infos] == [("stage1", (4, 8, 8), True), ("logits", (5,), True)]
    assert top_layers(loaded, ["stage1", "logits"]) == ["stage1", "logits"]


def test_layers_command(net2brain):
    result = net2brain("layers", "resnet18")
    assert result.code == 0, result
    lines = result.out.splitlines()
    assert lines[0].split() == ["conv1", "64", "x", "112", "x", "112"]
    marked = [line.split()[1] for line in lines if line.startswith("*")]
    assert marked == ["layer1", "layer2", "layer3", "layer4", "avgpool", "fc"]
    assert "* = default selection (6)" in result.err


def test_layers_command_unknown_model(net2brain):
    result = net2brain("layers", "resnet181")
    assert result.code == 2
    assert "unknown model 'resnet181'; closest: resnet18" in result.err


def test_layer_outputs_are_not_changed_by_later_in_place_operations():
    """ResNet's ReLU(inplace=True) runs on the batch norms' outputs: the extracted values
    must be the batch norm's own (with negatives), not the rectified ones."""
    loaded = load_model("resnet18", weights="random", seed=0, device="cpu", image_size=64)
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    outputs = run_layers(loaded, images, ["bn1", "layer1.0.bn1", "layer1.0"])
    model = loaded.module
    with torch.inference_mode():
        stem = model.bn1(model.conv1(images))
        block_bn1 = model.layer1[0].bn1(model.layer1[0].conv1(model.maxpool(torch.relu(stem))))
        block = model.layer1[0](model.maxpool(torch.relu(stem)))
    torch.testing.assert_close(outputs["bn1"], stem)
    torch.testing.assert_close(outputs["layer1.0.bn1"], block_bn1)
    torch.testing.assert_close(outputs["layer1.0"], block)
    assert outputs["bn1"].min() < 0 and outputs["layer1.0.bn1"].min() < 0
