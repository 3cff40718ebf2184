"""Grad-CAM++ (Chattopadhay et al., WACV 2018): channel weights from the positive
gradients, weighted per position (`cam` holds the machinery the CAM methods share)."""
from __future__ import annotations

import torch
from torch import nn

from ..base import Attribution, Context
from ..registry import CAMParameters
from .cam import activations_and_gradients, weighted_maps

__all__ = ["gradcam_plus_plus"]

_EPS = 1e-6  # pytorch-grad-cam's, in the denominator of alpha


def gradcam_plus_plus(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, context: Context,
    *,
    parameters: CAMParameters | None = None,
) -> Attribution:
    """Grad-CAM++ maps (Chattopadhay et al., "Grad-CAM++: Generalized Gradient-Based
    Visual Explanations for Deep Convolutional Networks", WACV 2018).

    The closed form of pytorch-grad-cam (its `GradCAMPlusPlus`, which the tests match):
    with g = dY_c/dA_k, alpha_ij = g_ij^2 / (2 g_ij^2 + sum_ab A_ab g_ij^3 + 1e-6), 0
    where g_ij = 0, and w_k = sum_ij alpha_ij ReLU(g_ij). The library's 1e-6 matters
    where gradients are small (|g| of order 1e-3 and below).

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
    squared = gradients.square()
    denominator = 2 * squared + activations.sum(dim=(2, 3), keepdim=True) * squared * gradients + _EPS
    alpha = torch.where(gradients != 0, squared / denominator, 0.0)
    weights = (alpha * gradients.clamp(min=0)).sum(dim=(2, 3))
    return weighted_maps(activations, weights, images)

