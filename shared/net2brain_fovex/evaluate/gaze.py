"""Agreement of attribution / saliency maps with human fixations.

Plain batched functions over maps (B, H, W) of any real values and the fixations on
the same B images, given as counts per pixel (`fixation_counts`) or as a fixation
density (`fixation_density`). Every score is a (B,) float64 tensor on the maps'
device, computed in float64. The definitions follow the MIT saliency benchmark code
(Bylinskii et al., "What do different evaluation metrics tell us about saliency
models?", TPAMI 2019). Below, S is one map, N = H * W its number of pixels, F its
fixated pixels (counts > 0: a pixel fixated twice is one fixated pixel, as in MIT's
binary fixation map), k = |F| and D the fixation density.

* NSS, normalised scanpath saliency: the mean over F of z = (S - mean S) / std S,
  with std of ddof=1 (MATLAB's std). Higher is better; 0 is chance.
* AUC-Judd: S min-max normalised to [0, 1]; the thresholds t_1 >= ... >= t_k are S
  at the fixated pixels; for i = 1 ... k, tp_i = #(fixated, S >= t_i) / k and
  fp_i = #(not fixated, S >= t_i) / (N - k); the score is the trapezoid area of tp
  over fp through (0, 0), (fp_1, tp_1), ..., (fp_k, tp_k), (1, 1). Where the fixated
  pixels hold distinct values, #(fixated, S >= t_i) = i and this is MIT's formula,
  tp_i = i / k, fp_i = (#(S >= t_i) - i) / (N - k). MIT adds a random jitter below
  1e-7 to S to make them distinct; here there is none, so the score is
  deterministic, and fixated pixels tied with each other share one point of the
  curve. (MIT's formula on ties would let fp exceed 1 and the curve turn back: a
  constant map would score (N - k^2) / (2k (N - k)), below 0 once k^2 > N, and a map
  that is 1 exactly at the k fixated pixels 1 - (k - 1) / (2 (N - k)); here they
  score 0.5 and 1.) Pixels tied with a threshold count as above it.
* CC: the Pearson correlation of S and D over the pixels.
* KLD: with P = D / sum D and Q = S / sum S, sum P log(eps + P / (Q + eps)), where
  eps = 2.220446049250313e-16 (np.finfo(float).eps), as MIT's KLdiv. Lower is better.
* SIM: S and D each min-max normalised to [0, 1] and then divided by their sum;
  sum min(P, Q). In [0, 1], higher is better.
* sAUC, shuffled AUC (Borji et al., "Analysis of scores, datasets, and models in visual
  saliency prediction", ICCV 2013; MIT's AUC_shuffled): the positives are S at F, the
  negatives S at the fixated pixels of other images (O, the union of the fixations of
  up to 10 other images, `shuffle_partners`, on the same grid), so a centre bias
  common to all images cancels. As MIT: for each
  of 100 splits, n = min(k, |O|) pixels of O drawn without replacement; the split's
  AUC is the area under the ROC of positives against those negatives; the score is the
  mean over the splits. The area is exact, over every threshold, with ties counted
  half: (#(pos > neg) + #(pos = neg) / 2) / (k n) over all pairs (MIT sweeps
  thresholds at a step of 0.1 of the normalised map, which coarsens it). A pixel of O
  may also be in F, as in MIT's code. The draw is seeded: split j ranks every pixel of
  the grid by a uniform key drawn from `seed`, the same for every image, and takes the
  n pixels of O with the lowest keys, so an image's score does not depend on its batch
  (each image has its own O).
* IG, information gain (Kümmerer, Wallis & Bethge, "Information-theoretic model
  comparison unifies saliency metrics", PNAS 2015; MIT's InfoGain): S and a baseline
  map C each min-max normalised and divided by their sum, P and Q; IG is the mean over
  F of log2(eps + P) - log2(eps + Q), in bits per fixated pixel, eps as for KLD. A map
  that is 0 at a fixated pixel costs log2(eps) = -52 bits there, as in MIT's code. The
  default baseline is the centre bias (`net2brain_fovex.explain.methods.centre`), so
  IG > 0 says the map predicts the fixations better than "look at the middle".

sAUC and IG resize a map of another size than the fixation grid to it (bilinear, with
antialiasing when shrinking), as MIT resizes the saliency map to the fixation map.

NaN marks a score that is undefined: an image without fixations (every metric); a
constant map or density for CC and SIM (no correlation, no min-max normalisation);
a map or density with a negative value or a zero sum for KLD (not a distribution);
an image whose every pixel is fixated for AUC-Judd (no negatives); an image without
fixations on other images for sAUC; a constant map or baseline for IG (no density). A
constant map has z = 0, so NSS 0, and min-max normalises to all 0 for AUC-Judd; it
ties every pair for sAUC, 0.5.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, InputError
from ..explain.methods.centre import centre_bias

__all__ = ["EPS", "SPLITS", "PARTNERS", "fixation_counts", "fixation_density", "nss", "auc_judd", "cc", "kld", "sim",
           "sauc", "shuffle_partners", "info_gain"]

EPS = torch.finfo(torch.float64).eps  # np.finfo(float).eps, MATLAB's eps in MIT's KLdiv
SPLITS = 100  # sAUC's random splits of the negatives, MIT's Nsplits
PARTNERS = 10  # the other images whose fixations are an image's sAUC negatives (Borji's M, in MIT's code)


def fixation_counts(
    points: Sequence, height: int, width: int, *, device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """How often each pixel was fixated, per image.

    Points are rounded to the nearest pixel with `torch.round` (halves to even, as
    `net2brain_fovex.evaluate.localisation.points_in_boxes`); a point whose rounded position lies outside the
    image is dropped and counted in `dropped`, for the caller to report.

    Parameters
    ----------
    points : sequence of B array-likes (k_i, 2)
        The fixations on each image as (row, col) in pixels, floats allowed; k_i may
        be 0.
    height, width : int
        The size of the images in pixels.
    device : torch.device or str, optional
        Where the counts go; default the CPU.

    Returns
    -------
    counts : tensor (B, H, W) float64
        Fixations per pixel: a pixel fixated twice counts 2.
    dropped : tensor (B,) int64
        Points outside the image, per image.

    Raises
    ------
    ConfigError
        When `height` or `width` is below 1.
    InputError
        When the points of an image are not (k, 2) or hold NaN or infinite values.
    """
    if height < 1 or width < 1:
        raise ConfigError(f"fixation counts need an image of at least 1 x 1 pixels; got height={height}, width={width}")
    device = torch.device("cpu") if device is None else torch.device(device)
    rows_cols, owners = [], []
    for index, image_points in enumerate(points):
        image_points = torch.as_tensor(image_points, dtype=torch.float64).to(device)
        if image_points.numel() == 0:
            image_points = image_points.reshape(0, 2)  # [] arrives as shape (0,)
        if image_points.dim() != 2 or image_points.shape[1] != 2:
            raise InputError(
                f"the fixations of image {index} must be (k, 2) as (row, col); got shape {tuple(image_points.shape)}"
            )
        if not torch.isfinite(image_points).all():
            raise InputError(f"the fixations of image {index} hold NaN or infinite values; drop those points first")
        rows_cols.append(image_points)
        owners.append(torch.full((len(image_points),), index, dtype=torch.int64, device=device))
    batch = len(rows_cols)
    if batch == 0:
        empty = torch.zeros(0, height, width, dtype=torch.float64, device=device)
        return empty, torch.zeros(0, dtype=torch.int64, device=device)
    pixel = torch.round(torch.cat(rows_cols)).long()
    owner = torch.cat(owners)
    rows, cols = pixel[:, 0], pixel[:, 1]
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    flat = (owner * height + rows) * width + cols
    counts = torch.bincount(flat[inside], minlength=batch * height * width)
    dropped = torch.bincount(owner[~inside], minlength=batch)
    return counts.view(batch, height, width).to(torch.float64), dropped


def fixation_density(counts: torch.Tensor, sigma: float) -> torch.Tensor:
    """The fixation counts blurred with a Gaussian and normalised to sum 1 per image.

    The blur is `scipy.ndimage.gaussian_filter(counts, sigma, mode="constant",
    truncate=4.0)` per image, as two 1-D convolutions in torch: zero padding outside
    the image, the kernel truncated at radius int(4 sigma + 0.5) and normalised to
    sum 1 there. Each 1-D convolution runs as a product with a banded (H, H) or
    (W, W) matrix, whose cost does not grow with sigma. An image without fixations
    stays all zero.

    Parameters
    ----------
    counts : tensor (B, H, W)
        Fixations per pixel, from `fixation_counts`.
    sigma : float
        The Gaussian's standard deviation in pixels (often about 1 degree of visual
        angle).

    Returns
    -------
    tensor (B, H, W) float64
        On the device of `counts`.

    Raises
    ------
    ConfigError
        When `sigma` is not a finite number above 0.
    InputError
        When `counts` is not (B, H, W) or holds NaN or infinite values.
    """
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
        raise ConfigError(f"the fixation density needs a Gaussian sigma > 0 in pixels; got sigma={sigma!r}")
    counts = _checked(counts, "counts")
    kernel = _gaussian_kernel(float(sigma), counts.device)
    # matrix products, not conv2d: float64 convolution on the CPU goes through im2col,
    # 0.8 s at sigma 7 and 17 s at sigma 60 for 64 x 224 x 224 (0.04 s this way)
    height, width = counts.shape[1:]
    blurred = _convolution_matrix(kernel, height) @ counts @ _convolution_matrix(kernel, width).T
    total = blurred.sum(dim=(1, 2), keepdim=True)
    return torch.where(total > 0, blurred / torch.where(total > 0, total, 1), torch.zeros_like(blurred))


def nss(maps: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Normalised scanpath saliency: the mean z-scored saliency at the fixated pixels.

    Parameters
    ----------
    maps : tensor (B, H, W)
    counts : tensor (B, H, W)
        Fixations per pixel (`fixation_counts`); pixels with counts > 0 are fixated,
        each once however often.

    Returns
    -------
    tensor (B,) float64
        0 for a constant map; NaN for an image without fixations.

    Raises
    ------
    InputError
        When the shapes differ or an input holds NaN or infinite values.
    """
    saliency, counts = _pair(maps, counts, "counts")
    fixated = counts > 0
    n_fixated = fixated.sum(dim=1)
    centred = saliency - saliency.mean(dim=1, keepdim=True)
    # std by hand: torch.std warns on a 1-pixel map (ddof=1), which is constant anyway
    std = (centred.square().sum(dim=1, keepdim=True) / max(saliency.shape[1] - 1, 1)).sqrt()
    # constancy from max == min: a constant map's mean need not be exact, which leaves a tiny std
    constant = _constant(saliency)[:, None]
    z = torch.where(constant, torch.zeros_like(centred), centred / torch.where(constant, 1, std))
    score = (z * fixated).sum(dim=1) / n_fixated.clamp(min=1)
    return torch.where(n_fixated > 0, score, torch.nan)


def auc_judd(maps: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """AUC-Judd: the area under the ROC curve of the map as a classifier of fixated pixels.

    MIT's AUC_Judd without its random jitter, so deterministic; fixated pixels tied
    with each other share one point of the ROC curve (module docstring), so that a
    constant map scores 0.5.

    Parameters
    ----------
    maps : tensor (B, H, W)
    counts : tensor (B, H, W)
        Fixations per pixel (`fixation_counts`); pixels with counts > 0 are fixated,
        each once however often.

    Returns
    -------
    tensor (B,) float64
        NaN for an image without fixations or with every pixel fixated.

    Raises
    ------
    InputError
        When the shapes differ or an input holds NaN or infinite values.
    """
    saliency, counts = _pair(maps, counts, "counts")
    saliency = _min_max(saliency)
    fixated = counts > 0
    n_fixated = fixated.sum(dim=1)
    batch, pixels = saliency.shape
    most = int(n_fixated.max()) if batch else 0
    # the thresholds, descending, padded with -inf after each image's own k (masked below)
    thresholds = torch.where(fixated, saliency, -torch.inf).topk(most, dim=1).values.contiguous()
    ascending = torch.sort(saliency, dim=1).values
    # #(S >= t) = N - #(S < t), and #(S < t) is the left insertion point of t
    above = pixels - torch.searchsorted(ascending, thresholds, side="left")
    # the same among the fixated pixels: ascending, the thresholds start with most - k pads
    # of -inf, so #(fixated, S >= t) = k - (#(< t) - (most - k)) = most - #(< t)
    hits = most - torch.searchsorted(thresholds.flip(1), thresholds, side="left")
    i = torch.arange(1, most + 1, device=saliency.device, dtype=torch.float64).expand(batch, -1)
    k = n_fixated[:, None].to(torch.float64)
    valid = i <= k
    # past each image's k the curve sits at (1, 1): zero-width segments add no area
    tp = torch.where(valid, hits / k, 1.0)
    fp = torch.where(valid, (above - hits) / (pixels - k), 1.0)
    ends = saliency.new_zeros(batch, 1), saliency.new_ones(batch, 1)
    area = torch.trapezoid(torch.cat([ends[0], tp, ends[1]], dim=1), torch.cat([ends[0], fp, ends[1]], dim=1), dim=1)
    return torch.where((n_fixated > 0) & (n_fixated < pixels), area, torch.nan)


def cc(maps: torch.Tensor, density: torch.Tensor) -> torch.Tensor:
    """Pearson's correlation coefficient of the map and the fixation density over pixels.

    Parameters
    ----------
    maps : tensor (B, H, W)
    density : tensor (B, H, W)
        From `fixation_density`.

    Returns
    -------
    tensor (B,) float64
        In [-1, 1]; NaN where the map or the density is constant (an image without
        fixations has an all-zero density).

    Raises
    ------
    InputError
        When the shapes differ or an input holds NaN or infinite values.
    """
    saliency, density = _pair(maps, density, "density")
    a = saliency - saliency.mean(dim=1, keepdim=True)
    b = density - density.mean(dim=1, keepdim=True)
    undefined = _constant(saliency) | _constant(density)
    spread = torch.where(undefined, 1, (a.square().sum(dim=1) * b.square().sum(dim=1)).sqrt())
    return torch.where(undefined, torch.nan, (a * b).sum(dim=1) / spread)


def kld(maps: torch.Tensor, density: torch.Tensor) -> torch.Tensor:
    """Kullback-Leibler divergence of the map from the fixation density, as MIT's KLdiv.

    Parameters
    ----------
    maps : tensor (B, H, W)
        Non-negative maps (a signed map gives NaN: min-max normalise it first).
    density : tensor (B, H, W)
        From `fixation_density`.

    Returns
    -------
    tensor (B,) float64
        >= 0 up to eps, lower is better; NaN where the map or the density has a
        negative value or sums to 0 (an image without fixations has an all-zero
        density).

    Raises
    ------
    InputError
        When the shapes differ or an input holds NaN or infinite values.
    """
    saliency, density = _pair(maps, density, "density")
    p, p_ok = _distribution(density)
    q, q_ok = _distribution(saliency)
    score = (p * torch.log(EPS + p / (q + EPS))).sum(dim=1)
    return torch.where(p_ok & q_ok, score, torch.nan)


def sim(maps: torch.Tensor, density: torch.Tensor) -> torch.Tensor:
    """Similarity (histogram intersection) of the map and the fixation density.

    Each is min-max normalised to [0, 1] and then divided by its sum; SIM is the sum of
    the pixel-wise minimum.

    Parameters
    ----------
    maps : tensor (B, H, W)
    density : tensor (B, H, W)
        From `fixation_density`.

    Returns
    -------
    tensor (B,) float64
        In [0, 1]; NaN where the map or the density is constant, which cannot be
        min-max normalised (an image without fixations has an all-zero density).

    Raises
    ------
    InputError
        When the shapes differ or an input holds NaN or infinite values.
    """
    saliency, density = _pair(maps, density, "density")
    p, q = _min_max(saliency), _min_max(density)
    undefined = _constant(saliency) | _constant(density)
    p = p / torch.where(undefined, 1, p.sum(dim=1))[:, None]
    q = q / torch.where(undefined, 1, q.sum(dim=1))[:, None]
    return torch.where(undefined, torch.nan, torch.minimum(p, q).sum(dim=1))


def shuffle_partners(has_fixations: Sequence[bool], *, count: int = PARTNERS, seed: int = 0) -> list[np.ndarray]:
    """The other images whose fixations are each image's sAUC negatives.

    For image i, `count` images drawn without replacement among the other images with
    fixations (all of them where there are fewer), by a generator seeded with (seed, i),
    so that the draw does not depend on how the images are batched. MIT's benchmark
    takes the union of the fixations of M = 10 random other images: the union over a
    whole data set would cover nearly every pixel and lose the centre bias the negatives
    are there to carry.

    Parameters
    ----------
    has_fixations : sequence of bool
        Whether each image of the evaluated set, in its order, has fixations.
    count : int, default 10
        Partners per image.
    seed : int, default 0
        A whole number from 0 to 2^32 - 1.

    Returns
    -------
    list of ndarray (m_i,) int64
        The positions of each image's partners, ascending; m_i = min(count, the other
        images with fixations).

    Raises
    ------
    ConfigError
        When `count` is below 1 or `seed` is not a whole number >= 0.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError(f"sAUC needs at least one partner image per image; got count={count!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"the sAUC seed must be a whole number >= 0; got seed={seed!r}")
    eligible = np.flatnonzero(np.asarray(has_fixations, dtype=bool))
    partners = []
    for index in range(len(has_fixations)):  # one small draw per image, not per pixel
        others = eligible[eligible != index]
        chosen = np.random.default_rng([seed, index]).choice(others, size=min(count, len(others)), replace=False)
        partners.append(np.sort(chosen).astype(np.int64))
    return partners


def sauc(
    maps: torch.Tensor, counts: torch.Tensor, others: torch.Tensor, *, splits: int = SPLITS, seed: int = 0,
) -> torch.Tensor:
    """Shuffled AUC: the map's values at the image's fixated pixels against those at the
    fixated pixels of other images, averaged over random splits (module docstring).

    Parameters
    ----------
    maps : tensor (B, h, w)
        Resized to the grid of `counts` where it differs.
    counts : tensor (B, H, W)
        Fixations per pixel (`fixation_counts`); the pixels with counts > 0 are the
        positives, each once however often.
    others : tensor (B, H, W)
        Each image's pool of negatives: the fixations of other images on its grid
        (> 0), e.g. `fixation_counts` of the points of its `shuffle_partners`.
    splits : int, default 100
        Random draws of the negatives (MIT's Nsplits).
    seed : int, default 0
        Seed of the draws (a torch.Generator on the CPU).

    Returns
    -------
    tensor (B,) float64
        In [0, 1], 0.5 for chance and for a constant map; NaN for an image without
        fixations or with an empty pool.

    Raises
    ------
    ConfigError
        When `splits` is not a whole number >= 1.
    InputError
        When the batches differ in size, `others` is not on the grid of `counts`, or an
        input holds NaN or infinite values.
    """
    if isinstance(splits, bool) or not isinstance(splits, int) or splits < 1:
        raise ConfigError(f"sAUC needs at least 1 split; got splits={splits!r}")
    maps = _checked(maps, "maps")
    counts = _checked(counts.to(maps.device) if isinstance(counts, torch.Tensor) else counts, "counts")
    others = _checked(others.to(maps.device) if isinstance(others, torch.Tensor) else others, "others")
    if others.shape != counts.shape:
        raise InputError(f"others and counts must have one shape (B, H, W); got {tuple(others.shape)} and "
                         f"{tuple(counts.shape)}")
    saliency = _on_grid(maps, counts, "maps")
    fixated, pool = counts.flatten(1) > 0, others.flatten(1) > 0
    batch, pixels = saliency.shape
    k, size = fixated.sum(dim=1), pool.sum(dim=1)
    drawn = torch.minimum(k, size)  # n per image: as many negatives as positives, if the pool has them
    if batch == 0 or int(drawn.max()) == 0:
        return saliency.new_full((batch,), torch.nan)
    most_k, most_pool, most_drawn = int(k.max()), int(size.max()), int(drawn.max())
    # ascending, led by -inf pads that no negative reaches or ties
    positives = torch.where(fixated, saliency, -torch.inf).sort(dim=1).values[:, pixels - most_k:].contiguous()
    # each image's pool as pixel indices, padded with `pixels`, whose key below is +inf
    members = torch.where(pool, torch.arange(pixels, device=saliency.device), pixels).sort(dim=1).values[:, :most_pool]
    keys = torch.rand(splits, pixels, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    keys = torch.cat([keys, torch.full((splits, 1), torch.inf, dtype=torch.float64)], dim=1).to(saliency.device)
    valid = torch.arange(most_drawn, device=saliency.device) < drawn[:, None, None]  # (B, 1, n)
    area = saliency.new_zeros(batch, splits)
    chunk = max(1, 2**22 // (batch * most_pool))  # splits at a time: bounds the (splits, B, pool) keys
    for start in range(0, splits, chunk):
        block = keys[start:start + chunk][:, members]  # (c, B, pool)
        lowest = block.topk(most_drawn, dim=2, largest=False).indices.transpose(0, 1)  # (B, c, n), keys ascending
        chosen = members.gather(1, lowest.flatten(1)).clamp(max=pixels - 1)  # pads past an image's n are masked
        negatives = saliency.gather(1, chosen)
        at_most = torch.searchsorted(positives, negatives, right=True)
        below = torch.searchsorted(positives, negatives)
        wins = ((most_k - at_most) + 0.5 * (at_most - below)).to(torch.float64).view(batch, -1, most_drawn)
        area[:, start:start + chunk] = (wins * valid).sum(dim=2) / (k * drawn).clamp(min=1).to(torch.float64)[:, None]
    return torch.where(drawn > 0, area.mean(dim=1), torch.nan)


def info_gain(maps: torch.Tensor, counts: torch.Tensor, baseline: torch.Tensor | None = None) -> torch.Tensor:
    """Information gain of the map over a baseline at the fixated pixels, in bits (module docstring).

    Parameters
    ----------
    maps : tensor (B, h, w)
        Resized to the grid of `counts` where it differs.
    counts : tensor (B, H, W)
        Fixations per pixel (`fixation_counts`); the pixels with counts > 0 are
        fixated, each once however often.
    baseline : tensor (B, h', w') or (h', w'), optional
        The baseline map, one per image or one for all, resized to the grid where it
        differs; default the centre bias
        (`net2brain_fovex.explain.methods.centre.centre_bias` on the grid, its default
        width).

    Returns
    -------
    tensor (B,) float64
        Bits per fixated pixel; 0 for a map equal to the baseline, > 0 where the map
        puts more probability on the fixations. NaN for an image without fixations,
        or a constant map or baseline.

    Raises
    ------
    InputError
        When the batches differ in size or an input holds NaN or infinite values.
    """
    maps = _checked(maps, "maps")
    counts = _checked(counts.to(maps.device) if isinstance(counts, torch.Tensor) else counts, "counts")
    if baseline is None:
        baseline = centre_bias(*counts.shape[1:], device=maps.device)
    if isinstance(baseline, torch.Tensor) and baseline.dim() == 2:
        baseline = baseline.expand(len(maps), -1, -1)
    baseline = _checked(baseline.to(maps.device) if isinstance(baseline, torch.Tensor) else baseline, "baseline")
    saliency, reference = _on_grid(maps, counts, "maps"), _on_grid(baseline, counts, "baseline")
    fixated = counts.flatten(1) > 0
    k = fixated.sum(dim=1)
    p, q = _min_max(saliency), _min_max(reference)
    undefined = _constant(saliency) | _constant(reference) | (k == 0)
    p = p / torch.where(undefined, 1, p.sum(dim=1))[:, None]
    q = q / torch.where(undefined, 1, q.sum(dim=1))[:, None]
    gain = ((torch.log2(EPS + p) - torch.log2(EPS + q)) * fixated).sum(dim=1) / k.clamp(min=1)
    return torch.where(undefined, torch.nan, gain)


def _on_grid(values: torch.Tensor, grid: torch.Tensor, name: str) -> torch.Tensor:
    """Checked (B, h, w) float64 `values` on the (B, H, W) grid of `grid`, flattened to
    (B, H * W): resized bilinearly (antialiased, which only acts when shrinking) where
    the sizes differ, as MIT's imresize of the map to the fixation map."""
    if len(values) != len(grid):
        raise InputError(f"{name} and counts must hold one map per image; got {len(values)} and {len(grid)}")
    if values.shape[1:] != grid.shape[1:]:
        values = F.interpolate(values[:, None], size=tuple(grid.shape[1:]), mode="bilinear", align_corners=False,
                               antialias=True)[:, 0]
    return values.flatten(1)


def _gaussian_kernel(sigma: float, device: torch.device) -> torch.Tensor:
    """scipy.ndimage's 1-D Gaussian kernel at truncate=4.0, float64, summing to 1."""
    radius = int(4.0 * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    kernel = torch.exp(-0.5 / (sigma * sigma) * x.square())
    return kernel / kernel.sum()


def _convolution_matrix(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """(size, size) M with M @ x = scipy's correlate1d(x, kernel, mode="constant") along x's rows."""
    radius = (len(kernel) - 1) // 2
    index = torch.arange(size, device=kernel.device)
    # out[i] = sum_m kernel[m] x[i + m - radius]: x[j] has weight kernel[j - i + radius]
    offset = index[None, :] - index[:, None] + radius
    inside = (offset >= 0) & (offset < len(kernel))
    return kernel[offset.clamp(0, len(kernel) - 1)] * inside


def _checked(tensor: torch.Tensor, name: str) -> torch.Tensor:
    """A (B, H, W) batch as float64, or an `InputError` naming it."""
    if not isinstance(tensor, torch.Tensor) or tensor.dim() != 3 or tensor.shape[1] < 1 or tensor.shape[2] < 1:
        shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        raise InputError(f"{name} must be a tensor batch (B, H, W) with H, W >= 1; got {shape}")
    tensor = tensor.detach().to(torch.float64)
    finite = torch.isfinite(tensor).flatten(1).all(dim=1)
    if not finite.all():
        images = torch.nonzero(~finite)[:, 0].tolist()
        raise InputError(
            f"{name} hold NaN or infinite values in images {images}; replace them first (e.g. torch.nan_to_num)"
        )
    return tensor


def _pair(maps: torch.Tensor, other: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Maps and counts or density of one shape, flattened to (B, N) float64 on the maps' device."""
    if isinstance(maps, torch.Tensor) and isinstance(other, torch.Tensor) and maps.shape != other.shape:
        raise InputError(
            f"maps and {name} must have one shape (B, H, W); got {tuple(maps.shape)} and {tuple(other.shape)}"
        )
    maps = _checked(maps, "maps")
    other = _checked(other.to(maps.device) if isinstance(other, torch.Tensor) else other, name)
    return maps.flatten(1), other.flatten(1)


def _constant(values: torch.Tensor) -> torch.Tensor:
    """(B,) bool: True where a row of (B, N) values holds a single value."""
    return values.amax(dim=1) == values.amin(dim=1)


def _min_max(values: torch.Tensor) -> torch.Tensor:
    """Rows of (B, N) values scaled to [0, 1]; a constant row becomes all 0."""
    low = values.amin(dim=1, keepdim=True)
    span = values.amax(dim=1, keepdim=True) - low
    return torch.where(span > 0, (values - low) / torch.where(span > 0, span, 1), torch.zeros_like(values))


def _distribution(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of (B, N) values divided by their sum, and (B,) whether that is a distribution."""
    total = values.sum(dim=1)
    ok = (total > 0) & (values >= 0).all(dim=1)
    return values / torch.where(ok, total, 1)[:, None], ok
