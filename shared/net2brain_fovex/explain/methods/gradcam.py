"""Grad-CAM (Selvaraju et al., ICCV 2017): channel weights are the spatial mean of the
gradients of the target logit (`cam` holds the machinery the CAM methods share)."""
from __future__ import annotations

import torch
from torch import nn

from ..base import Attribution, Context
from ..registry import CAMParameters
from .cam import activations_and_gradients, weighted_maps

__all__ = ["gradcam"]


def gradcam(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, context: Context,
    *,
    parameters: CAMParameters | None = None,
) -> Attribution:
    """Grad-CAM maps (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks
    via Gradient-based Localization", ICCV 2017).

    Parameters
    ----------
    model : torch.nn.Module
        The classifier; run in evaluation mode, its parameters and mode left as they were.
    images : tensor (B, 3, H, W)
        The model's normalised input batch.
    targets : LongTensor (B,)
        The class to explain per image.
    context : Context
        Uses `prefix_tokens` (dropped from a token grid).
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
    activations, gradients = activations_and_gradients(model, images, targets, context, (parameters or CAMParameters()).layer)
    weights = gradients.mean(dim=(2, 3))
    return weighted_maps(activations, weights, images)

