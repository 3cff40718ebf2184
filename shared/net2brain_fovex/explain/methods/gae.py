"""GAE, generic attention-model explainability (Chefer, Gur & Wolf, "Generic
Attention-model Explainability for Interpreting Bi-Modal and Encoder-Decoder
Transformers", ICCV 2021), for vision transformers.

With A_b (B, heads, T, T) the softmax attention of block b and y_c the target's logit,
each block gives the head mean of the positive part of gradient x attention,

    A_bar_b = mean_heads( max(0, dy_c/dA_b * A_b) ),

and the relevance of the tokens to each other accumulates from the identity, block by
block in the order they run: R <- R + A_bar_b R, R = I at the start. The map is the class
token's row of R over the patch tokens (`attention` reads A and makes the maps).
"""
from __future__ import annotations

import torch
from torch import nn

from ..base import Attribution, Context, check_batch, frozen
from ..registry import GAEParameters
from .attention import check_attention_model, class_token_maps, read_attentions

__all__ = ["gae"]


def gae(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, context: Context,
    *,
    parameters: GAEParameters | None = None,
) -> Attribution:
    """GAE maps of a vision transformer (Chefer et al., ICCV 2021; module docstring).

    Parameters
    ----------
    model : torch.nn.Module
        A vision transformer of timm or transformers with a class token
        (`net2brain_fovex.explain.methods.attention`); run in evaluation mode, its
        parameters, mode and attention settings left as they were.
    images : tensor (B, 3, H, W)
        The model's normalised input batch (square).
    targets : LongTensor (B,)
        The class to explain per image.
    context : Context
        Uses `prefix_tokens` (the class token is the first; the rest are dropped).
    parameters : GAEParameters, optional
        None: GAE has no parameters.

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
    check_attention_model(model, context, "gae")
    with frozen(model), torch.enable_grad():
        inputs = images.detach().clone().requires_grad_(True)
        attentions, logits = read_attentions(model, inputs, context, "gae")
        score = logits.gather(1, targets.to(logits.device).view(-1, 1)).sum()
        gradients = torch.autograd.grad(score, attentions, allow_unused=True)
    tokens = attentions[0].shape[-1]
    relevance = torch.eye(tokens, device=images.device).expand(len(images), -1, -1)
    for attention, gradient in zip(attentions, gradients, strict=True):
        if gradient is None:  # a block the target's logit does not depend on adds nothing
            continue
        weighted = (gradient.float() * attention.detach().float()).clamp(min=0).mean(dim=1)
        relevance = relevance + weighted @ relevance
    return class_token_maps(relevance, images, context.prefix_tokens)
