"""Benchmark: FovEx's cost against RISE and Grad-CAM, and its maps on the demo's task.

Cost: resnet18 with random weights on 224 x 224 random normalised images, CPU. Time
per image of FovEx at batch 1 (one image, patience 0, best of 2) and at batch 16 (16
images) with patience 0 (the reference: 20 steps for every fixation) and with the
recommended patience, of RISE with 4000 masks (one image, 100 masked images per forward
pass) and of Grad-CAM. FovEx at patience 0 and batch 16 is timed on 2 of its 10
fixations and scaled by its passes (201 against 41): at patience 0 every fixation runs
the same 20 steps on all 16 images.

Quality: the tiny CNN of `fovex demo` trained on 4000 images of its localisation task,
and 200 held-out images. On the images it classifies correctly: the pointing-game hit
rate, the energy inside the box (EBPG), the first fixation's hit rate and the deletion
and insertion areas of FovEx (patience 0 and the recommended patience, each over three
seeds: mean and seed-to-seed standard deviation), Grad-CAM, RISE (4000 masks) and
random CAM. Run with:

    pytest tests/benchmarks/test_fovex_speed.py -m benchmark -s
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from net2brain_fovex.demo.localisation_task import make_localisation_set, to_tensor, train_tiny_cnn
from net2brain_fovex.evaluate.faithfulness import deletion_insertion
from net2brain_fovex.evaluate.localisation import energy_in_box, pointing_game, points_in_boxes
from net2brain_fovex.explain.attributions import explain_batch
from net2brain_fovex.explain.base import Context
from net2brain_fovex.explain.methods.cam import target_layer
from net2brain_fovex.explain.registry import FovExParameters
from net2brain_fovex.models.loading import load_model
from net2brain_fovex.models.preprocessing import IMAGENET_MEAN, IMAGENET_STD

pytestmark = pytest.mark.benchmark

BATCH, SEEDS = 16, (0, 1, 2)
# FovEx's maps do not depend on the batch; on the tiny CNN its steps are mostly per-call
# overhead, and 64 images a batch halve the demo task's time
DEMO_BATCH = 64
DEFAULT = FovExParameters().patience
# Among patience 8, 10 and 12 (the demo task, 4, 8 and 5 seeds against 8 at patience 0),
# 12 gives up the least quality (insertion -0.002, EBPG -0.5 points; hit rate and
# deletion unchanged within noise) and still clears 10x against RISE-4000 at batch 16;
# patience 5 or less loses hit rate (one seed: 76, 66, 57 % at 5, 3, 2 against 79 %).
RECOMMENDED = 12
# Two seed-to-seed standard deviations of one FovEx run at patience 0 on the demo task
# (measured over 8 seeds, 194 correctly classified images: hit rate 1.5 points, deletion
# 0.0064, insertion 0.0017): a setting whose mean stays within them is no worse than
# rerunning the reference with another seed.
NOISE = {"hit": 0.03, "deletion": 0.013, "insertion": 0.0035}


class Counting(torch.nn.Module):
    """The model, counting the images it is run on."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.images = model, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.images += len(x)
        return self.model(x)


def label(text: str, patience: int) -> str:
    """`text` and the patience, marked when it is the default."""
    return f"{text} {patience}" + (" (default)" if patience == DEFAULT else "")


def explained(method, model, images, context, parameters, batch):
    """(maps, fixations or None, targets) of every image, explained `batch` at a time."""
    parts = [explain_batch(model, images[s:s + batch], method=method, context=context, parameters=parameters) for s in range(0, len(images), batch)]
    maps = torch.cat([a.maps for a, _, _ in parts])
    fixations = torch.cat([a.fixations for a, _, _ in parts]) if parts[0][0].fixations is not None else None
    return maps, fixations, torch.cat([t for _, t, _ in parts])


def test_fovex_cost_against_rise_and_gradcam():
    torch.manual_seed(0)
    counted = Counting(load_model("resnet18", weights="random", device="cpu").module)
    images = torch.randn(BATCH, 3, 224, 224)
    context = Context(black=-torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD), seed=SEEDS[0])
    gradcam_parameters = {"layer": target_layer(counted, (1, 3, 224, 224))}

    def per_image(method, count, parameters, repeats=1):
        """(best seconds per image, passes per image) explaining the first `count` images."""
        times = []
        for _ in range(repeats):
            counted.images = 0
            start = time.perf_counter()
            explain_batch(counted, images[:count], method=method, context=context, parameters=parameters)
            times.append((time.perf_counter() - start) / count)
        return min(times), counted.images / count

    explain_batch(counted, images[:1], method="gradcam", context=context, parameters=gradcam_parameters)  # warm-up
    t_gradcam, n_gradcam = per_image("gradcam", 1, gradcam_parameters, repeats=3)
    t_b1, n_b1 = per_image("fovex", 1, {"patience": 0}, repeats=2)
    t_two, n_two = per_image("fovex", BATCH, {"patience": 0, "scanpath_length": 2}, repeats=2)
    n_b16 = 1 + 10 * (n_two - 1) / 2  # one prediction pass, then 20 steps per fixation
    t_b16 = t_two * n_b16 / n_two
    t_fast, n_fast = per_image("fovex", BATCH, {"patience": RECOMMENDED})
    t_rise, n_rise = per_image("rise", 1, {"masks": 4000, "mask_batch": 100})
    print(
        f"\nFovEx cost: resnet18 (random weights), 224 px, CPU x{torch.get_num_threads()}, per image "
        f"(passes: forward, or forward and backward, including the prediction)\n"
        f"  {'method':<42} {'seconds':>8} {'passes':>7} {'RISE / it':>10}\n"
        f"  {'Grad-CAM':<42} {t_gradcam:8.3f} {n_gradcam:7.0f} {t_rise / t_gradcam:9.0f}x\n"
        f"  {label('FovEx batch 1, patience', 0):<42} {t_b1:8.2f} {n_b1:7.0f} {t_rise / t_b1:9.1f}x\n"
        f"  {label('FovEx batch 16, patience', 0) + ' (*)':<42} {t_b16:8.2f} {n_b16:7.0f} {t_rise / t_b16:9.1f}x\n"
        f"  {label('FovEx batch 16, patience', RECOMMENDED):<42} {t_fast:8.2f} {n_fast:7.1f} {t_rise / t_fast:9.1f}x\n"
        f"  {'RISE, 4000 masks':<42} {t_rise:8.2f} {n_rise:7.0f} {1:9.1f}x\n"
        f"  (*) 2 of 10 fixations timed (best of 2), scaled by the passes\n"
        f"  at patience 0, batch 16 against batch 1: {t_b1 / t_b16:.2f}x faster per image; "
        f"at batch 16, patience {RECOMMENDED} against 0: {t_b16 / t_fast:.2f}x\n"
        f"  patience {RECOMMENDED} at batch 16: {t_rise / t_fast:.1f}x cheaper than RISE-4000 (target >= 10x)"
    )
    assert t_rise / t_fast >= 10


@pytest.fixture(scope="module")
def demo_task():
    model = train_tiny_cnn(make_localisation_set(4000, 64, seed=0))
    return model, make_localisation_set(200, 64, seed=1)


def test_fovex_maps_on_the_demo_task(demo_task):
    model, held_out = demo_task
    counted = Counting(model)
    images, labels, boxes = to_tensor(held_out.images), torch.from_numpy(held_out.labels), torch.from_numpy(held_out.boxes)
    black = -torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD)
    layer = target_layer(counted, (1, 3, 64, 64))
    runs = {label("FovEx patience", p): ("fovex", {"patience": p}, SEEDS, DEMO_BATCH) for p in (0, RECOMMENDED)}
    runs.update({
        "Grad-CAM": ("gradcam", {"layer": layer}, SEEDS[:1], DEMO_BATCH),
        # RISE as `fovex explain` runs it: 16 images, 100 masked images per pass
        "RISE, 4000 masks": ("rise", {"masks": 4000, "mask_batch": 100}, SEEDS[:1], BATCH),
        "random CAM": ("random", {"layer": layer}, SEEDS[:1], DEMO_BATCH),
    })
    scores = {}
    for name, (method, parameters, seeds, batch) in runs.items():
        per_seed = []
        for seed in seeds:
            counted.images = 0
            context = Context(black=black, seed=seed)
            maps, fixations, targets = explained(method, counted, images, context, parameters, batch)
            correct = targets == labels
            curves = deletion_insertion(model, images[correct], maps[correct], targets[correct], substrate=black)
            first = points_in_boxes(fixations[:, 0], boxes)[correct].float().mean().item() if fixations is not None else np.nan
            per_seed.append({
                "hit": pointing_game(maps, boxes)[correct].float().mean().item(),
                "ebpg": energy_in_box(maps, boxes)[correct].mean().item(),
                "first": first,
                "deletion": curves["deletion"].mean().item(),
                "insertion": curves["insertion"].mean().item(),
                "passes": counted.images / len(images),
            })
        # a spread only where there are seeds to spread over
        scores[name] = {
            key: (np.mean(values), np.std(values) if len(values) > 1 else np.nan)
            for key in per_seed[0] if (values := [s[key] for s in per_seed])
        }

    def cell(row, key, scale=1.0, digits=1):
        mean, sd = row[key]
        if np.isnan(mean):
            return f"{'-':>8}".ljust(18)
        spread = "" if np.isnan(sd) else f" +- {sd * scale:.{digits}f}"
        return f"{mean * scale:8.{digits}f}{spread}".ljust(18)

    lines = [
        f"\nFovEx maps on the demo task: tiny CNN, {len(images)} held-out 64 px images, {int(correct.sum())} classified "
        f"correctly and scored; FovEx over seeds {SEEDS} (mean +- sd), the others seed {SEEDS[0]}",
        f"  {'method':<30}" + "".join(f"{h:>10}".ljust(18) for h in ("hit rate %", "EBPG %", "1st fix. %", "deletion", "insertion"))
        + "passes",
    ]
    for name, row in scores.items():
        lines.append(
            f"  {name:<30}{cell(row, 'hit', 100)}{cell(row, 'ebpg')}{cell(row, 'first', 100)}"
            f"{cell(row, 'deletion', digits=4)}{cell(row, 'insertion', digits=4)}{row['passes'][0]:6.0f}"
        )
    print("\n".join(lines))
    plain, patient = scores[label("FovEx patience", 0)], scores[label("FovEx patience", RECOMMENDED)]
    assert patient["hit"][0] >= 0.8
    assert patient["hit"][0] >= plain["hit"][0] - NOISE["hit"]
    assert patient["deletion"][0] <= plain["deletion"][0] + NOISE["deletion"]
    assert patient["insertion"][0] >= plain["insertion"][0] - NOISE["insertion"]
