"""Attention rollout (Abnar & Zuidema, "Quantifying Attention Flow in Transformers", ACL
2020), the gradient-free baseline of transformer explanations.

With A_b the softmax attention of block b averaged over its heads (the paper's head
fusion) and the residual connection as an identity of equal weight, the attention flows
from the identity, block by block in the order they run:

    R <- norm(0.5 A_b + 0.5 I) R,  R = I at the start,

with norm dividing each row by its sum. The map is the class token's row of R over the
patch tokens; it does not depend on the target class. With `discard_ratio` r > 0 (jacobgil's
vit-explain, whose default is 0.9), each row of A_b first loses its floor(r (T - 1))
lowest weights to the tokens other than the class token (set to 0; the weight to the
class token is always kept), which the row normalisation then redistributes.
(vit-explain ranks the whole matrix of each image instead of each row, and keeps only
the class token's attention to itself.) `attention` reads A and makes the maps.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..base import Attribution, Context, check_batch, frozen
from ..registry import RolloutParameters
from .attention import check_attention_model, class_token_maps, read_attentions

__all__ = ["rollout", "discard_lowest"]


def rollout(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, context: Context,
    *,
    parameters: RolloutParameters | None = None,
) -> Attribution:
    """Attention-rollout maps of a vision transformer (Abnar & Zuidema 2020; module docstring).

    Parameters
    ----------
    model : torch.nn.Module
        A vision transformer of timm or transformers with a class token
        (`net2brain_fovex.explain.methods.attention`); run in evaluation mode without
        gradients, its parameters, mode and attention settings left as they were.
    images : tensor (B, 3, H, W)
        The model's normalised input batch (square).
    targets : LongTensor (B,)
        Checked for shape only: rollout does not depend on the class.
    context : Context
        Uses `prefix_tokens` (the class token is the first; the rest are dropped).
    parameters : RolloutParameters, optional
        `discard_ratio`, default 0 (the paper's: nothing discarded).

    Returns
    -------
    Attribution
        Maps (B, H, W) float32 in [0, 1] on the images' device.

    Raises
    ------
    InputError
        When the images are not a batch (B, C, H, W) or the targets not one class index per image.
    ModelError
        A model whose attention cannot be read, without a class token, or whose attention
        is not global self-attention over a square grid of patch tokens.
    """
    check_batch(images, targets)
    check_attention_model(model, context, "rollout")
    ratio = (parameters or RolloutParameters()).discard_ratio
    with frozen(model), torch.no_grad():
        attentions, _ = read_attentions(model, images, context, "rollout")
    tokens = attentions[0].shape[-1]
    identity = torch.eye(tokens, device=images.device)
    relevance = identity.expand(len(images), -1, -1)
    for attention in attentions:
        fused = discard_lowest(attention.float().mean(dim=1), ratio)
        step = 0.5 * fused + 0.5 * identity
        relevance = (step / step.sum(dim=-1, keepdim=True)) @ relevance
    return class_token_maps(relevance, images, context.prefix_tokens)


def discard_lowest(attention: torch.Tensor, ratio: float) -> torch.Tensor:
    """Each row of `attention` (..., T, T) with its floor(ratio (T - 1)) lowest weights to
    the tokens 1..T-1 set to 0; the weight to token 0, the class token, is kept."""
    count = math.floor(ratio * (attention.shape[-1] - 1))
    if count == 0:
        return attention
    lowest = attention[..., 1:].topk(count, dim=-1, largest=False).indices + 1
    return attention.scatter(-1, lowest, 0.0)
