"""What every attribution method shares: its inputs, its result, and the model's target.

A method is a function

    explain(model, images, targets, context, **parameters) -> Attribution

with `images` the model's normalised input batch (B, 3, H, W), `targets` the class
index per image (B,), and `context` what a method may need besides (the pixel value of
black in normalised space, the model's prefix tokens, a seed). It returns maps in
[0, 1] at the input resolution, min-max normalised per image (a constant map is all
zeros). Methods run with gradients on the inputs only: the model's parameters are not
touched and are left as they were.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError, InputError
from .registry import PRECISIONS

__all__ = ["Context", "Attribution", "normalise_maps", "frozen", "channels_last", "autocast", "check_precision",
           "class_probabilities",
           "logits_of", "check_batch"]


@dataclass
class Context:
    """What a method may need besides the model and the batch.

    Attributes
    ----------
    black : tensor (3,)
        The normalised value of a black pixel, (0 - mean) / std, per channel: what
        "removing" a pixel means for perturbation methods.
    prefix_tokens : int
        Class / distillation tokens ahead of a transformer's patch tokens.
    seed : int
        Seed of everything random in the method (deterministic results).
    """

    black: torch.Tensor
    prefix_tokens: int = 0
    seed: int = 0


@dataclass
class Attribution:
    """Maps (B, H, W) float32 in [0, 1]; FovEx adds fixations (B, k, 2) in pixels (row, col)."""

    maps: torch.Tensor
    fixations: torch.Tensor | None = None


def normalise_maps(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each map of (B, H, W) to [0, 1]; a constant map becomes zeros."""
    flat = maps.flatten(1)
    low, high = flat.min(dim=1).values, flat.max(dim=1).values
    span = (high - low).clamp(min=torch.finfo(maps.dtype).tiny)
    scaled = (flat - low[:, None]) / span[:, None]
    return torch.where((high > low)[:, None], scaled, torch.zeros_like(scaled)).view_as(maps)


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Evaluation mode and no parameter gradients inside the block; both restored after."""
    training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for parameter, _ in flags:
        parameter.requires_grad_(False)
    try:
        yield model
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)
        model.train(training)


@contextlib.contextmanager
def channels_last(model: nn.Module) -> Iterator[nn.Module]:
    """The model's 4D weights in channels-last layout inside the block, restored after.

    Convolutions on channels-last inputs and weights run about 1.7x faster on CPUs
    (oneDNN) and use tensor cores on GPUs; the values are the same up to rounding.
    """
    originals = {parameter: parameter.data for parameter in model.parameters() if parameter.dim() == 4}
    for parameter, data in originals.items():
        parameter.data = data.contiguous(memory_format=torch.channels_last)
    try:
        yield model
    finally:
        for parameter, data in originals.items():
            parameter.data = data


_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str, device: torch.device | str | None = None) -> None:
    """A `ConfigError` for a precision that is not one of `PRECISIONS`, or fp16 on a CPU
    `device`: torch runs float16 there without fast kernels (5.4x slower than float32 for
    resnet18, measured), so the choice is a mistake."""
    if precision not in PRECISIONS:
        raise ConfigError(f"`precision` {precision!r} is not a choice; expected one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device is not None and torch.device(device).type == "cpu":
        raise ConfigError("`precision=fp16` is for GPUs: on a CPU float16 runs 5x slower than float32; use "
                          "`precision=bf16` there (or fp32)")


def autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """The model's forward passes inside the block under `torch.autocast` to bfloat16
    ("bf16") or float16 ("fp16") on `device`'s type; "fp32": unchanged."""
    if precision == "fp32":
        return contextlib.nullcontext()
    check_precision(precision, device)
    return torch.autocast(torch.device(device).type, dtype=_AUTOCAST[precision])


def class_probabilities(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Softmax probabilities (B, classes) of the model's logits, without gradients."""
    with torch.no_grad():
        return torch.softmax(logits_of(model(images)), dim=1)


def logits_of(output) -> torch.Tensor:
    """The logits of a model output (a tensor, the first tensor of a tuple, or the
    `logits` of a mapping: a transformers classifier's output)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping) and isinstance(output.get("logits"), torch.Tensor):
        return output["logits"]
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(f"the model returned {type(output).__name__}, not logits")


def check_batch(images: torch.Tensor, targets: torch.Tensor) -> None:
    """Images (B, C, H, W) and one integer target per image, or an `InputError`."""
    if images.dim() != 4:
        raise InputError(f"images must be a batch (B, C, H, W), got shape {tuple(images.shape)}")
    if targets.shape != (len(images),) or targets.is_floating_point():
        raise InputError(
            f"targets must be class indices (B,) = ({len(images)},), got {targets.dtype} {tuple(targets.shape)}"
        )
