"""The open_clip source: catalogue, image towers of tiny registered configs (a 2-block
64-wide ViT at 32 px, a ModifiedResNet, a timm trunk), their preprocessing against
open_clip's own transform, pretrained weights from the Hugging Face cache, errors."""
from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

open_clip = pytest.importorskip("open_clip")

from net2brain_fovex.errors import ModelError, UnknownNameError, WeightsError  # noqa: E402
from net2brain_fovex.models.layers import list_layers, run_layers  # noqa: E402
from net2brain_fovex.models.loading import load_model  # noqa: E402
from net2brain_fovex.models.zoo import open_clip as zoo  # noqa: E402
from tests.conftest import write_images  # noqa: E402

_TEXT = {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1}
TINY = {
    "n2b-tiny-vit": {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32,
                                                      "patch_size": 8}, "text_cfg": _TEXT},
    "n2b-tiny-rn": {"embed_dim": 32, "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 8,
                                                     "head_width": 8}, "text_cfg": _TEXT},
    "n2b-tiny-timm": {"embed_dim": 32, "vision_cfg": {"image_size": 32, "timm_model_name": "test_convnext",
                                                       "timm_pool": "avg", "timm_proj": "linear"}, "text_cfg": _TEXT},
    "n2b-tiny-timm-vit": {"embed_dim": 32, "vision_cfg": {"image_size": 160, "timm_model_name": "test_vit",
                                                           "timm_pool": "", "timm_proj": "none"}, "text_cfg": _TEXT},
}
REPO = "n2b-test/tiny-vit"
TAG = {"url": "", "hf_hub": f"{REPO}/", "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "interpolation": "bilinear",
       "resize_mode": "squash", "quick_gelu": True}


@pytest.fixture(autouse=True)
def tiny_configs(monkeypatch):
    """The tiny architectures, and the tag n2b-tiny-vit:test (hub repository n2b-test/tiny-vit)."""
    for name, config in TINY.items():
        monkeypatch.setitem(open_clip.factory._MODEL_CONFIGS, name, config)
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, "n2b-tiny-vit", {"test": TAG})


def hub_snapshot(file_name: str):
    """The snapshot folder of REPO in the Hugging Face cache layout under $HF_HOME/hub."""
    repo = os.path.join(os.environ["HF_HOME"], "hub", "models--" + REPO.replace("/", "--"))
    os.makedirs(os.path.join(repo, "refs"), exist_ok=True)
    with open(os.path.join(repo, "refs", "main"), "w") as ref:
        ref.write("0" * 40)
    snapshot = os.path.join(repo, "snapshots", "0" * 40)
    os.makedirs(snapshot, exist_ok=True)
    return repo, os.path.join(snapshot, file_name)


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_catalogue():
    zoo.entries.cache_clear()  # the catalogue may have been read before this module registered its test models
    entries = zoo.entries()
    names = [entry.name for entry in entries]
    assert len(names) == len(set(names)) == len(open_clip.list_pretrained()) + len(open_clip.list_models())
    by_name = {entry.name: entry for entry in entries}
    assert by_name["ViT-B-32:laion2b_s34b_b79k"].pretrained and not by_name["ViT-B-32"].pretrained
    assert {"RN50:openai", "ViT-B-16-SigLIP:webli", "convnext_base_w:laion2b_s13b_b82k"} <= set(names)
    assert {(entry.task, entry.input) for entry in entries} == {("vision-language", "image")}
    assert zoo.offers("ViT-B-32") and zoo.offers("ViT-B-32:openai") and zoo.offers("n2b-tiny-vit:test")
    for name in ("ViT-B-32:nope", "resnet18", "tests/toy_models.py:tiny_cnn", "hf-hub:timm/ViT-B-16-SigLIP"):
        assert not zoo.offers(name)


def test_the_tower_is_open_clips_visual_tower():
    """With the same seed, the tower equals `create_model(...).visual` (built first there)
    in weights and output; random weights, embeddings, one class token."""
    torch.manual_seed(3)
    built = zoo.build("n2b-tiny-vit", pretrained=False)
    torch.manual_seed(3)
    reference = open_clip.create_model("n2b-tiny-vit", pretrained=None).eval()
    assert same_state(built.module.state_dict(), reference.visual.state_dict())
    batch = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(built.call(built.module.eval(), batch), reference.encode_image(batch))
    assert (built.task, built.input, built.class_scores, built.prefix_tokens) == ("vision-language", "image", False, 1)
    assert built.module.preprocess_cfg["size"] == (32, 32)


def test_a_tag_sets_activation_and_preprocessing():
    built = zoo.build("n2b-tiny-vit:test", pretrained=False)
    assert any(isinstance(m, open_clip.transformer.QuickGELU) for m in built.module.modules())
    pre = built.preprocessing
    assert (pre.resize, pre.crop, pre.resize_mode, pre.interpolation) == (32, 32, "squash", "bilinear")
    assert pre.mean == pre.std == (0.5, 0.5, 0.5)
    untagged = zoo.build("n2b-tiny-vit", pretrained=False).preprocessing
    assert (untagged.resize_mode, untagged.interpolation, untagged.mean) == (
        "shorter", "bicubic", open_clip.OPENAI_DATASET_MEAN)


@pytest.mark.parametrize("name", ["n2b-tiny-vit", "n2b-tiny-vit:test"])
def test_preprocessing_equals_open_clips_transform(name):
    """Shortest (bicubic, OpenAI mean) and squash (bilinear): the same tensor as
    open_clip's evaluation transform, on an image that is not square."""
    from open_clip.transform import PreprocessCfg, image_transform_v2

    built = zoo.build(name, pretrained=False)
    config = {key: built.module.preprocess_cfg[key] for key in ("size", "mean", "std", "interpolation", "resize_mode")}
    theirs = image_transform_v2(PreprocessCfg(**config), is_train=False)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (45, 70, 3), dtype=np.uint8))
    assert torch.allclose(built.preprocessing(image), theirs(image), atol=1e-6)


def test_default_layers_per_family():
    """ViT: the blocks, batch first (B, 1 + patches, width), and the embedding;
    ModifiedResNet: layer1..4 and attnpool; timm trunk: its stages and head."""
    vit = load_model("n2b-tiny-vit", source="open_clip", weights="random", device="cpu")
    layers = list_layers(vit)
    assert [info.name for info in layers if info.top] == [
        "transformer.resblocks.0", "transformer.resblocks.1", "embedding"]
    shapes = {info.name: info.shape for info in layers}
    assert shapes["transformer.resblocks.0"] == (1 + 16, 64) and shapes["embedding"] == (32,)
    assert vit.prefix_tokens == 1
    rn = list_layers(load_model("n2b-tiny-rn", source="open_clip", weights="random", device="cpu"))
    assert [info.name for info in rn if info.top] == ["layer1", "layer2", "layer3", "layer4", "attnpool"]
    assert {info.name: info.shape for info in rn}["attnpool"] == (32,)
    timm_tower = load_model("n2b-tiny-timm", source="open_clip", weights="random", device="cpu")
    assert [info.name for info in list_layers(timm_tower) if info.top] == [
        "trunk.stages.0", "trunk.stages.1", "trunk.stages.2", "trunk.stages.3", "head"]
    assert timm_tower.prefix_tokens == 0
    assert zoo.build("n2b-tiny-timm-vit", pretrained=False).prefix_tokens == 1  # timm's class token


def test_preprocessing_configs_it_cannot_map_exactly():
    config = {"size": 32, "mean": (0.5,) * 3, "std": (0.5,) * 3, "interpolation": "bicubic", "resize_mode": "longest"}
    with pytest.warns(UserWarning, match="resize_mode longest .* approximated by squash"):
        assert zoo.preprocessing(config).resize_mode == "squash"
    with pytest.raises(ModelError, match="open_clip image size 32 x 48 is not square"):
        zoo.preprocessing({**config, "size": (32, 48)})


def test_toolbox_outputs_equal_plain_forward_hooks():
    loaded = load_model("n2b-tiny-vit", source="open_clip", weights="random", seed=1, device="cpu")
    names = ["transformer.resblocks.1", "embedding"]
    batch = torch.randn(3, 3, 32, 32)
    ours = run_layers(loaded, batch, names)
    plain, modules = {}, dict(loaded.module.named_modules())
    handles = [modules[n].register_forward_hook(lambda _m, _i, out, n=n: plain.__setitem__(n, out.clone()))
               for n in names]
    try:
        with torch.no_grad():
            embedding = loaded.module.embedding(loaded.module(batch))
    finally:
        for handle in handles:
            handle.remove()
    assert all(torch.equal(ours[n], plain[n]) for n in names)
    assert torch.equal(ours["embedding"], embedding)


def test_extract_command_writes_the_embedding(net2brain, tmp_path):
    images = write_images(tmp_path / "images", 3)
    out = tmp_path / "acts.h5"
    result = net2brain("extract", "--model", "n2b-tiny-vit", "--pretrained-tag", "test", "--source", "open_clip",
                       "--weights", "random", "--stimuli", images, "--out", out, "--layers", "embedding",
                       "--device", "cpu")
    assert result.code == 0, result
    with h5py.File(out) as file:
        assert file["layers/embedding"].shape == (3, 32)


@pytest.mark.parametrize("file_name", ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"])
def test_pretrained_from_hugging_face_cache(file_name):
    """The whole CLIP model's state dict under the tag's file name (or its safetensors
    twin) in the cache loads offline; the tower takes its `visual.` entries."""
    from safetensors.torch import save_file

    torch.manual_seed(5)
    reference = open_clip.create_model("n2b-tiny-vit", pretrained=None)
    repo, path = hub_snapshot(file_name)
    if file_name.endswith(".safetensors"):
        save_file(reference.state_dict(), path)
    else:
        torch.save(reference.state_dict(), path)
    try:
        torch.manual_seed(6)
        built = zoo.build("n2b-tiny-vit:test", pretrained=True)
        assert same_state(built.module.state_dict(), reference.visual.state_dict())
    finally:
        import shutil

        shutil.rmtree(repo)


def test_weights_file_of_the_tower_or_of_the_whole_model(tmp_path):
    reference = open_clip.create_model("n2b-tiny-vit", pretrained=None)
    torch.save(reference.visual.state_dict(), tmp_path / "visual.pt")
    loaded = load_model("n2b-tiny-vit", source="open_clip", weights=str(tmp_path / "visual.pt"), seed=2, device="cpu")
    assert same_state(loaded.module.state_dict(), reference.visual.state_dict())
    torch.save(reference.state_dict(), tmp_path / "clip.pt")  # a whole CLIP model, as the hub serves it
    loaded = load_model("n2b-tiny-vit", source="open_clip", weights=str(tmp_path / "clip.pt"), seed=2, device="cpu")
    assert same_state(loaded.module.state_dict(), reference.visual.state_dict())


def test_missing_pretrained_weights_say_where_to_put_them():
    cache = os.path.join(os.environ["HF_HOME"], "hub")
    with pytest.raises(WeightsError, match=(
            rf"open_clip model n2b-tiny-vit:test are not in the Hugging Face cache \({cache}/models--n2b-test--tiny-vit "
            r"holds no open_clip_model.safetensors or open_clip_pytorch_model.bin\): .*create_model\('n2b-tiny-vit', "
            r"pretrained='test'\).*https://huggingface.co/n2b-test/tiny-vit/resolve/main/open_clip_pytorch_model.bin "
            r"and pass the file as `weights=PATH`")):
        zoo.build("n2b-tiny-vit:test", pretrained=True)
    with pytest.raises(WeightsError, match="models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K holds no"):
        load_model("ViT-B-32:laion2b_s34b_b79k", source="open_clip", device="cpu")


def test_pretrained_weights_need_a_tag():
    with pytest.raises(WeightsError, match=r"name the weights as MODEL:TAG, e.g. ViT-B-32:openai .*`weights=random`"):
        zoo.build("ViT-B-32", pretrained=True)
    with pytest.raises(WeightsError, match="open_clip has no pretrained weights for n2b-tiny-rn"):
        zoo.build("n2b-tiny-rn", pretrained=True)


def test_unknown_names():
    with pytest.raises(UnknownNameError, match="unknown open_clip model 'ViT-B-33'; closest: .*ViT-B-32"):
        zoo.build("ViT-B-33", pretrained=False)
    with pytest.raises(UnknownNameError, match=r"unknown pretrained tag 'opena'; closest: openai \(tags of open_clip model ViT-B-32: openai, "):
        zoo.build("ViT-B-32:opena", pretrained=False)
    with pytest.raises(UnknownNameError, match=r"\(open_clip model n2b-tiny-rn has none; use `weights=random`\)"):
        zoo.build("n2b-tiny-rn:openai", pretrained=False)
    with pytest.raises(UnknownNameError, match="unknown model 'ViT-B-32:opena'; closest: .*ViT-B-32:openai"):
        load_model("ViT-B-32:opena", source="open_clip", device="cpu")
