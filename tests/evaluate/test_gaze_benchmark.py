"""Shuffled AUC and information gain, the saliency benchmarks' centre-bias-aware metrics:
each against a literal loop written from the MIT definitions, hand-worked and planted
cases (a map equal to the fixation density beats the centre bias; sAUC discounts the
centre bias; the centre bias gains 0 bits over itself), and the partners of sAUC."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from net2brain_fovex.errors import ConfigError, InputError
from net2brain_fovex.evaluate.gaze import (
    EPS,
    auc_judd,
    fixation_counts,
    fixation_density,
    info_gain,
    nss,
    sauc,
    shuffle_partners,
)
from net2brain_fovex.explain.base import Context
from net2brain_fovex.explain.methods.centre import centre
from net2brain_fovex.explain.registry import CentreParameters

HEIGHT, WIDTH = 9, 11


def case(seed=3, count=4):
    """`count` maps (with ties, zeros, signed) and for each its fixations and a pool of other fixations."""
    rng = np.random.default_rng(seed)
    maps = np.stack([
        rng.normal(size=(HEIGHT, WIDTH)),
        rng.integers(0, 4, (HEIGHT, WIDTH)).astype(float),  # ties within and across positives and negatives
        rng.uniform(size=(HEIGHT, WIDTH)),
        rng.integers(0, 2, (HEIGHT, WIDTH)) * rng.uniform(size=(HEIGHT, WIDTH)),
    ][:count])
    fixations = [rng.uniform(-0.4, [HEIGHT - 0.6, WIDTH - 0.6], size=(5 + b, 2)) for b in range(count)]
    pools = [rng.uniform(-0.4, [HEIGHT - 0.6, WIDTH - 0.6], size=(12 + 3 * b, 2)) for b in range(count)]
    counts, _ = fixation_counts(fixations, HEIGHT, WIDTH)
    others, _ = fixation_counts(pools, HEIGHT, WIDTH)
    return torch.from_numpy(maps), counts, others


def literal_roc_area(positives, negatives, thresholds=None):
    """MIT's ROC loop: tp and fp at each threshold (>=), from (0, 0) to (1, 1), trapezoids.
    Default thresholds: every value that occurs, descending (the exact curve)."""
    if thresholds is None:
        thresholds = sorted(set(positives) | set(negatives), reverse=True)
    tp, fp = [0.0], [0.0]
    for t in thresholds:
        tp.append(sum(1 for v in positives if v >= t) / len(positives))
        fp.append(sum(1 for v in negatives if v >= t) / len(negatives))
    tp.append(1.0)
    fp.append(1.0)
    return sum((fp[i + 1] - fp[i]) * (tp[i + 1] + tp[i]) / 2 for i in range(len(tp) - 1))


def literal_sauc(saliency, counts, others, splits, seed):
    """sAUC of one image as documented: split j takes the n pool pixels with the lowest keys of
    row j of torch.rand(splits, H * W) from `seed`, n = min(#fixated, #pool)."""
    height, width = counts.shape
    keys = torch.rand(splits, height * width, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    s = saliency.ravel().tolist()
    positives = [s[r * width + c] for r in range(height) for c in range(width) if counts[r, c] > 0]
    pool = [r * width + c for r in range(height) for c in range(width) if others[r, c] > 0]
    n = min(len(positives), len(pool))
    areas = []
    for j in range(splits):
        drawn = sorted(pool, key=lambda pixel: keys[j, pixel].item())[:n]
        areas.append(literal_roc_area(positives, [s[p] for p in drawn]))
    return sum(areas) / len(areas)


def literal_centre(height, width, sigma):
    return np.array([[math.exp(-(r - (height - 1) / 2) ** 2 / (2 * (sigma * height) ** 2)
                               - (c - (width - 1) / 2) ** 2 / (2 * (sigma * width) ** 2))
                      for c in range(width)] for r in range(height)])


def literal_info_gain(saliency, counts, baseline):
    """MIT's InfoGain: both maps min-max normalised and summed to 1; mean of
    log2(eps + p) - log2(eps + q) over the fixated pixels."""
    def density(values):
        low, high = values.min(), values.max()
        scaled = [[(v - low) / (high - low) for v in row] for row in values]
        total = sum(sum(row) for row in scaled)
        return [[v / total for v in row] for row in scaled]

    p, q = density(saliency), density(baseline)
    gains = [math.log2(EPS + p[r][c]) - math.log2(EPS + q[r][c])
             for r in range(counts.shape[0]) for c in range(counts.shape[1]) if counts[r, c] > 0]
    return sum(gains) / len(gains)


def literal_bilinear(values, height, width):
    """Half-pixel bilinear resampling (align_corners=False) for upsampling, written out."""
    h, w = values.shape
    out = np.zeros((height, width))
    for r in range(height):
        y = min(max((r + 0.5) * h / height - 0.5, 0), h - 1)
        for c in range(width):
            x = min(max((c + 0.5) * w / width - 0.5, 0), w - 1)
            y0, x0 = int(math.floor(y)), int(math.floor(x))
            y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
            dy, dx = y - y0, x - x0
            out[r, c] = ((1 - dy) * (1 - dx) * values[y0, x0] + (1 - dy) * dx * values[y0, x1]
                         + dy * (1 - dx) * values[y1, x0] + dy * dx * values[y1, x1])
    return out


# ------------------------------------------------------------------ sAUC

@pytest.mark.parametrize("splits", [1, 7])
@pytest.mark.parametrize("seed", [0, 5])
def test_sauc_against_the_literal_split_loop(splits, seed):
    maps, counts, others = case()
    values = sauc(maps, counts, others, splits=splits, seed=seed)
    for b in range(len(maps)):
        expected = literal_sauc(maps[b].numpy(), counts[b].numpy(), others[b].numpy(), splits, seed)
        assert values[b].item() == pytest.approx(expected, abs=1e-12)


def test_sauc_is_mits_step_sweep_on_a_map_on_its_step_grid():
    # normalised values j / 10: MIT's thresholds 0, 0.1, ..., max meet every value, so its curve is the exact one
    rng = np.random.default_rng(1)
    levels = rng.integers(0, 11, (HEIGHT, WIDTH)).astype(float)
    levels[0, 0], levels[0, 1] = 0, 10  # min 0 and max 10: (v - 0) / (10 - 0) is exactly the threshold v / 10
    counts, _ = fixation_counts([rng.uniform(0, [HEIGHT - 1, WIDTH - 1], size=(8, 2))], HEIGHT, WIDTH)
    others = torch.zeros_like(counts)
    others[0, 5, 1:6] = 1  # 5 pool pixels, no more than the positives: every split draws them all
    normalised = levels / 10
    positives = normalised[counts[0].numpy() > 0].tolist()
    negatives = normalised[5, 1:6].tolist()
    steps = [j / 10 for j in range(round(max(positives + negatives) * 10), -1, -1)]
    expected = literal_roc_area(positives, negatives, thresholds=steps)
    assert sauc(torch.from_numpy(levels)[None], counts, others, splits=3).item() == pytest.approx(expected, abs=1e-12)


def test_sauc_with_the_whole_pool_drawn_is_the_exact_auc_for_any_seed():
    maps, counts, others = case()
    few = torch.zeros_like(others)
    few[:, 4, 2:5] = 1  # three pool pixels, fewer than every image's positives: each split draws them all
    first = sauc(maps, counts, few, seed=1)
    torch.testing.assert_close(first, sauc(maps, counts, few, seed=99))
    for b in range(len(maps)):
        s = maps[b].numpy()
        positives = s[counts[b].numpy() > 0].tolist()
        assert first[b].item() == pytest.approx(literal_roc_area(positives, s[4, 2:5].tolist()), abs=1e-12)


def test_sauc_hand_worked_case():
    saliency = torch.tensor([[[0.9, 0.1, 0.5], [0.3, 0.5, 0.0]]], dtype=torch.float64)
    counts = torch.tensor([[[1, 0, 2], [0, 0, 0]]], dtype=torch.float64)  # positives 0.9 and 0.5
    others = torch.tensor([[[0, 1, 0], [0, 1, 0]]], dtype=torch.float64)  # negatives 0.1 and 0.5 (a tie)
    # pairs: 0.9 > 0.1, 0.9 > 0.5, 0.5 > 0.1, 0.5 = 0.5 -> (3 + 0.5) / 4
    assert sauc(saliency, counts, others).item() == pytest.approx(0.875, abs=1e-15)


def test_sauc_batched_equals_one_image_at_a_time_and_is_seeded():
    maps, counts, others = case()
    batched = sauc(maps, counts, others, seed=3)
    for b in range(len(maps)):
        torch.testing.assert_close(sauc(maps[b:b + 1], counts[b:b + 1], others[b:b + 1], seed=3), batched[b:b + 1])
    torch.testing.assert_close(sauc(maps, counts, others, seed=3), batched)
    assert not torch.equal(sauc(maps, counts, others, seed=4), batched)


def test_sauc_discounts_a_centre_bias_that_auc_judd_rewards():
    # fixations and other images' fixations from the same centred distribution: the centre map
    # predicts where people look (AUC-Judd high) but not this image's own fixations (sAUC ~ 0.5)
    size, images, rng = 40, 16, np.random.default_rng(0)
    points = [rng.normal(size / 2, 4, size=(60, 2)) for _ in range(images)]
    pools = [rng.normal(size / 2, 4, size=(60, 2)) for _ in range(images)]  # as dense as the positives
    counts, _ = fixation_counts(points, size, size)
    others, _ = fixation_counts(pools, size, size)
    batch = torch.zeros(images, 3, size, size)
    maps = centre(None, batch, torch.zeros(images, dtype=torch.long), Context(torch.zeros(3))).maps
    assert auc_judd(maps, counts).min() > 0.9
    assert abs(sauc(maps, counts, others).mean().item() - 0.5) < 0.03


def test_sauc_ranks_a_map_of_the_fixation_density_above_the_centre_bias():
    size, rng = 40, np.random.default_rng(2)
    points = [rng.normal([10, 28], 3, size=(40, 2)) for _ in range(4)]  # off centre, upper right
    pools = [rng.normal(size / 2, 6, size=(150, 2)) for _ in range(4)]  # other images: centre-biased
    counts, _ = fixation_counts(points, size, size)
    others, _ = fixation_counts(pools, size, size)
    density = fixation_density(counts, 3.0)
    bias = centre(None, torch.zeros(4, 3, size, size), torch.zeros(4, dtype=torch.long), Context(torch.zeros(3))).maps
    assert (sauc(density, counts, others) > sauc(bias, counts, others) + 0.2).all()
    assert (sauc(density, counts, others) > 0.8).all()


def test_sauc_resizes_a_map_of_another_size_to_the_fixation_grid():
    maps, counts, others = case()
    maps, counts, others = maps[[0, 2]], counts[[0, 2]], others[[0, 2]]  # no ties that rounding could break
    coarse = maps[:, ::3, ::2][:, :3, :5].contiguous()  # (3, 5) -> upsampled to (9, 11)
    resized = torch.from_numpy(np.stack([literal_bilinear(m.numpy(), HEIGHT, WIDTH) for m in coarse]))
    torch.testing.assert_close(sauc(coarse, counts, others, splits=4), sauc(resized, counts, others, splits=4))


def test_sauc_undefined_and_chance_cases():
    maps, counts, others = case()
    counts[1] = 0  # no fixations
    others[2] = 0  # no negatives
    maps[3] = 0.25  # constant: every pair ties
    values = sauc(maps, counts, others)
    assert math.isnan(values[1]) and math.isnan(values[2]) and values[3].item() == 0.5
    assert np.isfinite(values[0].item())
    assert torch.isnan(sauc(maps[:1], torch.zeros_like(counts[:1]), others[:1])).all()


def test_sauc_refuses_bad_inputs():
    maps, counts, others = case()
    with pytest.raises(ConfigError, match="at least 1 split; got splits=0"):
        sauc(maps, counts, others, splits=0)
    with pytest.raises(InputError, match=r"others and counts must have one shape \(B, H, W\); got \(4, 9, 10\)"):
        sauc(maps, counts, others[:, :, :10])
    with pytest.raises(InputError, match="maps and counts must hold one map per image; got 3 and 4"):
        sauc(maps[:3], counts, others)
    bad = maps.clone()
    bad[2, 0, 0] = math.nan
    with pytest.raises(InputError, match=r"maps hold NaN or infinite values in images \[2\]"):
        sauc(bad, counts, others)


# ------------------------------------------------------------------ information gain

def test_info_gain_against_mits_infogain_loop():
    maps, counts, _ = case()
    rng = np.random.default_rng(4)
    baseline = rng.uniform(size=(HEIGHT, WIDTH))
    given = info_gain(maps, counts, torch.from_numpy(baseline))
    default = info_gain(maps, counts)
    centre_map = literal_centre(HEIGHT, WIDTH, CentreParameters().centre_sigma)
    for b in range(len(maps)):
        s, c = maps[b].numpy(), counts[b].numpy()
        assert given[b].item() == pytest.approx(literal_info_gain(s, c, baseline), rel=1e-12, abs=1e-12)
        assert default[b].item() == pytest.approx(literal_info_gain(s, c, centre_map), rel=1e-12, abs=1e-12)


def test_info_gain_takes_one_baseline_per_image_and_resizes_both_maps():
    maps, counts, _ = case()
    rng = np.random.default_rng(5)
    baselines = torch.from_numpy(rng.uniform(size=(len(maps), 3, 4)))
    coarse = maps[:, :3, :4].contiguous()
    values = info_gain(coarse, counts, baselines)
    for b in range(len(maps)):
        s = literal_bilinear(coarse[b].numpy(), HEIGHT, WIDTH)
        q = literal_bilinear(baselines[b].numpy(), HEIGHT, WIDTH)
        assert values[b].item() == pytest.approx(literal_info_gain(s, counts[b].numpy(), q), rel=1e-10, abs=1e-10)


def test_info_gain_hand_worked_case():
    # map [[1, 3], [0, 2]] -> min-max [[1/3, 1], [0, 2/3]], sum 2 -> p = [[1/6, 1/2], [0, 1/3]];
    # baseline [[0, 1], [1, 1]] -> q = [[0, 1/3], [1/3, 1/3]]; fixated: (0, 1) and (1, 1)
    saliency = torch.tensor([[[1.0, 3.0], [0.0, 2.0]]], dtype=torch.float64)
    baseline = torch.tensor([[0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    counts = torch.tensor([[[0, 1], [0, 3]]], dtype=torch.float64)
    expected = (math.log2(EPS + 1 / 2) - math.log2(EPS + 1 / 3) + math.log2(EPS + 1 / 3) - math.log2(EPS + 1 / 3)) / 2
    assert info_gain(saliency, counts, baseline).item() == pytest.approx(expected, abs=1e-15)


def test_the_centre_bias_gains_nothing_over_itself():
    size = 32
    counts, _ = fixation_counts([np.random.default_rng(0).uniform(0, size - 1, size=(30, 2))], size, size)
    bias = centre(None, torch.zeros(1, 3, size, size), torch.zeros(1, dtype=torch.long), Context(torch.zeros(3))).maps
    assert abs(info_gain(bias, counts).item()) < 1e-6  # float32 maps against the float64 default baseline
    assert info_gain(bias.double(), counts, bias[0].double()).item() == 0.0


def test_a_map_equal_to_the_fixation_density_gains_over_the_centre_bias():
    size, rng = 40, np.random.default_rng(6)
    points = [rng.normal([12, 27], 3, size=(40, 2)), rng.normal([30, 9], 2, size=(25, 2))]
    counts, _ = fixation_counts(points, size, size)
    density = fixation_density(counts, 3.0) + 1e-6  # floored: a fixation on a 0 costs log2(eps) bits
    gains = info_gain(density, counts)
    assert (gains > 1).all()
    bias = centre(None, torch.zeros(2, 3, size, size), torch.zeros(2, dtype=torch.long), Context(torch.zeros(3))).maps
    assert (nss(density, counts) > nss(bias, counts)).all()
    assert (info_gain(bias, counts, density) < -1).all()  # and the centre bias loses against the density


def test_info_gain_undefined_cases():
    maps, counts, _ = case()
    counts[0] = 0
    maps[1] = 3.0
    values = info_gain(maps, counts)
    assert math.isnan(values[0]) and math.isnan(values[1]) and np.isfinite(values[2:].numpy()).all()
    assert torch.isnan(info_gain(maps, counts, torch.ones(HEIGHT, WIDTH))).all()  # a constant baseline


def test_info_gain_refuses_bad_inputs():
    maps, counts, _ = case()
    with pytest.raises(InputError, match=r"baseline hold NaN or infinite values in images \[0, 1, 2, 3\]"):
        info_gain(maps, counts, torch.full((HEIGHT, WIDTH), math.inf))
    with pytest.raises(InputError, match="baseline and counts must hold one map per image; got 2 and 4"):
        info_gain(maps, counts, torch.ones(2, HEIGHT, WIDTH))
    with pytest.raises(InputError, match=r"counts must be a tensor batch \(B, H, W\)"):
        info_gain(maps, counts[0])


# ------------------------------------------------------------------ partners

def test_shuffle_partners_draw_other_images_with_fixations_per_image_seed():
    has = [True, False, True, True, True, True, False, True]
    partners = shuffle_partners(has, count=3, seed=8)
    assert len(partners) == len(has)
    for index, chosen in enumerate(partners):
        assert len(chosen) == 3 and len(set(chosen.tolist())) == 3 and list(chosen) == sorted(chosen)
        assert index not in chosen and all(has[j] for j in chosen)
    # image i's draw depends on (seed, i) only: the same in a longer set
    longer = shuffle_partners(has + [False, False], count=3, seed=8)
    assert all(np.array_equal(a, b) for a, b in zip(partners, longer[:len(has)], strict=True))
    assert any(not np.array_equal(a, b) for a, b in zip(partners, shuffle_partners(has, count=3, seed=9), strict=True))
    assert [p.tolist() for p in shuffle_partners([True, True, False], seed=0)] == [[1], [0], [0, 1]]
    assert [p.tolist() for p in shuffle_partners([True], seed=0)] == [[]]


def test_shuffle_partners_refuse_bad_settings():
    with pytest.raises(ConfigError, match="at least one partner image per image; got count=0"):
        shuffle_partners([True, True], count=0)
    with pytest.raises(ConfigError, match="whole number >= 0; got seed=-1"):
        shuffle_partners([True, True], seed=-1)
