"""The cam:* methods through pytorch-grad-cam, and our Grad-CAM / Grad-CAM++ against it.

The reference of every comparison is the library called directly, written out in the
test (its class, its hooks, a reshape of the token grid, its `ClassifierOutputTarget`)
and the result min-max normalised per image by hand.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest
import timm
import torch
from torch import nn

from net2brain_fovex.errors import ConfigError, ModelError, UnknownNameError
from net2brain_fovex.explain.attributions import load_images, read_attributions
from net2brain_fovex.explain.base import Context
from net2brain_fovex.explain.methods import library_cam
from net2brain_fovex.explain.methods.cam import target_layer
from net2brain_fovex.explain.methods.gradcam import gradcam
from net2brain_fovex.explain.methods.gradcam_plus_plus import gradcam_plus_plus
from net2brain_fovex.explain.registry import METHODS, CAMBatchParameters, CAMParameters, parameters_for
from net2brain_fovex.extraction.stimuli import discover_stimuli
from net2brain_fovex.models.loading import load_model
from tests.conftest import factory, write_images
from tests.toy_models import TinyCNN, TinyViT

grad_cam = pytest.importorskip("pytorch_grad_cam")
ClassifierOutputTarget = grad_cam.utils.model_targets.ClassifierOutputTarget

SIZE = 32
CAMS = ["scorecam", "xgradcam", "layercam", "eigencam", "hirescam", "ablationcam", "fullgrad"]
CLASSES = {"scorecam": "ScoreCAM", "xgradcam": "XGradCAM", "layercam": "LayerCAM", "eigencam": "EigenCAM",
           "hirescam": "HiResCAM", "ablationcam": "AblationCAM", "fullgrad": "FullGrad"}


def cnn() -> nn.Module:
    torch.manual_seed(0)
    return TinyCNN()


def vit() -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=SIZE, patch_size=8, depth=2,
                             num_heads=2, embed_dim=32, num_classes=5)


MODELS = {"cnn": (cnn, 0), "vit": (vit, 1)}


def batch(n: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, SIZE, SIZE, generator=generator), torch.tensor([0, 3, 1, 4][:n])


def context(prefix: int) -> Context:
    return Context(black=torch.zeros(3), prefix_tokens=prefix)


def direct(cls_name: str, model: nn.Module, images, targets, layer: str | None, prefix: int) -> np.ndarray:
    """The library on its own: its class on the layer, the token grid reshaped by hand,
    one ClassifierOutputTarget per image; each map min-max normalised in numpy."""
    def reshape(output):
        if output.dim() == 3:  # (B, tokens, D): drop the prefix, (B, D, g, g)
            patches = output[:, prefix:]
            side = int(round(patches.shape[1] ** 0.5))
            return patches.transpose(1, 2).reshape(len(output), -1, side, side)
        return output

    model.eval()
    cls = getattr(grad_cam, cls_name)
    if cls_name == "FullGrad":
        cam = cls(model, [])
    else:
        module = dict(model.named_modules())[layer]
        extra = {"ablation_layer": grad_cam.AblationLayerVit() if prefix else grad_cam.AblationLayer()} \
            if cls_name == "AblationCAM" else {}
        cam = cls(model, [module], reshape_transform=reshape, **extra)
    try:
        maps = cam(images.clone(), [ClassifierOutputTarget(int(t)) for t in targets]).astype(np.float64)
    finally:
        cam.activations_and_grads.release()
    low, high = maps.min(axis=(1, 2), keepdims=True), maps.max(axis=(1, 2), keepdims=True)
    return np.where(high > low, (maps - low) / np.where(high > low, high - low, 1), 0)


# ------------------------------------------------------------------ ours against the library
@pytest.mark.parametrize(("ours", "cls_name"), [(gradcam, "GradCAM"), (gradcam_plus_plus, "GradCAMPlusPlus")],
                         ids=["gradcam", "gradcam++"])
@pytest.mark.parametrize("kind", list(MODELS))
def test_our_grad_cams_equal_the_library_on_the_same_layer(kind, ours, cls_name):
    build, prefix = MODELS[kind]
    model = build()
    images, targets = batch()
    layer = target_layer(model, images.shape, prefix)
    assert layer == {"cnn": "features", "vit": "blocks.1.norm1"}[kind]
    maps = ours(model, images, targets, context(prefix)).maps
    assert (maps.amax(dim=(1, 2)) == 1).all(), "a blank map: the comparison would be vacuous"
    np.testing.assert_allclose(maps.numpy(), direct(cls_name, model, images, targets, layer, prefix), atol=1e-5)


@pytest.mark.parametrize("name", CAMS)
@pytest.mark.parametrize("kind", list(MODELS))
def test_each_cam_is_the_library_called_directly(kind, name):
    build, prefix = MODELS[kind]
    model = build()
    images, targets = batch()
    method = METHODS[f"cam:{name}"].load()
    maps = method(model, images, targets, context(prefix)).maps
    layer = target_layer(model, images.shape, prefix) if name != "fullgrad" else None
    expected = direct(CLASSES[name], build(), images, targets, layer, prefix)
    assert maps.shape == (3, SIZE, SIZE) and maps.dtype == torch.float32
    assert maps.min() >= 0 and maps.max() <= 1 and (maps.amax(dim=(1, 2)) == 1).all()
    np.testing.assert_allclose(maps.numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("name", CAMS)
@pytest.mark.parametrize("kind", list(MODELS))
def test_a_batch_gives_the_maps_of_its_images_one_by_one(kind, name):
    build, prefix = MODELS[kind]
    model = build()
    images, targets = batch()
    parameters = CAMBatchParameters(cam_batch=2) if name in ("scorecam", "ablationcam") else None
    together = library_cam.library_cam(name, model, images, targets, context(prefix), parameters=parameters).maps
    alone = torch.cat([library_cam.library_cam(name, model, images[i:i + 1], targets[i:i + 1], context(prefix),
                                               parameters=parameters).maps for i in range(len(images))])
    np.testing.assert_allclose(together.numpy(), alone.numpy(), atol=1e-5)


@pytest.mark.parametrize("name", ["scorecam", "ablationcam"])
def test_cam_batch_sets_the_memory_not_the_maps(name):
    model = cnn()
    images, targets = batch(2)
    maps = [library_cam.library_cam(name, model, images, targets, context(0), parameters=CAMBatchParameters(cam_batch=size)).maps
            for size in (1, 3, 32)]
    np.testing.assert_allclose(maps[0].numpy(), maps[1].numpy(), atol=1e-5)
    np.testing.assert_allclose(maps[0].numpy(), maps[2].numpy(), atol=1e-5)


def test_eigencam_is_class_agnostic_and_the_others_are_not():
    model = cnn()
    images, _ = batch(2)
    maps = {t: library_cam.eigencam(model, images, torch.tensor([t, t]), context(0)).maps for t in (0, 4)}
    assert torch.equal(maps[0], maps[4])
    other = {t: library_cam.layercam(model, images, torch.tensor([t, t]), context(0)).maps for t in (0, 4)}
    assert not torch.allclose(other[0], other[4])


def test_a_named_layer_is_used():
    model = cnn()
    images, targets = batch(2)
    maps = library_cam.hirescam(model, images, targets, context(0), parameters=CAMParameters(layer="features.1")).maps
    np.testing.assert_allclose(maps.numpy(), direct("HiResCAM", cnn(), images, targets, "features.1", 0), atol=1e-5)


# ------------------------------------------------------------------ the model is left as it was
@pytest.mark.parametrize("name", CAMS)
def test_the_model_is_left_as_it_was(name):
    model = cnn().train()
    for parameter in model.parameters():
        parameter.grad = torch.ones_like(parameter)
    state = {key: value.clone() for key, value in model.state_dict().items()}
    modules = [(key, id(module)) for key, module in model.named_modules()]
    images, targets = batch(2)
    original = images.clone()
    library_cam.library_cam(name, model, images, targets, context(0))
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(p.grad, torch.ones_like(p)) for p in model.parameters())
    assert all(torch.equal(state[key], value) for key, value in model.state_dict().items())
    assert [(key, id(module)) for key, module in model.named_modules()] == modules
    assert not any(module._forward_hooks or module._backward_hooks for module in model.modules())
    assert torch.equal(images, original) and torch.backends.mha.get_fastpath_enabled()


def test_a_transformer_encoder_layer_model_runs_its_hooks():
    """nn.TransformerEncoderLayer's fused path skips submodules' hooks in no-grad passes
    (Ablation-CAM's): it is off during the call."""
    torch.manual_seed(0)
    model = TinyViT()
    images, targets = batch(2)
    targets = targets % 3
    for name in ("ablationcam", "eigencam", "scorecam"):
        maps = library_cam.library_cam(name, model, images, targets, context(1)).maps
        assert maps.shape == (2, SIZE, SIZE) and (maps.amax(dim=(1, 2)) == 1).all()


# ------------------------------------------------------------------ errors
def test_layer_errors():
    model = cnn()
    images, targets = batch(2)
    with pytest.raises(UnknownNameError, match=r"unknown layer 'features\.9'; closest"):
        library_cam.xgradcam(model, images, targets, context(0), parameters=CAMParameters(layer="features.9"))
    with pytest.raises(ModelError, match=r"layer 'head' outputs shape \(2, 5\), neither a spatial map"):
        library_cam.hirescam(model, images, targets, context(0), parameters=CAMParameters(layer="head"))
    with pytest.raises(ModelError, match=r"layer 'unused' did not run in the model's forward pass"):
        library_cam.layercam(model, images, targets, context(0), parameters=CAMParameters(layer="unused"))
    with pytest.raises(UnknownNameError, match=r"unknown pytorch-grad-cam method 'scorecan'; closest: scorecam"):
        library_cam.library_cam("scorecan", model, images, targets, context(0))


def test_fullgrad_takes_no_layer_and_cam_batch_is_checked():
    with pytest.raises(ConfigError, match=r"`layer` is not a parameter of method cam:fullgrad; its parameters are none"):
        parameters_for("cam:fullgrad", {"layer": "features"})
    with pytest.raises(ConfigError, match=r"cam_batch = 0 is out of range; expected a whole number from 1 to 100000"):
        CAMBatchParameters(cam_batch=0)


def test_a_missing_library_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pytorch_grad_cam", None)  # `import pytorch_grad_cam` fails
    model = cnn()
    images, targets = batch(2)
    message = r"method cam:xgradcam needs the pytorch_grad_cam library, .* pip install 'net2brain-fovex\[cam\]'"
    with pytest.raises(ConfigError, match=message):
        METHODS["cam:xgradcam"].load()
    with pytest.raises(ConfigError, match=message):
        library_cam.xgradcam(model, images, targets, context(0))
    METHODS["gradcam"].require()  # the core's methods need nothing more


def test_the_registry_entries():
    for name in CAMS:
        entry = METHODS[f"cam:{name}"]
        assert entry.library == "pytorch_grad_cam" and entry.extra == "cam"
        assert entry.layer == (name != "fullgrad")
        assert entry.pass_size == ("cam_batch" if name in ("scorecam", "ablationcam") else None)
        assert entry.backward == (name not in ("scorecam", "ablationcam", "eigencam"))


# ------------------------------------------------------------------ through the command line
@pytest.fixture
def pictures(tmp_path):
    return write_images(tmp_path / "pictures", 3, size=36)


def run_args(pictures, out, model="tiny_cnn"):
    return ["explain", "--model", factory(model), "--weights", "random", "--images", pictures, "--out", out,
            "--image-size", SIZE, "--batch-size", 2]


@pytest.mark.parametrize(("method", "extra"), [("cam:xgradcam", []), ("cam:scorecam", ["--cam-batch", 3]),
                                               ("cam:fullgrad", [])])
def test_through_the_cli(fovex, tmp_path, pictures, method, extra):
    out = tmp_path / "maps.h5"
    result = fovex(*run_args(pictures, out), "--method", method, *extra)
    assert result.code == 0, result
    assert "it/s" not in result.err and "%|" not in result.err  # the library's progress bars are silenced
    content = read_attributions(out)
    assert content["attrs"]["method"] == method and content["maps"].shape == (3, SIZE, SIZE)
    assert content["maps"].dtype == np.float32
    if method != "cam:fullgrad":
        assert '"layer": "features"' in content["attrs"]["parameters"]  # our rule's layer, recorded
    loaded = load_model(factory("tiny_cnn"), weights="random", seed=42, device="cpu", image_size=SIZE)
    images = load_images(discover_stimuli(pictures), loaded)
    targets = torch.tensor(content["targets"])
    expected = direct(CLASSES[method.split(":")[1]], loaded.module, images, targets,
                      None if method == "cam:fullgrad" else "features", 0)
    np.testing.assert_allclose(content["maps"], expected, atol=1e-5)


def test_a_vision_transformer_through_the_cli(fovex, tmp_path, pictures):
    result = fovex(*run_args(pictures, tmp_path / "vit.h5", "tiny_vit"), "--method", "cam:ablationcam")
    assert result.code == 0, result
    content = read_attributions(tmp_path / "vit.h5")
    assert content["maps"].shape == (3, SIZE, SIZE) and (content["maps"].max(axis=(1, 2)) == 1).all()
