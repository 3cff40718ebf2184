"""Random CAM, the FovEx paper's baseline: random N(0, 1) channel weights on the CAM
layer (`cam` holds the machinery the CAM methods share)."""
from __future__ import annotations

import torch
from torch import nn

from ..base import Attribution, Context, check_batch, frozen
from ..registry import CAMParameters
from .cam import as_maps, layer_output, weighted_maps

__all__ = ["random_cam"]


def random_cam(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, context: Context,
    *,
    parameters: CAMParameters | None = None,
) -> Attribution:
    """Random-CAM maps: the FovEx paper's baseline (Panda et al., IJCV 2025, arXiv
    2408.02123), ReLU(sum_k w_k A_k) with w ~ N(0, 1).

    The weights come from a generator seeded with `context.seed` and are the same for
    every image, so a batch gives the maps its images give one by one.

    Parameters
    ----------
    model : torch.nn.Module
        The classifier; run in evaluation mode, its parameters and mode left as they were.
    images : tensor (B, 3, H, W)
        The model's normalised input batch.
    targets : LongTensor (B,)
        Checked for shape only: the weights do not depend on the class.
    context : Context
        Uses `seed` and `prefix_tokens`.
    parameters : CAMParameters, optional
        `layer`: the dotted module path of the layer; default `target_layer(...)`.

    Returns
    -------
    Attribution
        Maps (B, H, W) float32 in [0, 1] on the images' device.

    Raises
    ------
    UnknownNameError
        When `layer` is not a module of the model.
    ModelError
        When the layer does not run, or outputs neither a spatial map nor a token grid.
    """
    check_batch(images, targets)
    with frozen(model):
        output, _ = layer_output(model, images, context, (parameters or CAMParameters()).layer)
    activations = as_maps(output.detach(), *images.shape[-2:], context.prefix_tokens)
    generator = torch.Generator().manual_seed(context.seed)
    weights = torch.randn(activations.shape[1], generator=generator).to(activations)
    return weighted_maps(activations, weights.expand(len(activations), -1), images)
