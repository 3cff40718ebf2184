"""Baseline attribution methods: Grad-CAM, Grad-CAM++, random CAM and RISE."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from net2brain_fovex.errors import ConfigError, ModelError, UnknownNameError
from net2brain_fovex.explain.base import Context
from net2brain_fovex.explain.methods.cam import target_layer
from net2brain_fovex.explain.methods.gradcam import gradcam
from net2brain_fovex.explain.methods.gradcam_plus_plus import gradcam_plus_plus
from net2brain_fovex.explain.methods.random_cam import random_cam
from net2brain_fovex.explain.methods.rise import rise, rise_masks
from net2brain_fovex.explain.registry import CAMParameters, RISEParameters

SIZE = 16
BLACK = torch.tensor([-2.0, -1.9, -1.8])


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.relu1, self.pool1 = nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        self.conv2, self.relu2 = nn.Conv2d(4, 6, 3, padding=1), nn.ReLU()
        self.pool, self.head = nn.AdaptiveAvgPool2d(1), nn.Linear(6, 5)
        self.unused = nn.Linear(2, 2)

    def forward(self, x):
        x = self.relu2(self.conv2(self.pool1(self.relu1(self.conv1(x)))))
        return self.head(self.pool(x).flatten(1))


class TinyViT(nn.Module):
    """4 x 4 patches of 4 px, a class token, two encoder layers, a head on the class token."""

    num_prefix_tokens = 1

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 4, stride=4)
        self.cls = nn.Parameter(torch.randn(1, 1, dim))
        self.blocks = nn.Sequential(
            *[nn.TransformerEncoderLayer(dim, 2, 32, dropout=0.0, batch_first=True) for _ in range(2)]
        )
        self.head = nn.Linear(dim, 4)

    def forward(self, x):
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1)
        return self.head(self.blocks(tokens)[:, 0])


class Gate(nn.Module):
    """Multiplies a feature map by a fixed 0/1 spatial mask."""

    def __init__(self, region: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("region", region)

    def forward(self, x):
        return x * self.region


class Planted(nn.Module):
    """Class 1's logit is the mean of positive conv features inside a fixed region; class 0's is 0."""

    def __init__(self, region: torch.Tensor) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)
        nn.init.constant_(self.conv.weight, 1 / 27)
        nn.init.zeros_(self.conv.bias)
        self.relu, self.gate = nn.ReLU(), Gate(region)

    def forward(self, x):
        evidence = 60 * self.gate(self.relu(self.conv(x))).mean(dim=(1, 2, 3)) - 3.5
        return torch.stack([torch.zeros_like(evidence), evidence], dim=1)


def cnn() -> TinyCNN:
    torch.manual_seed(0)
    return TinyCNN()


def vit() -> TinyViT:
    torch.manual_seed(0)
    return TinyViT()


MODELS = {"cnn": (cnn, "relu2", 0), "vit": (vit, "blocks.0", 1)}
CAMS = {"gradcam": gradcam, "gradcam++": gradcam_plus_plus, "random": random_cam}


def fast_rise(model, images, targets, context, **parameters):
    return rise(model, images, targets, context, parameters=RISEParameters(**{"masks": 60, "grid": 4, "mask_batch": 25, **parameters}))


METHODS = {**CAMS, "rise": fast_rise}


def batch(n: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, SIZE, SIZE, generator=generator), torch.tensor([0, 3, 1, 2][:n])


def context(prefix: int = 0, seed: int = 0) -> Context:
    return Context(black=BLACK, prefix_tokens=prefix, seed=seed)


def literal_cam(model, images, targets, layer, prefix, plus_plus):
    """Grad-CAM / Grad-CAM++ one image at a time: retain_grad, backward, a loop over channels."""
    module = dict(model.named_modules())[layer]
    model.eval()
    maps = []
    for image, target in zip(images, targets, strict=True):
        store = {}

        def hook(_module, _inputs, output, store=store):
            output.retain_grad()
            store["output"] = output

        handle = module.register_forward_hook(hook)
        try:
            logits = model(image[None].clone())
        finally:
            handle.remove()
        model.zero_grad()
        logits[0, target].backward()
        a = store["output"].detach()[0].numpy().astype(np.float64)
        g = store["output"].grad[0].numpy().astype(np.float64)
        if a.ndim == 2:  # tokens (T, D) -> (D, side, side)
            side = int(round((a.shape[0] - prefix) ** 0.5))
            a, g = (t[prefix:].T.reshape(-1, side, side) for t in (a, g))
        cam = np.zeros(a.shape[1:])
        for k in range(a.shape[0]):
            if plus_plus:
                denominator = 2 * g[k] ** 2 + a[k].sum() * g[k] ** 3 + 1e-6  # pytorch-grad-cam's epsilon
                alpha = np.where(g[k] != 0, g[k] ** 2 / denominator, 0)
                weight = (alpha * np.maximum(g[k], 0)).sum()
            else:
                weight = g[k].mean()
            cam += weight * a[k]
        cam = torch.from_numpy(np.maximum(cam, 0))[None, None]
        up = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)[0, 0].numpy()
        maps.append((up - up.min()) / (up.max() - up.min()) if up.max() > up.min() else np.zeros_like(up))
    return np.stack(maps)


def literal_rise(model, images, targets, n, grid, p_keep, seed):
    """RISE one mask and one image at a time."""
    masks = rise_masks(n, grid=grid, p_keep=p_keep, height=SIZE, width=SIZE, seed=seed)
    saliency = torch.zeros(len(images), SIZE, SIZE, dtype=torch.float64)
    model.eval()
    with torch.no_grad():
        for mask in masks:
            for b, (image, target) in enumerate(zip(images, targets, strict=True)):
                masked = image * mask + BLACK[:, None, None] * (1 - mask)
                probability = torch.softmax(model(masked[None]), dim=1)[0, target]
                saliency[b] += probability.double() * mask.double()
    saliency /= n * p_keep
    flat = saliency.flatten(1)
    low, high = flat.min(1).values[:, None, None], flat.max(1).values[:, None, None]
    return ((saliency - low) / (high - low)).numpy()


# ------------------------------------------------------------------ against literal implementations
@pytest.mark.parametrize("plus_plus", [False, True], ids=["gradcam", "gradcam++"])
@pytest.mark.parametrize("kind", list(MODELS))
def test_cams_match_literal_implementation(kind, plus_plus):
    build, layer, prefix = MODELS[kind]
    model = build()
    images, targets = batch()
    method = gradcam_plus_plus if plus_plus else gradcam
    maps = method(model, images, targets, context(prefix), parameters=CAMParameters(layer=layer)).maps
    expected = literal_cam(model, images, targets, layer, prefix, plus_plus)
    assert (maps.amax(dim=(1, 2)) == 1).any(), "every map is blank: the comparison would be vacuous"
    np.testing.assert_allclose(maps.numpy(), expected, atol=1e-5)


def test_rise_matches_literal_loop():
    model = cnn()
    images, targets = batch(2)
    maps = rise(model, images, targets, context(seed=3), parameters=RISEParameters(masks=40, grid=3, p_keep=0.4, mask_batch=7)).maps
    np.testing.assert_allclose(maps.numpy(), literal_rise(model, images, targets, 40, 3, 0.4, seed=3), atol=1e-5)


def test_rise_masks_follow_the_rise_code():
    n, grid, p_keep, seed = 30, 4, 0.5, 5
    masks = rise_masks(n, grid=grid, p_keep=p_keep, height=18, width=13, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    cells = (torch.rand(n, grid, grid, generator=generator) < p_keep).float()
    cell_h, cell_w = 5, 4  # ceil(18 / 4), ceil(13 / 4)
    rows, cols = torch.randint(cell_h, (n,), generator=generator), torch.randint(cell_w, (n,), generator=generator)
    for i in range(n):
        up = F.interpolate(cells[i][None, None], size=(5 * cell_h, 5 * cell_w), mode="bilinear")[0, 0]
        torch.testing.assert_close(masks[i], up[rows[i]:rows[i] + 18, cols[i]:cols[i] + 13], atol=1e-6, rtol=0)
    assert masks.shape == (n, 18, 13) and masks.dtype == torch.float32
    assert masks.min() >= 0 and masks.max() <= 1
    assert torch.equal(masks, rise_masks(n, grid=grid, p_keep=p_keep, height=18, width=13, seed=seed))
    assert not torch.equal(masks, rise_masks(n, grid=grid, p_keep=p_keep, height=18, width=13, seed=seed + 1))


# ------------------------------------------------------------------ properties of every method
@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("name", list(METHODS))
def test_batch_equals_one_by_one_and_maps_are_normalised(name, kind):
    build, _, prefix = MODELS[kind]
    model = build()
    images, targets = batch()
    maps = METHODS[name](model, images, targets, context(prefix)).maps
    assert maps.shape == (3, SIZE, SIZE) and maps.dtype == torch.float32
    assert maps.min() >= 0 and maps.max() <= 1
    for i in range(3):
        alone = METHODS[name](model, images[i:i + 1], targets[i:i + 1], context(prefix)).maps
        torch.testing.assert_close(alone[0], maps[i], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", list(METHODS))
def test_deterministic_for_a_seed(name):
    model = cnn()
    images, targets = batch()
    first = METHODS[name](model, images, targets, context(seed=7)).maps
    assert torch.equal(first, METHODS[name](model, images, targets, context(seed=7)).maps)


@pytest.mark.parametrize("name", ["random", "rise"])
def test_seed_changes_random_methods(name):
    model = cnn()
    images, targets = batch()
    maps = [METHODS[name](model, images, targets, context(seed=seed)).maps for seed in (0, 1)]
    assert not torch.equal(*maps)


@pytest.mark.parametrize("name", list(METHODS))
def test_model_state_is_restored(name):
    model = cnn().train()
    model.conv1.weight.requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    images, targets = batch(2)
    METHODS[name](model, images, targets, context())
    assert all(module.training for module in model.modules())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())


# ------------------------------------------------------------------ layers
@pytest.mark.parametrize("kind", list(MODELS))
def test_default_layer(kind):
    build, layer, prefix = MODELS[kind]
    model = build().train()
    assert target_layer(model, (2, 3, SIZE, SIZE), prefix) == layer
    assert model.training


def test_vit_last_block_gives_blank_maps_hence_the_default():
    # the head reads the class token only: past the last attention, patch tokens carry no gradient
    images, targets = batch()
    assert gradcam(vit(), images, targets, context(1), parameters=CAMParameters(layer="blocks.1")).maps.abs().max() == 0


def test_unknown_layer_names_the_closest():
    images, targets = batch()
    with pytest.raises(UnknownNameError, match=r"unknown layer 'relu3'; closest: relu"):
        gradcam(cnn(), images, targets, context(), parameters=CAMParameters(layer="relu3"))


@pytest.mark.parametrize(("layer", "message"), [
    ("head", r"layer 'head' outputs shape \(3, 5\), neither a spatial map"),
    ("pool", r"layer 'pool' outputs shape \(3, 6, 1, 1\), neither a spatial map"),
    ("unused", r"layer 'unused' did not run"),
])
@pytest.mark.parametrize("method", [gradcam, random_cam])
def test_layer_without_a_spatial_output_is_refused(method, layer, message):
    images, targets = batch()
    with pytest.raises(ModelError, match=message):
        method(cnn(), images, targets, context(), parameters=CAMParameters(layer=layer))


def test_model_without_spatial_layers_is_refused():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, 4))
    with pytest.raises(ModelError, match="no layer of Sequential outputs a spatial map"):
        target_layer(model, (1, 3, SIZE, SIZE), 0)


def test_rise_parameters_are_checked():
    images, targets = batch()
    with pytest.raises(ConfigError, match=r"invalid RISE parameter `p_keep`: p_keep = 0 is out of range; expected in \(0, 1\]"):
        rise(cnn(), images, targets, context(), parameters=RISEParameters(masks=10, p_keep=0))


# ------------------------------------------------------------------ planted ground truth
@pytest.mark.parametrize("name", ["gradcam", "gradcam++", "rise"])
def test_maps_peak_in_the_region_the_logit_reads(name):
    region = torch.zeros(SIZE, SIZE)
    region[2:7, 9:15] = 1
    images = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2)) + 0.5
    targets = torch.tensor([1, 1])
    method = METHODS[name] if name != "rise" else lambda *a: rise(*a, parameters=RISEParameters(masks=500, grid=4))
    maps = method(Planted(region), images, targets, context()).maps
    inside = region.bool()
    for m in maps:
        assert inside.flatten()[m.argmax()]
        assert m[inside].mean() > 2 * m[~inside].mean()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", list(METHODS))
def test_cuda_gives_the_cpu_maps(name):
    model = cnn()
    images, targets = batch()
    expected = METHODS[name](model, images, targets, context()).maps
    maps = METHODS[name](model.cuda(), images.cuda(), targets.cuda(), Context(BLACK.cuda())).maps
    assert maps.device.type == "cuda"
    torch.testing.assert_close(maps.cpu(), expected, atol=1e-4, rtol=0)
