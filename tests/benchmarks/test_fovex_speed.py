"""Benchmark: FovEx's cost against RISE and Grad-CAM, and its maps on the demo's task.

Cost (`test_fovex_cost_against_rise_and_gradcam`): resnet18 with random weights on 224 x 224 random normalised images, CPU. Time
per image of FovEx at batch 1 (one image, best of 2) and at batch 16 (16 images) with
the defaults (the reference's 20 steps for every fixation), with the adaptive stop
(`converge`), with the recommended patience and in bf16, of RISE with 4000 masks (one
image, 100 masked images per forward pass) and of Grad-CAM. FovEx at batch 16 is timed
on 2 of its 10 fixations and scaled by 5 (the fixations of random images through
random weights cost alike; the prediction pass and the blur, scaled with them, are about
3 % of it). Passes: the images run through the model per image, forward only or
forward and backward (FovEx takes a step's gradient only where the next step uses it).
`test_new_baselines_cost`: the other baselines and the CAM family on one image, against
Grad-CAM on the same network (resnet18, and ViT-B/16 for the attention methods).

Quality: the tiny CNN of `fovex demo` trained on 4000 images of its localisation task,
and 200 held-out images. On the images it classifies correctly: the pointing-game hit
rate, the energy inside the box (EBPG), the first fixation's hit rate and the deletion
and insertion areas of FovEx (defaults, the adaptive stop, the recommended patience and
bf16, each over three seeds: mean and seed-to-seed standard deviation), Grad-CAM, RISE
(4000 masks) and random CAM. Run with:

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
from net2brain_fovex.models.loading import load_model
from net2brain_fovex.models.preprocessing import IMAGENET_MEAN, IMAGENET_STD

pytestmark = pytest.mark.benchmark

BATCH, SEEDS = 16, (0, 1, 2)
# FovEx's maps do not depend on the batch; on the tiny CNN its steps are mostly per-call
# overhead, and 64 images a batch halve the demo task's time
DEMO_BATCH = 64
# Among patience 8, 10 and 12 (the demo task, 4, 8 and 5 seeds against 8 at patience 0),
# 12 gives up the least quality (insertion -0.002, EBPG -0.5 points; hit rate and
# deletion unchanged within noise) and still clears 10x against RISE-4000 at batch 16;
# patience 5 or less loses hit rate (one seed: 76, 66, 57 % at 5, 3, 2 against 79 %).
RECOMMENDED = 12
# The adaptive stop: a fixation's search ends once it has sampled 3 random restarts and its
# best loss is below a tenth (`converge_ratio`, its default) of the lowest a restart reached.
# Chosen on the demo task among 3 or 5 restarts and a ratio of 0.1 or 0.2 (seeds 0-2: 3
# and 0.1, hit rate -0.5 points at 79 % of the default's passes; 3 and 0.2, -0.9 at 73 %;
# seeds 1-2: 5 and 0.2, -0.8 at 81 %); patience 5 there (seed 0): -12 points at 55 %.
ADAPTIVE = {"converge": 3}
# Two seed-to-seed standard deviations of one FovEx run at patience 0 on the demo task
# (measured over 8 seeds, 194 correctly classified images: hit rate 1.5 points, deletion
# 0.0064, insertion 0.0017): a setting whose mean stays within them is no worse than
# rerunning the reference with another seed.
NOISE = {"hit": 0.03, "deletion": 0.013, "insertion": 0.0035}


class Counting(torch.nn.Module):
    """The model, counting the images it is run on, and those run with autograd (backward)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.images, self.backward = model, 0, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.images += len(x)
        self.backward += len(x) * torch.is_grad_enabled()
        return self.model(x)


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

    def per_image(method, count, parameters, repeats=1, scale=1):
        """(best seconds, forward-only passes, forward and backward passes) per image explaining
        the first `count` images; the time and the passes but the prediction's times `scale`."""
        times = []
        for _ in range(repeats):
            counted.images = counted.backward = 0
            start = time.perf_counter()
            explain_batch(counted, images[:count], method=method, context=context, parameters=parameters)
            times.append((time.perf_counter() - start) / count)
        passes = counted.images / count
        backward = counted.backward / count
        return min(times) * scale, 1 + (passes - backward - 1) * scale, backward * scale

    def fovex_batch(parameters):
        """FovEx at batch 16 on 2 of its 10 fixations, scaled by 5."""
        return per_image("fovex", BATCH, {**parameters, "scanpath_length": 2}, scale=5)

    explain_batch(counted, images[:1], method="gradcam", context=context, parameters=gradcam_parameters)  # warm-up
    # one row per method: (label, seconds per image, forward-only passes, forward and backward passes)
    rows = [
        ("Grad-CAM", *per_image("gradcam", 1, gradcam_parameters, repeats=3)),
        ("FovEx batch 1 (default)", *per_image("fovex", 1, {}, repeats=2)),
        ("FovEx batch 16 (default) (*)", *fovex_batch({})),
        (f"FovEx batch 16, converge {ADAPTIVE['converge']} (*)", *fovex_batch(ADAPTIVE)),
        (f"FovEx batch 16, patience {RECOMMENDED} (*)", *fovex_batch({"patience": RECOMMENDED})),
        ("FovEx batch 16, bf16 (*)", *fovex_batch({"precision": "bf16"})),
        ("RISE, 4000 masks", *per_image("rise", 1, {"masks": 4000, "mask_batch": 100})),
    ]
    seconds = {label: t for label, t, _, _ in rows}
    rise = seconds["RISE, 4000 masks"]
    lines = [
        f"\nFovEx cost: resnet18 (random weights), 224 px, CPU x{torch.get_num_threads()}, per image "
        f"(passes: images through the model, forward only / forward and backward, the prediction included)",
        f"  {'method':<42} {'seconds':>8} {'forward':>8} {'+backward':>9} {'RISE / it':>10}",
        *(f"  {label:<42} {t:8.3f} {forward:8.1f} {backward:9.1f} {rise / t:9.1f}x" for label, t, forward, backward in rows),
        "  (*) 2 of 10 fixations timed, scaled by 5",
    ]
    default, adaptive = seconds["FovEx batch 16 (default) (*)"], seconds[rows[3][0]]
    lines.append(f"  at batch 16: the default {rise / default:.1f}x cheaper than RISE-4000 (target >= 20x), the adaptive stop "
                 f"{rise / adaptive:.1f}x; batch 16 against batch 1: {seconds[rows[1][0]] / default:.2f}x faster per image")
    print("\n".join(lines))
    assert rise / default >= 20


def test_new_baselines_cost():
    """The cost per image of the paper's other baselines and the CAM family, beside Grad-CAM
    on the same network: on resnet18 (224 px, one image) and, for the attention methods, on
    ViT-B/16 (random weights, 224 px, one image). RISE-4000 on resnet18 is in the table above."""
    pytest.importorskip("pytorch_grad_cam")
    torch.manual_seed(0)
    black = -torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD)

    def table(name, module, prefix_tokens, methods):
        counted = Counting(module)
        image = torch.randn(1, 3, 224, 224)
        context = Context(black=black, prefix_tokens=prefix_tokens, seed=SEEDS[0])
        layer = {"layer": target_layer(counted, (1, 3, 224, 224), prefix_tokens)}
        rows = []
        for method, parameters in methods:
            parameters = {**layer, **parameters} if "layer" in parameters else parameters
            explain_batch(counted, image, method=method, context=context, parameters=parameters)  # warm-up
            counted.images = counted.backward = 0
            start = time.perf_counter()
            explain_batch(counted, image, method=method, context=context, parameters=parameters)
            rows.append((method, time.perf_counter() - start, counted.images - counted.backward, counted.backward))
        gradcam = rows[0][1]
        return [f"  {name}: {'method':<20} {'seconds':>8} {'forward':>8} {'+backward':>9} {'/ Grad-CAM':>11}",
                *(f"  {'':<{len(name) + 1}} {m:<20} {t:8.3f} {f:8.0f} {b:9.0f} {t / gradcam:10.1f}x"
                  for m, t, f, b in rows)]

    cams = [(f"cam:{name}", {"layer": None}) for name in
            ("xgradcam", "layercam", "hirescam", "eigencam", "scorecam", "ablationcam")]
    resnet = table("resnet18", load_model("resnet18", weights="random", device="cpu").module, 0,
                   [("gradcam", {"layer": None}), ("gradcam++", {"layer": None}), *cams, ("cam:fullgrad", {}),
                    ("perturbation", {})])
    vit = load_model("vit_base_patch16_224", weights="random", device="cpu")
    transformer = table("ViT-B/16", vit.module, vit.prefix_tokens,
                        [("gradcam", {"layer": None}), ("gae", {}), ("rollout", {}), ("perturbation", {})])
    print("\n".join([f"\nBaselines' cost: one 224 px image, random weights, CPU x{torch.get_num_threads()} "
                      "(passes: images through the model, forward only / forward and backward, the prediction "
                      "included)", *resnet, *transformer]))


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
    runs = {
        "FovEx (default)": ("fovex", {}, SEEDS, DEMO_BATCH),
        f"FovEx converge {ADAPTIVE['converge']}": ("fovex", ADAPTIVE, SEEDS, DEMO_BATCH),
        f"FovEx patience {RECOMMENDED}": ("fovex", {"patience": RECOMMENDED}, SEEDS, DEMO_BATCH),
        "FovEx bf16": ("fovex", {"precision": "bf16"}, SEEDS, DEMO_BATCH),
    }
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
            start = time.perf_counter()
            context = Context(black=black, seed=seed)
            maps, fixations, targets = explained(method, counted, images, context, parameters, batch)
            seconds = time.perf_counter() - start
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
                "seconds": seconds,
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
        + f"{'passes':>6}{'seconds':>9}",
    ]
    for name, row in scores.items():
        lines.append(
            f"  {name:<30}{cell(row, 'hit', 100)}{cell(row, 'ebpg')}{cell(row, 'first', 100)}"
            f"{cell(row, 'deletion', digits=4)}{cell(row, 'insertion', digits=4)}{row['passes'][0]:6.0f}"
            f"{row['seconds'][0]:9.1f}"
        )
    print("\n".join(lines))
    plain = scores["FovEx (default)"]
    for name in (f"FovEx converge {ADAPTIVE['converge']}", f"FovEx patience {RECOMMENDED}", "FovEx bf16"):
        other = scores[name]
        assert other["hit"][0] >= 0.8, name
        assert other["hit"][0] >= plain["hit"][0] - NOISE["hit"], name
        assert other["deletion"][0] <= plain["deletion"][0] + NOISE["deletion"], name
        assert other["insertion"][0] >= plain["insertion"][0] - NOISE["insertion"], name
    assert scores[f"FovEx converge {ADAPTIVE['converge']}"]["passes"][0] < 0.9 * plain["passes"][0]
