"""Reading a vision transformer's attention: what GAE and attention rollout share.

Both methods walk the blocks in order with each block's softmax attention A
(B, heads, T, T) over its T tokens, the prefix tokens first (the class token at 0,
`context.prefix_tokens` of them), and read the class token's row of their result over
the patch tokens: reshaped to the g x g patch grid, upsampled bilinearly to the input
size and min-max normalised per image, as the CAM methods' maps are.

`read_attentions` reads A from two kinds of model:

* timm: every module with a boolean `fused_attn` and an `attn_drop` submodule, the
  self-attention of timm's ViT, DeiT, BEiT, EVA and their relatives. Inside the read the
  flags are off, so each module computes softmax(q k^T / sqrt(d)) itself rather than in
  a fused scaled_dot_product_attention that never materialises it, and passes it
  through `attn_drop` (the identity in evaluation mode); a forward hook records the
  dropout's output, the matrix that multiplies the values. The flags are restored and
  the hooks removed on exit.
* transformers: a model whose attention is switchable (`set_attn_implementation`: the
  ViT, DeiT, DINOv2, ... classifiers), run with eager attention (its own
  implementation restored after) and `output_attentions=True`; its `attentions` are the
  matrices that multiply the values.

Any other model (a CNN, torchvision's ViT, whose `nn.MultiheadAttention` does not hand
out the matrix it uses) is refused (`ModelError`), and so is a transformer whose head
does not read a class token (no prefix token, timm's `global_pool` other than `token`,
transformers' `use_mean_pooling`: BEiT's classifiers), or whose attention is not global
self-attention over a class token and a square grid of patch tokens (windowed, pooled or
class attention: Swin, PVT, XCiT, CaiT).
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import nn

from ...errors import ModelError
from ..base import Attribution, Context, logits_of
from .cam import weighted_maps

__all__ = ["SUPPORTED", "check_attention_model", "read_attentions", "class_token_maps"]

SUPPORTED = ("vision transformers whose head reads the class token (timm ViT, DeiT, and BEiT / EVA with "
             "global_pool='token'; transformers ViT, DeiT, DINOv2 classifiers)")


def check_attention_model(model: nn.Module, context: Context, method: str) -> None:
    """`ModelError` unless the model's attention can be read and its head reads a class token.

    Parameters
    ----------
    model : torch.nn.Module
    context : Context
        Its `prefix_tokens`: the class token is the first of them.
    method : str
        The method's name, for the message.
    """
    name = type(model).__name__
    if not _timm_attention(model) and not _switchable(model):
        raise ModelError(f"`method={method}` explains {SUPPORTED}; {name} has no self-attention it can read; "
                         "choose another method (gradcam, rise, fovex)")
    if context.prefix_tokens < 1:
        raise ModelError(f"`method={method}` reads the class token's row of the attention, and {name} has no class "
                         "token; choose another method (gradcam, rise, fovex)")
    pool = getattr(model, "global_pool", None)  # timm's
    pool = "mean" if getattr(getattr(model, "config", None), "use_mean_pooling", False) else pool  # transformers'
    if isinstance(pool, str) and pool != "token":
        setting = "use_mean_pooling=True" if pool == "mean" else f"global_pool={pool!r}"
        raise ModelError(f"`method={method}` reads the class token's row of the attention, and the head of {name} "
                         f"pools the tokens ({setting}) instead of reading the class token; "
                         "choose another method (gradcam, rise, fovex)")


def read_attentions(
    model: nn.Module, images: torch.Tensor, context: Context, method: str
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Every block's attention and the logits of one forward pass (module docstring).

    Parameters
    ----------
    model : torch.nn.Module
        Checked by `check_attention_model`; run as it is (the caller sets evaluation
        mode and gradients).
    images : tensor (B, 3, H, W)
    context : Context
        Its `prefix_tokens`, for the check of the token grid.
    method : str
        The method's name, for the messages.

    Returns
    -------
    attentions : list of tensor (B, heads, T, T)
        In execution order, in the autograd graph when gradients are on.
    logits : tensor (B, classes)

    Raises
    ------
    ModelError
        An attention that is not (B, heads, T, T) over the same T tokens, a class token
        and a square grid of patch tokens.
    """
    modules = _timm_attention(model)
    if modules:
        with _unfused(modules) as recorded:
            logits = logits_of(model(images))
        places, attentions = [name for name, _ in recorded], [tensor for _, tensor in recorded]
    else:
        with _eager(model):
            output = model(pixel_values=images, output_attentions=True)
        attentions = [tensor for tensor in (getattr(output, "attentions", None) or ()) if tensor is not None]
        places, logits = [f"layer {index}" for index in range(len(attentions))], logits_of(output)
    _check_grid(model, attentions, places, len(images), context.prefix_tokens, method)
    return attentions, logits


def class_token_maps(relevance: torch.Tensor, images: torch.Tensor, prefix_tokens: int) -> Attribution:
    """The class token's row of R (B, T, T) over the patch tokens as maps (B, H, W): the
    g x g grid upsampled bilinearly to the images' size and normalised."""
    row = relevance[:, 0, prefix_tokens:]
    side = math.isqrt(row.shape[1])
    # one channel of weight 1: the CAM methods' upsampling and normalisation
    return weighted_maps(row.reshape(len(row), 1, side, side), row.new_ones(len(row), 1), images)


# ------------------------------------------------------------------ helpers
def _timm_attention(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """timm's attention modules: a boolean `fused_attn` and an `attn_drop` after the softmax."""
    return [(name, module) for name, module in model.named_modules()
            if isinstance(getattr(module, "fused_attn", None), bool)
            and isinstance(getattr(module, "attn_drop", None), nn.Module)]


def _switchable(model: nn.Module) -> bool:
    """A transformers model whose attention implementation can be set."""
    return callable(getattr(model, "set_attn_implementation", None)) and \
        isinstance(getattr(getattr(model, "config", None), "_attn_implementation", None), str)


@contextlib.contextmanager
def _unfused(modules: list[tuple[str, nn.Module]]) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """timm's attention computed explicitly, each `attn_drop` output recorded (name, tensor)."""
    recorded: list[tuple[str, torch.Tensor]] = []
    flags = [(module, module.fused_attn) for _, module in modules]
    handles = []
    try:
        for name, module in modules:
            module.fused_attn = False
            handles.append(module.attn_drop.register_forward_hook(
                lambda _module, _inputs, output, name=name: recorded.append((name, output))))
        yield recorded
    finally:
        for handle in handles:
            handle.remove()
        for module, flag in flags:
            module.fused_attn = flag


@contextlib.contextmanager
def _eager(model: nn.Module) -> Iterator[None]:
    """A transformers model with eager attention inside the block, its own restored after."""
    previous = model.config._attn_implementation
    if previous != "eager":
        model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if previous != "eager":
            model.set_attn_implementation(previous)


def _check_grid(model: nn.Module, attentions: list[torch.Tensor], places: list[str], batch: int, prefix: int,
                method: str) -> None:
    """Every attention (B, heads, T, T) over the same T = prefix + g^2 tokens, g > 1."""
    name = type(model).__name__
    if not attentions:
        raise ModelError(f"`method={method}` explains {SUPPORTED}; {name} returned no attention; "
                         "choose another method (gradcam, rise, fovex)")
    tokens = attentions[0].shape[-1]
    for place, attention in zip(places, attentions, strict=True):
        if attention.dim() != 4 or attention.shape[0] != batch or tuple(attention.shape[2:]) != (tokens, tokens):
            raise ModelError(
                f"`method={method}` reads global self-attention (B, heads, T, T) over every token, and {place} of "
                f"{name} gives attention of shape {tuple(attention.shape)} for {batch} image(s) (windowed, pooled or "
                "class attention, as in Swin, PVT, XCiT, CaiT); choose another method (gradcam, rise, fovex)")
    patches = tokens - prefix
    side = math.isqrt(max(patches, 0))
    if side < 2 or side * side != patches:
        raise ModelError(f"`method={method}` maps the attention to a square grid of patch tokens, and the {tokens} "
                         f"tokens of {name} less its {prefix} prefix token(s) are {patches}, not a square of at least "
                         "2 x 2; give square images (`image_size`) or choose another method")
