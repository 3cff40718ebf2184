"""Class activation maps: Grad-CAM, Grad-CAM++ and the random-CAM baseline.

Each weighs the K channels A_k (h x w) of one layer's output and keeps the positive
part, cam = ReLU(sum_k w_k A_k), upsampled bilinearly to the input size and min-max
normalised per image. The methods differ in the weights w_k:

* Grad-CAM (Selvaraju et al., ICCV 2017): the spatial mean of the gradients dY_c/dA_k
  of the target logit Y_c;
* Grad-CAM++ (Chattopadhay et al., WACV 2018): sum_ij alpha_ij ReLU(g_ij) with
  g = dY_c/dA_k and alpha_ij = g_ij^2 / (2 g_ij^2 + sum_ab A_ab g_ij^3 + 1e-6) (0 where
  g_ij = 0), the closed form of pytorch-grad-cam, epsilon included;
* random CAM (the FovEx paper's baseline): w ~ N(0, 1), drawn from `context.seed`, the
  same weights for every image.

The layer is a module of `model.named_modules()` whose output is a spatial map
(B, C, h, w) or a transformer's token grid (B, tokens, D): its prefix tokens
(`context.prefix_tokens`) are dropped and the g x g patch tokens become a (B, D, g, g)
map. Without a layer, `target_layer` picks one.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ModelError, unknown_name
from ...models.layers import capture
from ..base import Attribution, Context, check_batch, frozen, logits_of, normalise_maps

__all__ = ["LAYER_HINT", "target_layer"]

_PROBE_SEED = 0
LAYER_HINT = "give `layer` as one of the model's layers, which `list_layers` lists"


def target_layer(model: nn.Module, images_shape: Sequence[int], prefix_tokens: int = 0) -> str:
    """The default layer of the CAM methods for a model.

    One seeded random image of `images_shape` runs forward and backward through the
    model, with every module's output recorded in the order the modules' calls end (a
    container ends after its children; a module called several times counts at its
    last call). Candidates are the outputs that are

    * a spatial map: 4-D (B, C, h, w) with h, w > 1 and the image's aspect ratio, up to
      rounding (so channels-last (B, h, w, C) tensors and attention internals
      (B, heads, tokens, d) are not taken for maps);
    * a token grid: 3-D (B, tokens, D) with tokens - `prefix_tokens` = g^2, g > 1.

    The last candidate sets the kind (map or tokens) and the width (C or D). The layer
    is the last candidate of that kind and width at whose grid positions the logits
    have a gradient that is not all zero (the last candidate when there is none). In
    the probe only, all-zero parameters get small random values, so that a
    zero-initialised head (torchvision's ViT with random weights) does not hide the
    dependence and the choice does not depend on the weights. The gradient condition
    matters for transformers with a class token: past the last attention, the patch
    tokens have no gradient (the head reads the class token only) and would give blank
    maps, so the rule steps back to the input of the last attention, the layer
    pytorch-grad-cam recommends for ViTs. At 224 x 224 it gives

    * ResNets (torchvision, timm resnet18): ``layer4``;
    * torchvision vgg11 and alexnet: ``avgpool``, an adaptive pool to 7 x 7 (6 x 6),
      the identity at 224 px, so the maps of the last max-pool (``features.20``,
      ``features.12``);
    * torchvision convnext_tiny, efficientnet_b0, mobilenet_v3_small, densenet121:
      ``features`` (the last stage's output); swin_t: ``permute`` (the final norm,
      channels first); timm convnext_tiny: ``norm_pre``; timm efficientnet_b0: ``bn2``;
    * ViTs with a class token (prefix 1; DeiT distilled, prefix 2): timm
      ``blocks.11.norm1``, torchvision vit_b_16 ``encoder.layers.encoder_layer_11.ln_1``.
      A ViT that pools the patch tokens keeps its final norm.

    Parameters
    ----------
    model : torch.nn.Module
        The classifier; left in the mode it was in, its parameters untouched.
    images_shape : sequence of int
        The shape (B, 3, H, W) of the batches to explain.
    prefix_tokens : int, default 0
        Class / distillation tokens ahead of the patch tokens of a transformer.

    Returns
    -------
    str
        The layer's dotted module path.

    Raises
    ------
    ModelError
        When no module outputs a spatial map or a token grid.
    """
    height, width = images_shape[-2:]
    generator = torch.Generator().manual_seed(_PROBE_SEED)
    device = _device_of(model)
    probe = torch.randn((1, *images_shape[1:]), generator=generator).to(device).requires_grad_(True)
    names = [name for name, _ in model.named_modules() if name]
    with frozen(model), torch.enable_grad(), capture(model, names) as outputs:
        stand_ins = {
            name: 1e-3 * torch.randn(parameter.shape, generator=generator).to(parameter)
            for name, parameter in model.named_parameters() if not parameter.any()
        }
        logits = logits_of(torch.func.functional_call(model, stand_ins, (probe,)))
        maps = {
            name: view for name, output in outputs.items()
            if (view := as_maps(output, height, width, prefix_tokens)) is not None
        }
        if not maps:
            raise ModelError(
                f"no layer of {type(model).__name__} outputs a spatial map (B, C, h, w) or a token grid "
                f"(B, tokens, D) for a {height} x {width} image; name a layer explicitly"
            )
        last = list(maps)[-1]
        family = [
            name for name, view in maps.items()
            if outputs[name].dim() == outputs[last].dim() and view.shape[1] == maps[last].shape[1]
            and outputs[name].requires_grad
        ]
        # a random mix of the logits: a plain sum cancels for models that return probabilities
        mix = torch.randn(logits.shape[1], generator=generator).to(logits)
        gradients = (
            torch.autograd.grad((logits * mix).sum(), [outputs[name] for name in family], allow_unused=True)
            if family and logits.requires_grad else []
        )
    reached = [
        name for name, gradient in zip(family, gradients, strict=True)
        if gradient is not None and bool(as_maps(gradient, height, width, prefix_tokens).abs().amax() > 0)
    ]
    return reached[-1] if reached else last



# ------------------------------------------------------------------ helpers
def activations_and_gradients(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, context: Context, layer: str | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's maps (B, K, h, w) and the gradients of the target logits w.r.t. them."""
    check_batch(images, targets)
    with frozen(model):
        activations, logits = layer_output(model, images, context, layer)
        score = logits.gather(1, targets.to(logits.device).view(-1, 1)).sum()
        (gradients,) = torch.autograd.grad(score, activations, allow_unused=True)
    if gradients is None:
        gradients = torch.zeros_like(activations)
    height, width = images.shape[-2:]
    return (
        as_maps(activations.detach(), height, width, context.prefix_tokens),
        as_maps(gradients, height, width, context.prefix_tokens),
    )


def layer_output(
    model: nn.Module, images: torch.Tensor, context: Context, layer: str | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's raw output and the logits of one forward pass (on a frozen model)."""
    layer = resolve_layer(model, images.shape, context.prefix_tokens, layer)
    # a recorded graph also keeps PyTorch's fused transformer fast path (which skips the
    # submodules' hooks) out of the way, so every named module runs
    inputs = images.detach().clone().requires_grad_(True)
    with torch.enable_grad(), capture(model, [layer]) as outputs:
        logits = logits_of(model(inputs))
    if layer not in outputs:
        raise did_not_run(layer)
    output = outputs[layer]
    height, width = images.shape[-2:]
    if as_maps(output, height, width, context.prefix_tokens) is None:
        raise not_a_map(layer, output, height, width, context.prefix_tokens)
    return output, logits


def resolve_layer(model: nn.Module, images_shape: Sequence[int], prefix_tokens: int, layer: str | None) -> str:
    """`layer`, checked to be a module of the model, or `target_layer`'s choice for None."""
    if layer is None:
        return target_layer(model, images_shape, prefix_tokens)
    if not layer or layer not in dict(model.named_modules()):
        raise unknown_name("layer", layer, [name for name, _ in model.named_modules() if name], hint=LAYER_HINT)
    return layer


def did_not_run(layer: str) -> ModelError:
    """The error of a layer that the model's forward pass does not call."""
    return ModelError(f"layer {layer!r} did not run in the model's forward pass; choose a layer that does")


def not_a_map(layer: str, output: object, height: int, width: int, prefix_tokens: int) -> ModelError:
    """The error of a layer whose output is neither a spatial map nor a token grid."""
    shape = f"shape {tuple(output.shape)}" if isinstance(output, torch.Tensor) else f"a {type(output).__name__}"
    return ModelError(
        f"layer {layer!r} outputs {shape}, neither a spatial map (B, C, h, w) with "
        f"h, w > 1 and the {height} x {width} image's aspect ratio, nor a token grid (B, tokens, D) "
        f"with {prefix_tokens} prefix token(s) and a square grid of patch tokens; "
        "choose a convolutional stage or a transformer block"
    )


def as_maps(output: torch.Tensor, height: int, width: int, prefix_tokens: int) -> torch.Tensor | None:
    """The (B, C, h, w) view of a spatial map or token grid; None for any other output."""
    if output.dim() == 4:
        rows, cols = output.shape[2:]
        # conv rounding moves h and w by at most one pixel each from H / stride and W / stride
        if min(rows, cols) > 1 and abs(rows * width - cols * height) < height + width:
            return output
    elif output.dim() == 3:
        patches = output.shape[1] - prefix_tokens
        side = math.isqrt(max(patches, 0))
        if side > 1 and side * side == patches:
            return output[:, prefix_tokens:].transpose(1, 2).reshape(len(output), -1, side, side)
    return None


def weighted_maps(activations: torch.Tensor, weights: torch.Tensor, images: torch.Tensor) -> Attribution:
    """ReLU(sum_k w_k A_k), upsampled to the images' size and normalised."""
    cam = torch.einsum("bk,bkhw->bhw", weights, activations).clamp(min=0)
    cam = F.interpolate(cam[:, None], size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return Attribution(maps=normalise_maps(cam.float()).to(images.device))


def _device_of(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU when it has none)."""
    tensor = next(itertools.chain(model.parameters(), model.buffers()), None)
    return tensor.device if tensor is not None else torch.device("cpu")
