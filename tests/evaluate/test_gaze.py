"""Gaze metrics: each against a literal per-image implementation written from the MIT
definitions, hand-worked cases, analytic cases, and batched against one image at a time."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from net2brain_fovex.errors import ConfigError, InputError
from net2brain_fovex.evaluate.gaze import auc_judd, cc, fixation_counts, fixation_density, kld, nss, sim

EPS = 2.220446049250313e-16
HEIGHT, WIDTH = 9, 11


def random_case():
    """5 maps of 9 x 11 (signed, quantised with ties, positive) and their fixations.

    Every image has a duplicate fixation and two points rounding to one pixel; image 3
    has fixations outside the image too.
    """
    rng = np.random.default_rng(7)
    maps = np.stack([
        rng.normal(size=(HEIGHT, WIDTH)),
        rng.integers(0, 4, (HEIGHT, WIDTH)).astype(float),  # ties, also among fixated pixels
        rng.uniform(size=(HEIGHT, WIDTH)),
        rng.exponential(size=(HEIGHT, WIDTH)),
        rng.integers(0, 2, (HEIGHT, WIDTH)) * rng.uniform(size=(HEIGHT, WIDTH)),  # many zeros
    ])
    points = []
    for b in range(5):
        inside = rng.uniform([-0.4, -0.4], [HEIGHT - 0.6, WIDTH - 0.6], size=(3 + b, 2))
        extra = [inside[0], inside[1] + 0.1]  # the same point again; a point in the same pixel
        if b == 3:
            extra += [[-2.0, 3.0], [4.0, WIDTH + 0.7]]
        points.append(np.concatenate([inside, np.array(extra)]))
    return torch.from_numpy(maps), points


def literal_counts(points, height, width):
    counts, dropped = np.zeros((height, width)), 0
    for row, col in points:
        r, c = round(float(row)), round(float(col))  # Python rounds halves to even too
        if 0 <= r < height and 0 <= c < width:
            counts[r, c] += 1
        else:
            dropped += 1
    return counts, dropped


def literal_density(counts, sigma):
    blurred = gaussian_filter(counts, sigma, mode="constant", truncate=4.0)
    return blurred / blurred.sum() if blurred.sum() > 0 else blurred


def literal_nss(saliency, counts):
    z = (saliency - saliency.mean()) / saliency.std(ddof=1)
    values = [z[r, c] for r in range(saliency.shape[0]) for c in range(saliency.shape[1]) if counts[r, c] > 0]
    return sum(values) / len(values)


def literal_auc_judd(saliency, counts, ties="shared"):
    """MIT's AUC_Judd loop without jitter. ties="mit" is its formula as written (tp = i / k),
    ties="shared" counts the fixated pixels at or above each threshold instead."""
    s = ((saliency - saliency.min()) / (saliency.max() - saliency.min())).ravel().tolist()
    fixated = (counts.ravel() > 0).tolist()
    n, k = len(s), sum(fixated)
    thresholds = sorted((s[p] for p in range(n) if fixated[p]), reverse=True)
    tp, fp = [0.0], [0.0]
    for i, t in enumerate(thresholds, start=1):
        above = sum(1 for v in s if v >= t)
        hits = i if ties == "mit" else sum(1 for p in range(n) if fixated[p] and s[p] >= t)
        tp.append(hits / k)
        fp.append((above - hits) / (n - k))
    tp.append(1.0)
    fp.append(1.0)
    return float(np.trapezoid(tp, fp))


def literal_cc(saliency, density):
    a, b = saliency.ravel().tolist(), density.ravel().tolist()
    mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
    cov = sum((x - mean_a) * (y - mean_b) for x, y in zip(a, b, strict=True))
    return cov / math.sqrt(sum((x - mean_a) ** 2 for x in a) * sum((y - mean_b) ** 2 for y in b))


def literal_kld(saliency, density):
    q = [v / saliency.sum() for v in saliency.ravel().tolist()]
    p = [v / density.sum() for v in density.ravel().tolist()]
    return sum(pi * math.log(EPS + pi / (qi + EPS)) for pi, qi in zip(p, q, strict=True))


def literal_sim(saliency, density):
    def unit(values):
        scaled = [(v - min(values)) / (max(values) - min(values)) for v in values]
        return [v / sum(scaled) for v in scaled]

    p, q = unit(saliency.ravel().tolist()), unit(density.ravel().tolist())
    return sum(min(a, b) for a, b in zip(p, q, strict=True))


def test_fixation_counts_round_count_duplicates_and_drop_outside_points():
    points = [
        [[2.4, 3.6], [2.5, 3.5], [1.5, 0.49], [2.4, 3.6], [-0.6, 0.0], [0.0, 10.6], [8.5, 10.4], [-0.5, -0.5]],
        [],
        np.array([[8, 10]]),
        torch.tensor([[9.0, 0.0], [3.0, 3.0]]),
    ]
    counts, dropped = fixation_counts(points, HEIGHT, WIDTH)
    expected = np.zeros((4, HEIGHT, WIDTH))
    expected[0, 2, 4] = 3  # 2.4, 3.6 twice; 2.5, 3.5 rounds (to even) to the same pixel
    expected[0, 2, 0] = 1  # 1.5 -> 2, 0.49 -> 0
    expected[0, 8, 10] = 1  # 8.5 -> 8 (to even), 10.4 -> 10
    expected[0, 0, 0] = 1  # -0.5 -> -0: inside
    expected[2, 8, 10] = 1
    expected[3, 3, 3] = 1
    assert counts.dtype == torch.float64 and dropped.dtype == torch.int64
    np.testing.assert_array_equal(counts.numpy(), expected)
    assert dropped.tolist() == [2, 0, 0, 1]  # -0.6 -> -1, 10.6 -> 11; 9 is past the last row


def test_fixation_counts_against_a_literal_loop():
    _, points = random_case()
    counts, dropped = fixation_counts(points, HEIGHT, WIDTH)
    for b, image_points in enumerate(points):
        expected, outside = literal_counts(image_points, HEIGHT, WIDTH)
        np.testing.assert_array_equal(counts[b].numpy(), expected)
        assert dropped[b].item() == outside
    assert dropped.tolist() == [0, 0, 0, 2, 0]
    assert counts.sum().item() == sum(len(p) for p in points) - 2


def test_fixation_density_is_scipys_gaussian_filter_normalised():
    _, points = random_case()
    counts, _ = fixation_counts(points + [[]], HEIGHT, WIDTH)
    # sigma 3 has radius 12, wider than the image; 0.3 has radius 1
    for sigma in (0.3, 1.0, 1.7, 3.0):
        density = fixation_density(counts, sigma)
        assert density.dtype == torch.float64 and density.shape == counts.shape
        for b in range(len(counts)):
            expected = literal_density(counts[b].numpy(), sigma)
            np.testing.assert_allclose(density[b].numpy(), expected, rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(density[:-1].sum(dim=(1, 2)).numpy(), 1.0, rtol=1e-12)
        assert (density[-1] == 0).all()  # no fixations: stays zero


def test_each_metric_against_its_literal_implementation():
    maps, points = random_case()
    counts, _ = fixation_counts(points, HEIGHT, WIDTH)
    density = fixation_density(counts, 1.5)
    positive = maps - maps.amin(dim=(1, 2), keepdim=True)  # KLD needs S >= 0; the zeros test its eps
    scores = {
        "nss": nss(maps, counts), "auc": auc_judd(maps, counts), "cc": cc(maps, density),
        "kld": kld(positive, density), "sim": sim(maps, density),
    }
    for b in range(5):
        s, c, d = maps[b].numpy(), counts[b].numpy(), density[b].numpy()
        assert scores["nss"][b].item() == pytest.approx(literal_nss(s, c), rel=1e-12)
        assert scores["auc"][b].item() == pytest.approx(literal_auc_judd(s, c), rel=1e-12)
        assert scores["cc"][b].item() == pytest.approx(literal_cc(s, d), rel=1e-10)
        assert scores["kld"][b].item() == pytest.approx(literal_kld(positive[b].numpy(), d), rel=1e-10)
        assert scores["sim"][b].item() == pytest.approx(literal_sim(s, d), rel=1e-10)
    for name, score in scores.items():
        assert score.dtype == torch.float64 and score.shape == (5,), name


def test_auc_judd_is_mits_formula_where_the_fixated_values_are_distinct():
    maps, points = random_case()
    counts, _ = fixation_counts(points, HEIGHT, WIDTH)
    scores = auc_judd(maps, counts)
    for b in (0, 2, 3):  # continuous maps: fixated pixels with distinct values
        expected = literal_auc_judd(maps[b].numpy(), counts[b].numpy(), ties="mit")
        assert scores[b].item() == pytest.approx(expected, rel=1e-12)
    # the quantised map has fixated pixels tied with each other, where the two differ
    quantised = maps[1].numpy(), counts[1].numpy()
    assert literal_auc_judd(*quantised, ties="mit") != pytest.approx(literal_auc_judd(*quantised))


def test_hand_worked_2x2_cases():
    # S = [[1, 2], [3, 4]], fixations on 4 (twice) and 2.
    # NSS: mean 2.5, ddof-1 variance (2.25 + .25 + .25 + 2.25) / 3 = 5 / 3;
    #   z = 1.5 / sqrt(5/3) and -0.5 / sqrt(5/3), mean 0.5 / sqrt(5/3) = 0.5 sqrt(0.6).
    # AUC-Judd: S -> [0, 1/3, 2/3, 1], thresholds 1 and 1/3, N = 4, k = 2;
    #   t = 1: 1 above, tp 1/2, fp 0; t = 1/3: 3 above, tp 1, fp (3 - 2) / 2 = 1/2;
    #   (0,0) (0,.5) (.5,1) (1,1): 0 + .5 * .75 + .5 * 1 = 0.875.
    saliency = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    counts = torch.tensor([[[0.0, 1.0], [0.0, 2.0]]])
    assert nss(saliency, counts).item() == pytest.approx(0.5 * math.sqrt(0.6), rel=1e-12)
    assert auc_judd(saliency, counts).item() == pytest.approx(0.875, rel=1e-12)
    # S = [[1, 1], [1, 0]], fixations on the top left and the bottom right: S unchanged by
    #   min-max; t = 1: 3 above, tp 1/2, fp (3 - 1) / 2 = 1; t = 0: tp 1, fp 1;
    #   (0,0) (1,.5) (1,1) (1,1): 1 * .25 = 0.25.
    assert auc_judd(torch.tensor([[[1.0, 1.0], [1.0, 0.0]]]), torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])).item() == 0.25
    # S = [[2, 2], [1, 0]], both 2s fixated: one threshold, 1, with both fixated pixels
    #   above it, tp 1, fp 0, so AUC 1 (MIT's formula without jitter: tp 1/2, fp 1/2, then
    #   tp 1, fp 0: .5 * .25 - .5 * .75 + 1 = 0.75).
    assert auc_judd(torch.tensor([[[2.0, 2.0], [1.0, 0.0]]]), torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])).item() == 1.0
    # SIM: S = [[0, 1], [1, 2]] -> [0, .5, .5, 1] / 2 = [0, .25, .25, .5];
    #   D = [[.5, 0], [0, .5]] -> [1, 0, 0, 1] / 2 = [.5, 0, 0, .5]; sum min = 0.5.
    density = torch.tensor([[[0.5, 0.0], [0.0, 0.5]]])
    assert sim(torch.tensor([[[0.0, 1.0], [1.0, 2.0]]]), density).item() == pytest.approx(0.5, rel=1e-12)
    # KLD: S = 1 everywhere -> Q = .25; P = [.5, 0, 0, .5]:
    #   2 * .5 * log(eps + .5 / (.25 + eps)) = log 2 (to ~1e-15).
    assert kld(torch.ones(1, 2, 2), density).item() == pytest.approx(math.log(2), rel=1e-12)
    # S = [[3, 1], [0, 0]] -> Q = [.75, .25, 0, 0]: .5 log(eps + .5 / (.75 + eps)) + .5 log(eps + .5 / eps),
    #   = .5 log(2/3) + .5 * 35.35 = 17.47: the eps keeps a zero of Q finite
    expected = 0.5 * math.log(EPS + 0.5 / (0.75 + EPS)) + 0.5 * math.log(EPS + 0.5 / EPS)
    assert expected == pytest.approx(17.4725, abs=1e-3)
    assert kld(torch.tensor([[[3.0, 1.0], [0.0, 0.0]]]), density).item() == pytest.approx(expected, rel=1e-12)
    # CC: S = [[2, 0], [0, 1]], centred [1.25, -.75, -.75, .25]; D centred [.25, -.25, -.25, .25];
    #   cov .75, norms sqrt(2.75) and .5: .75 / sqrt(.6875) = 3 / sqrt(11); S = [1, 2, 3, 4]: 0.
    assert cc(torch.tensor([[[2.0, 0.0], [0.0, 1.0]]]), density).item() == pytest.approx(3 / math.sqrt(11), rel=1e-12)
    assert cc(saliency, density).item() == pytest.approx(0.0, abs=1e-15)


def test_a_constant_map_scores_chance():
    maps, points = random_case()
    counts, _ = fixation_counts(points, HEIGHT, WIDTH)
    # the mean of 99 pixels of 0.9 is 0.9 + 1 ulp: a std computed naively is not 0
    assert (torch.full((99,), 0.9, dtype=torch.float64).mean() != 0.9).item()
    constant = torch.full_like(maps, 0.9)
    torch.testing.assert_close(nss(constant, counts), torch.zeros(5, dtype=torch.float64), rtol=0, atol=0)
    torch.testing.assert_close(auc_judd(constant, counts), torch.full((5,), 0.5, dtype=torch.float64))
    density = fixation_density(counts, 1.0)
    assert cc(constant, density).isnan().all() and sim(constant, density).isnan().all()


def test_a_map_equal_to_the_density_agrees_fully():
    maps, points = random_case()
    density = fixation_density(fixation_counts(points, HEIGHT, WIDTH)[0], 1.2)
    ones = torch.ones(5, dtype=torch.float64)
    torch.testing.assert_close(cc(density, density), ones, rtol=0, atol=1e-12)
    torch.testing.assert_close(sim(density, density), ones, rtol=0, atol=1e-12)
    torch.testing.assert_close(kld(density, density), 0 * ones, rtol=0, atol=1e-12)
    torch.testing.assert_close(cc(-density, density), -ones, rtol=0, atol=1e-12)
    # and disagreeing lowers them
    other = fixation_density(fixation_counts(points[1:] + points[:1], HEIGHT, WIDTH)[0], 1.2)
    assert (cc(other, density) < 0.99).all() and (sim(other, density) < 0.99).all() and (kld(other, density) > 0.01).all()


def test_a_map_on_exactly_the_fixated_pixels_scores_auc_1():
    _, points = random_case()
    counts, _ = fixation_counts(points, HEIGHT, WIDTH)
    indicator = (counts > 0).double()
    torch.testing.assert_close(auc_judd(indicator, counts), torch.ones(5, dtype=torch.float64), rtol=0, atol=1e-12)
    # the opposite map scores 0.5, not 0: its one threshold puts every pixel above, and
    # AUC-Judd's curve goes straight from (0, 0) to that point, (1, 1)
    torch.testing.assert_close(auc_judd(1 - indicator, counts), torch.full((5,), 0.5, dtype=torch.float64))
    assert (nss(indicator, counts) > 2).all()


def test_batched_equals_one_image_at_a_time():
    maps, points = random_case()
    counts, _ = fixation_counts(points, HEIGHT, WIDTH)
    density = fixation_density(counts, 1.5)
    for metric, other, inputs in [(nss, counts, maps), (auc_judd, counts, maps), (cc, density, maps),
                                  (kld, density, maps.abs()), (sim, density, maps)]:
        together = metric(inputs, other)
        for b in range(5):
            alone = metric(inputs[b:b + 1], other[b:b + 1])
            torch.testing.assert_close(together[b:b + 1], alone, rtol=1e-13, atol=0, msg=metric.__name__)
    for b in range(5):
        alone = fixation_density(counts[b:b + 1], 1.5)
        torch.testing.assert_close(density[b:b + 1], alone, rtol=1e-13, atol=1e-18)


def test_an_image_without_fixations_scores_nan():
    maps, points = random_case()
    points[2] = np.zeros((0, 2))
    counts, _ = fixation_counts(points, HEIGHT, WIDTH)
    density = fixation_density(counts, 1.5)
    for score in (nss(maps, counts), auc_judd(maps, counts), cc(maps, density), kld(maps.abs(), density),
                  sim(maps, density)):
        assert score.isnan().tolist() == [False, False, True, False, False]


def test_undefined_scores_are_nan():
    counts = torch.zeros(1, 2, 2)
    counts[0, 0, 0] = 1
    density = fixation_density(counts, 1.0)
    signed = torch.tensor([[[1.0, -1.0], [0.5, 0.0]]])
    assert kld(signed, density).isnan().item() and kld(torch.zeros(1, 2, 2), density).isnan().item()
    # a negative value where the density is 0 would add 0 * log(eps) = 0: still NaN
    hand_density = torch.tensor([[[0.5, 0.0], [0.0, 0.5]]])
    assert kld(torch.tensor([[[1.0, -1.0], [0.0, 1.0]]]), hand_density).isnan().item()
    assert not nss(signed, counts).isnan().item() and not sim(signed, density).isnan().item()
    # every pixel fixated: no negatives for the ROC curve
    assert auc_judd(signed, torch.ones(1, 2, 2)).isnan().item()


def test_scores_come_back_on_the_maps_device_in_float64():
    maps, points = random_case()
    counts, _ = fixation_counts(points, HEIGHT, WIDTH)
    scores = nss(maps.float(), counts.float())
    torch.testing.assert_close(scores, nss(maps.float().double(), counts), rtol=1e-12, atol=0)
    assert scores.dtype == torch.float64 and scores.device == maps.device


def test_bad_inputs_are_refused():
    maps, points = random_case()
    counts, _ = fixation_counts(points, HEIGHT, WIDTH)
    for metric in (nss, auc_judd, cc, kld, sim):
        with pytest.raises(InputError, match=r"maps and .* must have one shape .*\(5, 9, 11\) and \(5, 9, 10\)"):
            metric(maps, counts[:, :, :10])
        with pytest.raises(InputError, match=r"must be a tensor batch"):
            metric(maps[0], counts[0])
    broken = maps.clone()
    broken[3, 2, 2] = torch.nan
    broken[1, 0, 0] = torch.inf
    with pytest.raises(InputError, match=r"maps hold NaN or infinite values in images \[1, 3\]"):
        nss(broken, counts)
    with pytest.raises(InputError, match=r"NaN or infinite"):
        sim(broken, counts)
    with pytest.raises(InputError, match=r"counts hold NaN"):
        fixation_density(counts * torch.nan, 1.0)
    for sigma in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="sigma > 0"):
            fixation_density(counts, sigma)
    with pytest.raises(InputError, match=r"image 1 must be \(k, 2\)"):
        fixation_counts([[[1, 2]], [1, 2, 3]], HEIGHT, WIDTH)
    with pytest.raises(InputError, match=r"image 0 hold NaN"):
        fixation_counts([[[1, float("nan")]]], HEIGHT, WIDTH)
    with pytest.raises(ConfigError, match="at least 1 x 1"):
        fixation_counts([[[1, 2]]], 0, WIDTH)
