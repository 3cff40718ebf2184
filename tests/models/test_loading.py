"""Model sources and weights: torchvision, timm, factories, TorchScript, state-dict files,
the offline pretrained caches."""
from __future__ import annotations

import os

import pytest
import torch
import torchvision

from net2brain_fovex.errors import ConfigError, ModelError, UnknownNameError, WeightsError
from net2brain_fovex.models.loading import load_model
from net2brain_fovex.models.sources import SOURCES, find_source, list_models
from net2brain_fovex.models.weights import load_state_dict_file
from tests.conftest import TOY_MODELS, factory


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa)


def test_listing_covers_every_source():
    pairs = [(s, entry.name) for s, entry in list_models()]
    names = {name for _, name in pairs}
    assert {"resnet18", "vit_b_16", "alexnet"} <= {n for s, n in pairs if s == "torchvision"}
    assert "vit_tiny_patch16_224" in names and "convnext_atto" in names
    assert all(s == "timm" for s, _ in list_models("timm"))
    assert all("vit" in entry.name.lower() for _, entry in list_models(contains="ViT"))
    assert {s for s, _ in pairs} == set(SOURCES)


def test_models_command(net2brain):
    result = net2brain("models", "--source", "torchvision", "--filter", "resnet")
    assert result.code == 0
    lines = result.out.splitlines()
    assert "torchvision\tresnet18\tclassification\timage\tyes" in lines
    assert all(line.startswith("torchvision\t") for line in lines)
    assert "models: classification" in result.err
    assert net2brain("models", "--source", "caffe").code == 2


def test_models_and_layers_as_json(net2brain):
    import json

    from tests.conftest import factory

    listed = json.loads(net2brain("models", "--source", "torchvision", "--filter", "resnet", "--json").out)
    assert {"source": "torchvision", "name": "resnet18", "task": "classification", "input": "image",
            "pretrained": True} in listed
    layers = json.loads(net2brain("layers", factory("tiny_cnn"), "--image-size", 32, "--json").out)
    text = net2brain("layers", factory("tiny_cnn"), "--image-size", 32).out.splitlines()
    assert [entry["name"] for entry in layers] == [line[2:].split()[0] for line in text]
    assert [entry["default"] for entry in layers] == [line.startswith("*") for line in text]
    assert all(isinstance(entry["shape"], list) for entry in layers)


def test_source_lookup():
    assert find_source("resnet18") == "torchvision"
    assert find_source("resnet18", "timm") == "timm"
    assert find_source("convnext_atto") == "timm"
    with pytest.raises(UnknownNameError, match="unknown model 'resnet19'; closest: .*resnet18"):
        find_source("resnet19")


def test_random_weights_are_seeded():
    a = load_model("resnet18", weights="random", seed=3, device="cpu")
    b = load_model("resnet18", weights="random", seed=3, device="cpu")
    c = load_model("resnet18", weights="random", seed=4, device="cpu")
    assert same_weights(a.module, b.module) and not same_weights(a.module, c.module)
    assert a.source == "torchvision" and not a.module.training
    assert a.preprocessing.crop == 224 and a.preprocessing.resize == 256


def test_timm_model_and_its_preprocessing():
    loaded = load_model("vit_tiny_patch16_224", weights="random", device="cpu")
    assert loaded.source == "timm" and loaded.prefix_tokens == 1
    assert loaded.preprocessing.mean == (0.5, 0.5, 0.5) and loaded.preprocessing.interpolation == "bicubic"
    assert loaded.preprocessing.resize == 248  # floor(224 / 0.9)


def test_preprocessing_overrides():
    loaded = load_model("resnet18", weights="random", device="cpu", image_size=112, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert (loaded.preprocessing.crop, loaded.preprocessing.resize) == (112, 128)
    assert loaded.preprocessing.std == (0.25, 0.25, 0.25)
    with pytest.raises(ConfigError, match="`std` values must be positive"):
        load_model("resnet18", weights="random", device="cpu", std=(0, 1, 1))


def test_preprocessing_matches_torchvision_preset(tmp_path):
    import numpy as np
    from PIL import Image

    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 260, 3), dtype=np.uint8))
    loaded = load_model("resnet18", weights="random", device="cpu")
    preset = torchvision.models.ResNet18_Weights.DEFAULT.transforms()
    assert torch.equal(loaded.preprocessing(image), preset(image))


def test_factory_from_file_and_module(monkeypatch, tmp_path):
    loaded = load_model(factory("tiny_cnn"), weights="random", seed=1, device="cpu")
    assert loaded.source == "factory" and type(loaded.module).__name__ == "TinyCNN"
    again = load_model(factory("tiny_cnn"), weights="random", seed=1, device="cpu")
    assert same_weights(loaded.module, again.module)
    monkeypatch.syspath_prepend(str(TOY_MODELS.parent))
    assert type(load_model("toy_models:tiny_vit", device="cpu").module).__name__ == "TinyViT"


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        (factory("missing"), ModelError, "has no function 'missing'"),
        (factory("not_a_model"), ModelError, "returned int, not a torch.nn.Module"),
        ("no_such_module_xyz:build", ModelError, "cannot import no_such_module_xyz"),
        ("missing.pt", Exception, "model file missing.pt does not exist"),
    ],
)
def test_bad_model_specs(spec, error, message):
    with pytest.raises(error, match=message):
        load_model(spec, device="cpu")


@pytest.mark.parametrize(("source", "message"), [
    ("def build(depth):\n    pass\n", r"nets.py:build' raised TypeError: build\(\) missing 1 required positional argument: "
                                     r"'depth'; a factory is called without arguments"),
    ("def build():\n    raise KeyError('weights')\n", r"nets.py:build' raised KeyError: 'weights'"),
    ("raise ValueError('bad settings')\n", r"importing .*nets.py for model factory .* raised ValueError: bad settings; fix"),
])
def test_factories_that_fail_are_model_errors_naming_the_factory(tmp_path, source, message):
    (tmp_path / "nets.py").write_text(source)
    with pytest.raises(ModelError, match=message):
        load_model(f"{tmp_path / 'nets.py'}:build", device="cpu")


def test_a_model_whose_forward_fails_is_a_model_error(tmp_path):
    from net2brain_fovex.models.layers import list_layers

    (tmp_path / "nets.py").write_text("import torch\nclass Net(torch.nn.Module):\n    def forward(self, x):\n"
                                      "        raise IndexError('no such head')\ndef build():\n    return Net()\n")
    with pytest.raises(ModelError, match=r"failed on a batch of 1 image\(s\) of 224 x 224: IndexError: no such head; "
                                         r"check the model \(and `image_size`\)"):
        list_layers(f"{tmp_path / 'nets.py'}:build")


def test_torchscript_file(tmp_path):
    from tests.toy_models import Features

    path = tmp_path / "features.pt"
    torch.jit.save(torch.jit.script(Features().eval()), str(path))
    loaded = load_model(str(path), device="cpu")
    assert loaded.source == "torchscript"
    with pytest.raises(ConfigError, match="cannot re-initialise a TorchScript model"):
        load_model(str(path), weights="random", device="cpu")
    state = tmp_path / "state.pt"
    torch.save(Features().state_dict(), state)
    with pytest.raises(ConfigError, match="carries its own weights"):
        load_model(str(path), weights=str(state), device="cpu")
    with pytest.raises(ModelError, match="is not a TorchScript model"):
        load_model(str(state), device="cpu")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_state_dict_file(tmp_path, suffix):
    source = torchvision.models.resnet18()
    torch.nn.init.constant_(source.fc.bias, 0.25)
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(source.state_dict(), str(path))
    else:
        torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    loaded = load_model("resnet18", weights=str(path), device="cpu")
    assert same_weights(loaded.module, source)
    assert loaded.weights == str(path)


def test_state_dict_mismatch_and_pickles_are_refused(tmp_path):
    path = tmp_path / "alex.pth"
    torch.save(torchvision.models.alexnet().state_dict(), path)
    with pytest.raises(WeightsError, match="do not fit the model: .*missing"):
        load_model("resnet18", weights=str(path), device="cpu")
    pickled = tmp_path / "payload.pt"
    torch.save({"weights": torch.zeros(1), "code": os.system}, pickled)
    with pytest.raises(WeightsError, match="cannot load weights from .* safely"):
        load_state_dict_file(pickled)
    with pytest.raises(ConfigError, match="neither pretrained, random nor a weights file"):
        load_model("resnet18", weights="imagenet", device="cpu")


def test_pretrained_from_torch_home_cache(torch_home):
    """A weights file placed in $TORCH_HOME/hub/checkpoints under its official name loads offline."""
    official = os.path.basename(torchvision.models.ResNet18_Weights.DEFAULT.url)
    reference = torchvision.models.resnet18()
    torch.nn.init.constant_(reference.fc.bias, 0.5)
    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    torch.save(reference.state_dict(), checkpoints / official)
    try:
        loaded = load_model("resnet18", weights="pretrained", device="cpu")
        assert same_weights(loaded.module, reference)
    finally:
        (checkpoints / official).unlink()


def test_missing_pretrained_weights_say_where_to_put_them(net2brain, torch_home, images, tmp_path):
    result = net2brain("extract", "--model", "alexnet", "--stimuli", images, "--out", tmp_path / "a.h5")
    assert result.code == 2, result
    expected = torch_home / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    assert f"pretrained weights for alexnet are not in the cache ({expected} is missing)" in result.err
    assert "place it at" in result.err and "--weights PATH" in result.err
    assert not (tmp_path / "a.h5").exists()


def test_missing_timm_weights_offline():
    with pytest.raises(WeightsError, match="pretrained weights for timm model convnext_atto are not available offline.*HF_HOME"):
        load_model("convnext_atto", source="timm", weights="pretrained", device="cpu")


def test_device_choice():
    assert load_model(factory("tiny_cnn"), device="auto").device.type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU is available"):
            load_model(factory("tiny_cnn"), device="cuda")
    with pytest.raises(ConfigError, match="unknown device"):
        load_model(factory("tiny_cnn"), device="tpu9")


def test_timm_pretrained_from_hugging_face_cache():
    """A file in the Hugging Face cache layout under $HF_HOME loads offline as `pretrained`."""
    import timm
    from safetensors.torch import save_file

    reference = timm.create_model("convnext_atto", pretrained=False)
    torch.nn.init.constant_(reference.head.fc.bias, 0.125)
    repo = os.path.join(os.environ["HF_HOME"], "hub", "models--timm--convnext_atto.d2_in1k")
    os.makedirs(os.path.join(repo, "refs"), exist_ok=True)
    os.makedirs(os.path.join(repo, "snapshots", "0" * 40), exist_ok=True)
    with open(os.path.join(repo, "refs", "main"), "w") as ref:
        ref.write("0" * 40)
    save_file(reference.state_dict(), os.path.join(repo, "snapshots", "0" * 40, "model.safetensors"))
    try:
        loaded = load_model("convnext_atto", weights="pretrained", device="cpu")
        assert same_weights(loaded.module, reference)
    finally:
        import shutil

        shutil.rmtree(repo)


def test_timm_state_dict_file(tmp_path):
    import timm
    from safetensors.torch import save_file

    reference = timm.create_model("convnext_atto", pretrained=False)
    save_file(reference.state_dict(), str(tmp_path / "atto.safetensors"))
    loaded = load_model("convnext_atto", weights=str(tmp_path / "atto.safetensors"), seed=9, device="cpu")
    assert same_weights(loaded.module, reference)
