"""The centre bias, the saliency benchmarks' baseline: a Gaussian at the image centre.

People looking at pictures fixate near their centre whatever the pictures show (Tatler,
"The central fixation bias in scene viewing", J. Vision 2007), so a centred Gaussian
predicts human fixations well without looking at the image. Saliency tables list it
(the MIT benchmark's "Center" model) so that a method's gaze scores can be read against
it: a map that does not beat it on NSS, CC or AUC-Judd has learnt little more than
"look at the middle"; shuffled AUC discounts it (it scores near 0.5 there), and
information gain is measured over it.

    G[r, c] = exp(-(r - (H - 1) / 2)^2 / (2 (s H)^2) - (c - (W - 1) / 2)^2 / (2 (s W)^2))

with s = `centre_sigma` a fraction of each side: the Gaussian is stretched to the map's
aspect ratio (round on the square inputs of `explain_to_file`). The default s = 0.235 is
Clarke & Tatler's ("Deriving an appropriate baseline for describing fixation behaviour",
Vision Research 102, 2014): a horizontal variance of 0.22 with the width spanning
[-1, 1], a standard deviation of sqrt(0.22) / 2 = 0.235 of the width.
"""
from __future__ import annotations

import torch
from torch import nn

from ..base import Attribution, Context, check_batch, normalise_maps
from ..registry import CentreParameters

__all__ = ["centre", "centre_bias"]


def centre(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, context: Context,
    *,
    parameters: CentreParameters | None = None,
) -> Attribution:
    """Centre-bias maps: the same Gaussian for every image (module docstring).

    Parameters
    ----------
    model : torch.nn.Module
        Not run: the map does not depend on the model (received as every method does).
    images : tensor (B, 3, H, W)
        Only their number, size and device are used.
    targets : LongTensor (B,)
        Checked for shape only.
    context : Context
        Not used (nothing is random).
    parameters : CentreParameters, optional
        `centre_sigma`, the standard deviation as a fraction of each side; default 0.235.

    Returns
    -------
    Attribution
        Maps (B, H, W) float32 in [0, 1] on the images' device, 1 at the centre.

    Raises
    ------
    InputError
        When the images are not a batch (B, C, H, W) or the targets not one class index per image.
    """
    check_batch(images, targets)
    sigma = (parameters or CentreParameters()).centre_sigma
    bias = centre_bias(*images.shape[-2:], sigma=sigma, device=images.device)
    return Attribution(maps=normalise_maps(bias.expand(len(images), -1, -1)).float())


def centre_bias(
    height: int, width: int, *, sigma: float = CentreParameters.centre_sigma,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The centre bias G (H, W) float64 of the module docstring, not normalised.

    Parameters
    ----------
    height, width : int
        The grid, in pixels.
    sigma : float, default 0.235
        The standard deviation as a fraction of each side.
    device : torch.device or str, optional
        Default the CPU.

    Returns
    -------
    tensor (H, W) float64
        In (0, 1]; 1 at the centre pixel of an odd-sized grid.

    Raises
    ------
    ConfigError
        When `sigma` is not a finite number > 0.
    """
    CentreParameters(centre_sigma=sigma)  # the parameter's checks
    rows = (torch.arange(height, dtype=torch.float64, device=device) - (height - 1) / 2) / (sigma * height)
    cols = (torch.arange(width, dtype=torch.float64, device=device) - (width - 1) / 2) / (sigma * width)
    return torch.exp(-0.5 * (rows[:, None].square() + cols[None, :].square()))
