"""Benchmark: batched deletion and insertion against a per-image, per-step loop.

64 random normalised 224 x 224 images, resnet18 with random weights (seed 0), smooth
random maps (7 x 7 noise upsampled, like a CAM), the model's own top-1 class; 224
pixels per step, so 225 points per curve and 28,800 forward passes for each
implementation. The loop is the RISE reference protocol written as users write it:
per image, per curve, one image at a time through the model, changing `step` pixels
after each pass. Both must give the same curves (to float rounding); the batched one
must be at least 3x faster on a GPU. On a CPU the saving is bounded by what batching
can give there: a few cores are already busy with one 224 px image, so batched passes
are barely cheaper per image, and the channels-last layout is what remains (about
1.7x on a 2-core machine); the CPU run asserts 1.5x. Run with:

    pytest tests/benchmarks/test_evaluate_speed.py -m benchmark -s
    BENCH_DEVICE=cuda pytest tests/benchmarks/test_evaluate_speed.py -m benchmark -s
"""
from __future__ import annotations

import math
import os
import time

import pytest
import torch
import torchvision
from torchvision.transforms.functional import gaussian_blur

from net2brain_fovex.evaluate.faithfulness import deletion_insertion

pytestmark = pytest.mark.benchmark

IMAGES, SIZE, STEP = 64, 224, 224
DEVICE = os.environ.get("BENCH_DEVICE", "cpu")
TARGET = 3.0 if DEVICE.startswith("cuda") else 1.5


def loop_reference(model, images, maps, targets, step):
    """Per image and curve: one forward pass per step, `step` pixels changed after each."""
    pixels = SIZE * SIZE
    steps = math.ceil(pixels / step)
    curves = torch.empty(2, len(images), steps + 1)
    with torch.no_grad():
        for b in range(len(images)):
            order = torch.sort(maps[b].flatten(), descending=True, stable=True).indices
            blurred = gaussian_blur(images[b:b + 1], [11, 11], [5.0, 5.0])[0]
            for kind, (start, finish) in enumerate([(images[b].clone(), torch.zeros_like(images[b])),
                                                    (blurred.clone(), images[b])]):
                start, finish = start.view(3, -1), finish.view(3, -1)
                for i in range(steps + 1):
                    probabilities = torch.softmax(model(start.view(1, 3, SIZE, SIZE)), dim=1)
                    curves[kind, b, i] = probabilities[0, targets[b]]
                    changed = order[i * step:(i + 1) * step]
                    start[:, changed] = finish[:, changed]
    return curves


def synchronise():
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


def test_batched_deletion_insertion_against_a_loop():
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval().to(DEVICE)
    images = torch.randn(IMAGES, 3, SIZE, SIZE, device=DEVICE)
    maps = torch.nn.functional.interpolate(torch.rand(IMAGES, 1, 7, 7, device=DEVICE), size=(SIZE, SIZE),
                                           mode="bilinear", align_corners=False)[:, 0]
    with torch.no_grad():
        targets = model(images).argmax(dim=1)

    deletion_insertion(model, images[:2], maps[:2], targets[:2], step=STEP * 8)  # warm-up
    synchronise()
    start = time.perf_counter()
    result = deletion_insertion(model, images, maps, targets, step=STEP)
    synchronise()
    t_batched = time.perf_counter() - start

    start = time.perf_counter()
    reference = loop_reference(model, images, maps, targets, STEP)
    synchronise()
    t_loop = time.perf_counter() - start

    difference = max((result["deletion_curve"].cpu() - reference[0]).abs().max().item(),
                     (result["insertion_curve"].cpu() - reference[1]).abs().max().item())
    ratio = t_loop / t_batched
    device = torch.cuda.get_device_name() if DEVICE.startswith("cuda") else f"CPU, {torch.get_num_threads()} threads"
    print(f"\ndeletion + insertion, {IMAGES} images at {SIZE} px, resnet18, {device}, "
          f"{result['deletion_curve'].shape[1]} points per curve:")
    print(f"  batched        {t_batched:8.1f} s ({t_batched / IMAGES * 1000:6.0f} ms per image)")
    print(f"  per-step loop  {t_loop:8.1f} s ({t_loop / IMAGES * 1000:6.0f} ms per image)")
    print(f"  batched is {ratio:.2f}x faster (target {TARGET}x); largest curve difference {difference:.2e}")
    assert difference < 1e-4
    assert ratio >= TARGET
