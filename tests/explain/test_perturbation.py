"""Meaningful perturbation (Fong & Vedaldi 2017): the whole optimisation against a literal
per-image loop, its pieces, a planted region, batches against single images, a ViT, the
parameters, and `fovex explain --method perturbation`."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from net2brain_fovex.errors import ConfigError, InputError
from net2brain_fovex.explain.attributions import load_images, read_attributions
from net2brain_fovex.explain.base import Context
from net2brain_fovex.explain.methods.perturbation import (
    circle_masks,
    gaussian,
    perturbation,
    smooth_mask,
    total_variation,
)
from net2brain_fovex.explain.registry import METHODS, PerturbationParameters
from net2brain_fovex.extraction.stimuli import discover_stimuli
from net2brain_fovex.models.loading import load_model
from tests.conftest import factory, write_images


def context(seed=7):
    return Context(black=torch.zeros(3), seed=seed)


def small_cnn(seed=0) -> nn.Module:
    """Random weights, the head's scaled up so that blurring moves the probabilities."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.Tanh(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))
    with torch.no_grad():
        model[-1].weight.mul_(10)
    return model


class RegionModel(nn.Module):
    """Class 1's logit is the sharpness (row-to-row change) inside rows 4-11, cols 18-25 of
    a 32 x 32 image, which the blur removes; class 0's is 0."""

    def forward(self, x):
        region = x[:, :, 4:12, 18:26]
        sharp = (region[..., 1:, :] - region[..., :-1, :]).abs().mean(dim=(1, 2, 3))
        return torch.stack([torch.zeros_like(sharp), 4 * (sharp - 0.5)], dim=1)


# ------------------------------------------------------------------ the literal implementation

def blur_matrix(n, sigma):
    """(n, n): a 1-D Gaussian of radius min(round(4 sigma), n - 1), reflected at the ends."""
    radius = min(int(4 * sigma + 0.5), n - 1)
    weights = [math.exp(-0.5 * (k / sigma) ** 2) for k in range(-radius, radius + 1)]
    total = sum(weights)
    matrix = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        for k, weight in zip(range(-radius, radius + 1), weights, strict=True):
            j = i + k
            j = -j if j < 0 else (2 * (n - 1) - j if j > n - 1 else j)
            matrix[i, j] += weight / total
    return matrix


def bilinear_matrix(n, cells):
    """(n, cells): bilinear interpolation of `cells` values to n (half-pixel centres)."""
    matrix = torch.zeros(n, cells, dtype=torch.float64)
    for i in range(n):
        source = max((i + 0.5) * cells / n - 0.5, 0.0)
        low = int(math.floor(source))
        high = min(low + 1, cells - 1)
        matrix[i, low] += 1 - (source - low)
        matrix[i, high] += source - low
    return matrix


def shift_matrix(n, by):
    """(n, n): row i takes row max(i - by, 0)."""
    matrix = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        matrix[i, max(i - by, 0)] = 1
    return matrix


def literal_tv(mask, beta):
    h, w = len(mask), len(mask[0])
    down = [abs(mask[i][j] - mask[i + 1][j]) ** beta for i in range(h - 1) for j in range(w)]
    right = [abs(mask[i][j] - mask[i][j + 1]) ** beta for i in range(h) for j in range(w - 1)]
    return (sum(down) / len(down) if down else 0) + (sum(right) / len(right) if right else 0)


def literal_perturbation(model, image, target, seed, p: PerturbationParameters):
    """One image (3, H, W) float64, step by step: the map (H, W)."""
    model.eval()
    _, height, width = image.shape
    h, w = math.ceil(height / p.perturbation_mask_scale), math.ceil(width / p.perturbation_mask_scale)
    blur_rows, blur_cols = blur_matrix(height, p.perturbation_blur_sigma), blur_matrix(width, p.perturbation_blur_sigma)
    blurred = torch.stack([blur_rows @ image[c] @ blur_cols.T for c in range(3)])
    up_rows, up_cols = bilinear_matrix(height, h), bilinear_matrix(width, w)
    if p.perturbation_mask_blur_sigma > 0:
        up_rows = blur_matrix(height, p.perturbation_mask_blur_sigma) @ up_rows
        up_cols = blur_matrix(width, p.perturbation_mask_blur_sigma) @ up_cols

    def smooth(mask):
        return up_rows @ mask @ up_cols.T

    def probability(picture):
        return torch.softmax(model(picture[None])[0], dim=0)[target]

    # the start: the smallest centred disc deleting 99% of the whole deletion's drop
    mask = torch.ones(h, w, dtype=torch.float64)
    if p.perturbation_circle_init:
        far = max(math.dist((i + 0.5, j + 0.5), (h / 2, w / 2)) for i in range(h) for j in range(w))
        discs = []
        for radius in range(math.floor(far) + 2):
            disc = torch.tensor([[0.0 if math.dist((i + 0.5, j + 0.5), (h / 2, w / 2)) < radius else 1.0
                                  for j in range(w)] for i in range(h)], dtype=torch.float64)
            with torch.no_grad():
                kept = smooth(disc)
                discs.append((disc, probability(image * kept + blurred * (1 - kept)).item()))
        clean, deleted = discs[0][1], discs[-1][1]
        mask = next(disc for disc, score in discs if clean - score >= 0.99 * (clean - deleted)).clone()
    generator = torch.Generator().manual_seed(seed)
    first, second, step = torch.zeros(h, w, dtype=torch.float64), torch.zeros(h, w, dtype=torch.float64), 0
    for _ in range(p.perturbation_iterations):
        dy, dx = (torch.randint(p.perturbation_jitter, (2,), generator=generator).tolist()
                  if p.perturbation_jitter > 1 else (0, 0))
        rows, cols = shift_matrix(height, dy), shift_matrix(width, dx)
        mask = mask.detach().requires_grad_(True)
        kept = smooth(mask)
        perturbed = torch.stack([rows @ image[c] @ cols.T * kept + rows @ blurred[c] @ cols.T * (1 - kept)
                                 for c in range(3)])
        if p.perturbation_noise > 0:
            perturbed = perturbed + p.perturbation_noise * torch.randn((3, height, width), generator=generator).double()
        loss = (p.perturbation_l1 * sum(abs(1 - mask[i, j]) for i in range(h) for j in range(w)) / (h * w)
                + p.perturbation_tv * literal_tv(mask, p.perturbation_tv_beta) + probability(perturbed))
        (gradient,) = torch.autograd.grad(loss, mask)
        # Adam (Kingma & Ba 2015), betas 0.9 and 0.999, eps 1e-8
        step += 1
        first = 0.9 * first + 0.1 * gradient
        second = 0.999 * second + 0.001 * gradient**2
        corrected = first / (1 - 0.9**step), second / (1 - 0.999**step)
        mask = (mask.detach() - p.perturbation_lr * corrected[0] / (corrected[1].sqrt() + 1e-8)).clamp(0, 1)
    deleted_map = (1 - smooth(mask)).float()
    low, high = deleted_map.min(), deleted_map.max()
    return (deleted_map - low) / (high - low) if high > low else torch.zeros_like(deleted_map)


SMALL = PerturbationParameters(
    perturbation_iterations=12, perturbation_lr=0.1, perturbation_l1=0.05, perturbation_tv=0.2, perturbation_tv_beta=3.0,
    perturbation_blur_sigma=2.0, perturbation_mask_scale=4, perturbation_mask_blur_sigma=1.0, perturbation_jitter=3,
    perturbation_noise=0.1,
)


@pytest.mark.parametrize("circle", [True, False])
def test_the_optimisation_matches_a_literal_per_image_loop(circle):
    model = small_cnn().double()
    torch.manual_seed(1)
    images = torch.randn(3, 3, 12, 18, dtype=torch.float64)
    with torch.no_grad():
        targets = model(images).argmax(dim=1)
    p = PerturbationParameters(**{**SMALL.as_dict(), "perturbation_circle_init": circle})
    maps = perturbation(model, images, targets, context(5), parameters=p).maps
    assert maps.shape == (3, 12, 18) and maps.dtype == torch.float32
    for index in range(3):
        expected = literal_perturbation(model, images[index], targets[index].item(), 5, p)
        torch.testing.assert_close(maps[index], expected, atol=1e-5, rtol=0)
        assert expected.std() > 0.05  # not a blank map: the comparison means something


def test_the_paper_start_deletes_the_smallest_disc_that_suffices():
    model = small_cnn().double()
    torch.manual_seed(1)
    images = torch.randn(4, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        targets = model(images).argmax(dim=1)
    from net2brain_fovex.explain.methods.perturbation import _circle_start

    blurred = gaussian(images, 10.0)
    start = _circle_start(model, images, blurred, targets, (4, 4), 0.0)
    discs = circle_masks((4, 4)).double()
    with torch.no_grad():
        scores = torch.stack([torch.softmax(model(images * smooth_mask(d.expand(4, 1, 4, 4), (16, 16), 0.0)
                                                  + blurred * (1 - smooth_mask(d.expand(4, 1, 4, 4), (16, 16), 0.0))),
                                            dim=1)[range(4), targets] for d in discs])
    for b in range(4):
        drops = [(scores[0, b] - scores[k, b]).item() for k in range(len(discs))]
        chosen = next(k for k, drop in enumerate(drops) if drop >= 0.99 * drops[-1])
        torch.testing.assert_close(start[b, 0], discs[chosen].float())


def test_the_pieces():
    # TV: the two means of |difference|^beta; a side of one cell adds nothing
    torch.manual_seed(0)
    masks = torch.rand(2, 1, 3, 5, dtype=torch.float64)
    for b in range(2):
        assert total_variation(masks, 2.5)[b].item() == pytest.approx(literal_tv(masks[b, 0].tolist(), 2.5), rel=1e-12)
    row = torch.tensor([[[[0.0, 1.0, 1.0, 0.5]]]])
    assert total_variation(row, 3.0).item() == pytest.approx((1 + 0 + 0.125) / 3)
    assert total_variation(torch.zeros(1, 1, 1, 1), 3.0).item() == 0
    # the blur against the literal matrices (the radius shrinks to n - 1 on small sides)
    image = torch.randn(2, 3, 6, 9, dtype=torch.float64)
    for sigma in (0.7, 2.0, 10.0):
        expected = blur_matrix(6, sigma) @ image @ blur_matrix(9, sigma).T
        torch.testing.assert_close(gaussian(image, sigma), expected, atol=1e-12, rtol=0)
    # M(m): bilinear upsampling then the blur; ones stay ones
    mask = torch.rand(2, 1, 3, 4, dtype=torch.float64)
    expected = blur_matrix(12, 1.5) @ bilinear_matrix(12, 3) @ mask @ bilinear_matrix(16, 4).T @ blur_matrix(16, 1.5).T
    torch.testing.assert_close(smooth_mask(mask, (12, 16), 1.5), expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(smooth_mask(torch.ones(1, 1, 4, 4), (32, 32), 5.0), torch.ones(1, 1, 32, 32))
    # the discs: nothing deleted first, everything last, each containing the one before
    discs = circle_masks((5, 7))
    assert discs[0].min() == 1 and discs[-1].max() == 0 and discs[-2].max() == 1
    assert (discs[1:] <= discs[:-1]).all()


def test_a_planted_region_gets_the_map():
    torch.manual_seed(0)
    images = torch.randn(2, 3, 32, 32)
    targets = torch.tensor([1, 1])
    inside = torch.zeros(32, 32, dtype=torch.bool)
    inside[4:12, 18:26] = True
    paper = PerturbationParameters(perturbation_iterations=100, perturbation_mask_scale=4,
                                   perturbation_mask_blur_sigma=1.0)
    sparse = PerturbationParameters(**{**paper.as_dict(), "perturbation_l1": 0.05})
    for settings, outside_at_most in ((paper, 0.75), (sparse, 0.3)):
        maps = perturbation(RegionModel(), images, targets, context(3), parameters=settings).maps
        for m in maps:
            assert m[inside].mean() > 0.97 and m[~inside].mean() < outside_at_most
            assert m[6:10, 20:24].min() > 0.97  # the region's middle is deleted


def test_a_batch_gives_the_maps_of_its_images_alone_and_the_seed_decides():
    model = small_cnn(2)
    torch.manual_seed(3)
    images = torch.randn(3, 3, 16, 20)
    targets = torch.tensor([0, 2, 1])
    batch = perturbation(model, images, targets, context(11), parameters=SMALL).maps
    for index in range(3):
        alone = perturbation(model, images[index:index + 1], targets[index:index + 1], context(11), parameters=SMALL).maps
        torch.testing.assert_close(alone[0], batch[index], atol=1e-5, rtol=0)
    assert torch.equal(perturbation(model, images, targets, context(11), parameters=SMALL).maps, batch)
    assert not torch.equal(perturbation(model, images, targets, context(12), parameters=SMALL).maps, batch)
    assert batch.min() >= 0 and batch.max() <= 1 and (batch.flatten(1).std(dim=1) > 0.1).all()


def test_a_vision_transformer_and_the_model_left_as_it_was():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=2, num_heads=2,
                              embed_dim=32, num_classes=5).train()
    images = torch.randn(2, 3, 32, 32)
    targets = torch.tensor([1, 3])
    settings = PerturbationParameters(perturbation_iterations=8, perturbation_mask_scale=8, perturbation_blur_sigma=4.0)
    maps = perturbation(model, images, targets, context(), parameters=settings).maps
    assert maps.shape == (2, 32, 32) and maps.min() >= 0 and maps.max() <= 1 and (maps.flatten(1).std(dim=1) > 0).all()
    alone = perturbation(model, images[1:], targets[1:], context(), parameters=settings).maps
    torch.testing.assert_close(alone[0], maps[1], atol=1e-5, rtol=0)
    assert model.training and all(p.requires_grad and p.grad is None for p in model.parameters())


def test_the_parameters_and_the_batch_are_checked():
    assert METHODS["perturbation"].parameters is PerturbationParameters and METHODS["perturbation"].backward
    defaults = PerturbationParameters()
    assert (defaults.perturbation_iterations, defaults.perturbation_lr, defaults.perturbation_l1,
            defaults.perturbation_tv, defaults.perturbation_tv_beta, defaults.perturbation_blur_sigma,
            defaults.perturbation_mask_scale, defaults.perturbation_mask_blur_sigma, defaults.perturbation_jitter,
            defaults.perturbation_noise, defaults.perturbation_circle_init) == (300, 0.1, 1e-4, 1e-2, 3.0, 10.0, 8, 5.0,
                                                                                4, 0.0, True)
    cases = [("perturbation_iterations", 0, "a whole number from 1 to 100000"),
             ("perturbation_l1", -1.0, "a finite number >= 0"), ("perturbation_tv", math.nan, ">= 0"),
             ("perturbation_tv_beta", 0.5, "a number from 1 to 10"), ("perturbation_lr", 0, "> 0"),
             ("perturbation_jitter", 1.5, "a whole number from 0 to 1000"),
             ("perturbation_mask_scale", 0, "from 1 to 10000")]
    for name, value, expected in cases:
        with pytest.raises(ConfigError, match=rf"invalid perturbation parameter `{name}`: {name} = {value!r} .*{expected}"):
            PerturbationParameters(**{name: value})
    with pytest.raises(InputError, match=r"targets must be class indices \(B,\) = \(2,\)"):
        perturbation(small_cnn(), torch.zeros(2, 3, 8, 8), torch.zeros(3, dtype=torch.long), context())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gives_the_cpu_maps():
    model = small_cnn()
    torch.manual_seed(3)
    images, targets = torch.randn(2, 3, 16, 16), torch.tensor([0, 1])
    on_gpu = perturbation(model.cuda(), images.cuda(), targets.cuda(), context(), parameters=SMALL).maps
    assert on_gpu.device.type == "cuda"
    on_cpu = perturbation(model.cpu(), images, targets, context(), parameters=SMALL).maps
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, atol=1e-4, rtol=0)


# ------------------------------------------------------------------ through the command line

FAST = ["--perturbation-iterations", 6, "--perturbation-mask-scale", 4, "--perturbation-blur-sigma", 3,
        "--perturbation-l1", 0.05]


def test_explain_method_perturbation_through_the_cli(fovex, tmp_path):
    pictures = write_images(tmp_path / "pictures", 3, size=36)
    out = tmp_path / "perturbation.h5"
    # the toy ViT: the toy CNN's random weights barely move with blur, its maps are blank
    result = fovex("explain", "--model", factory("tiny_vit"), "--weights", "random", "--images", pictures,
                   "--out", out, "--image-size", 32, "--batch-size", 2, "--method", "perturbation", *FAST,
                   "--no-perturbation-circle-init")
    assert result.code == 0, result
    content = read_attributions(out)
    assert content["maps"].shape == (3, 32, 32) and content["maps"].dtype == np.float32 and "fixations" not in content
    assert content["attrs"]["method"] == "perturbation"
    assert '"perturbation_iterations": 6' in content["attrs"]["parameters"]
    assert '"perturbation_circle_init": false' in content["attrs"]["parameters"]
    assert (content["maps"].reshape(3, -1).std(axis=1) > 0.1).all()
    loaded = load_model(factory("tiny_vit"), weights="random", seed=42, device="cpu", image_size=32)
    images = load_images(discover_stimuli(pictures), loaded)
    direct = perturbation(loaded.module, images, torch.from_numpy(content["targets"]), context(42),
                          parameters=PerturbationParameters(perturbation_iterations=6, perturbation_mask_scale=4,
                                                            perturbation_blur_sigma=3.0, perturbation_l1=0.05,
                                                            perturbation_circle_init=False))
    np.testing.assert_allclose(content["maps"], direct.maps.numpy(), atol=1e-5)

