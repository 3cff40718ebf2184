"""`precision`: RISE and the perturbation metrics under bf16 autocast stay within their
documented tolerance of float32 (README); fp16 is refused on a CPU."""
from __future__ import annotations

import pytest
import torch

from net2brain_fovex.errors import ConfigError
from net2brain_fovex.evaluate.faithfulness import confidence_change, deletion_insertion
from net2brain_fovex.explain.base import Context, autocast
from net2brain_fovex.explain.methods.rise import rise
from net2brain_fovex.explain.registry import RISEParameters
from tests.toy_models import TinyCNN


def setting():
    torch.manual_seed(12)
    model, images = TinyCNN().eval(), torch.randn(3, 3, 32, 32)
    return model, images, model(images).argmax(1)


def test_autocast_runs_the_model_in_the_chosen_precision_only():
    model, images, _ = setting()
    with autocast("bf16", "cpu"):
        assert model(images).dtype == torch.bfloat16
    with autocast("fp32", "cpu"):
        assert model(images).dtype == torch.float32


def test_rise_in_bf16_is_within_its_tolerance():
    model, images, targets = setting()
    context = Context(black=torch.zeros(3), seed=3)
    full = rise(model, images, targets, context, parameters=RISEParameters(masks=200, grid=4, mask_batch=50)).maps
    half = rise(model, images, targets, context, parameters=RISEParameters(masks=200, grid=4, mask_batch=50,
                                                                           precision="bf16")).maps
    assert half.dtype == torch.float32 and not torch.equal(full, half)  # autocast ran
    assert (full - half).abs().max() < 0.02  # README: max 0.007 on the demo task, correlation > 0.9999
    centred = [m.flatten(1) - m.flatten(1).mean(1, keepdim=True) for m in (full, half)]
    assert ((centred[0] * centred[1]).sum(1) / (centred[0].norm(dim=1) * centred[1].norm(dim=1))).min() > 0.99


def test_perturbation_metrics_in_bf16_are_within_their_tolerance():
    model, images, targets = setting()
    maps = torch.rand(3, 32, 32)
    full = deletion_insertion(model, images, maps, targets, step=16)
    half = deletion_insertion(model, images, maps, targets, step=16, precision="bf16")
    for kind in ("deletion", "insertion"):
        assert (full[kind] - half[kind]).abs().max() < 0.01  # README: 0.006 on the demo task
        assert half[f"{kind}_curve"].dtype == torch.float32
    drop = confidence_change(model, images, maps, targets, black=torch.zeros(3))["avg_drop"]
    drop_half = confidence_change(model, images, maps, targets, black=torch.zeros(3), precision="bf16")["avg_drop"]
    assert (drop - drop_half).abs().max() < 2  # percentage points


@pytest.mark.parametrize("call", [
    lambda m, x, t: rise(m, x, t, Context(black=torch.zeros(3)), parameters=RISEParameters(masks=4, precision="fp16")),
    lambda m, x, t: deletion_insertion(m, x, torch.rand(3, 32, 32), t, precision="fp16"),
    lambda m, x, t: confidence_change(m, x, torch.rand(3, 32, 32), t, black=torch.zeros(3), precision="fp16"),
], ids=["rise", "deletion_insertion", "confidence_change"])
def test_fp16_is_refused_on_a_cpu(call):
    model, images, targets = setting()
    with pytest.raises(ConfigError, match="precision=fp16.*GPUs.*precision=bf16"):
        call(model, images, targets)


def test_an_unknown_precision_is_refused():
    model, images, targets = setting()
    with pytest.raises(ConfigError, match="`precision` 'fp64' is not a choice; expected one of fp32, bf16, fp16"):
        deletion_insertion(model, images, torch.rand(3, 32, 32), targets, precision="fp64")
    with pytest.raises(ConfigError, match="invalid RISE parameter `precision`.*one of fp32, bf16, fp16"):
        RISEParameters(precision="half")
