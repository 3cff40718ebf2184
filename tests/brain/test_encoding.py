"""The encoding engine (`net2brain_fovex.brain.encoding`): the solvers against their
closed forms written out literally, the alpha search against a literal inner-CV loop, the
folds, leakage, planted truths (layers, noise levels, variance partitions), the split-half
noise ceiling, saved models, and the checks of options and inputs."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold

from net2brain_fovex.brain.encoding import (
    EncodingParameters,
    fit_encoding,
    fixed_split,
    noise_ceiling,
    outer_folds,
    partition_variance,
    predict,
    save_models,
)
from net2brain_fovex.errors import ConfigError, InputError


def standardised(x: np.ndarray, y: np.ndarray, train: np.ndarray):
    """The training-set z-scored features and centred responses of every stimulus (float64)."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    return (x - mean) / std, y - y[train].mean(axis=0), y[train].mean(axis=0)


def closed_form(z: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    return np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ y)


def split(n: int, test: int) -> tuple[np.ndarray, np.ndarray]:
    test_set = np.arange(n - test, n)
    return np.arange(n - test), test_set


def data(n=80, f=12, targets=20, noise=1.0, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, f)) * rng.uniform(0.5, 3, f) + rng.normal(0, 2, f)
    y = x @ rng.standard_normal((f, targets)) + noise * rng.standard_normal((n, targets)) + 5.0
    return x.astype(np.float32), y.astype(np.float32)


def test_fixed_alpha_equals_the_closed_form():
    x, y = data()
    train, test = split(len(x), 20)
    for alpha in (0.1, 10.0, 1000.0):
        result = fit_encoding(x, y, EncodingParameters(alphas=(alpha,)), test_sets=[test])
        z, yc, mean = standardised(x, y, train)
        expected = z[test] @ closed_form(z[train], yc[train], alpha) + mean
        np.testing.assert_allclose(result.predictions[test], expected, rtol=1e-4, atol=1e-3)
        assert np.isnan(result.predictions[train]).all()
        assert np.all(result.alphas == alpha)


@pytest.mark.parametrize("shape", [(80, 12, 30), (60, 100, 30)])  # more stimuli than features, and fewer
def test_leave_one_out_equals_scikit_learns_ridgecv(shape):
    n, f, targets = shape
    x, y = data(n=n, f=f, targets=targets, noise=4.0, seed=1)
    train, test = split(len(x), 15)
    alphas = tuple(np.logspace(-3, 5, 17))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = fit_encoding(x, y, EncodingParameters(alphas=alphas, inner="loo"), test_sets=[test])
    z, _, _ = standardised(x, y, train)  # the same standardisation; RidgeCV fits the intercept
    reference = RidgeCV(alphas=alphas, alpha_per_target=True).fit(z[train], y[train].astype(np.float64))
    np.testing.assert_array_equal(result.alphas[0], reference.alpha_)
    assert len(np.unique(reference.alpha_)) > 2
    expected = reference.predict(z[test])
    np.testing.assert_allclose(result.predictions[test], expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_leave_one_out_equals_a_literal_leave_one_out_loop():
    for n, f in ((24, 5), (16, 30)):
        x, y = data(n=n, f=f, targets=12, noise=3.0, seed=3)
        train, test = split(len(x), 4)
        alphas = tuple(np.logspace(-3, 4, 8))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            result = fit_encoding(x, y, EncodingParameters(alphas=alphas, inner="loo"), test_sets=[test])
        z, yc, mean = standardised(x, y, train)
        zt, yt = z[train], yc[train]
        scores = np.zeros((len(alphas), y.shape[1]))
        for a, alpha in enumerate(alphas):
            for i in range(len(zt)):  # refit without stimulus i, an unpenalised intercept, the same z
                rest = np.delete(np.arange(len(zt)), i)
                design = np.hstack([np.ones((len(rest), 1)), zt[rest]])
                penalty = alpha * np.eye(f + 1)
                penalty[0, 0] = 0.0
                weights = np.linalg.solve(design.T @ design + penalty, design.T @ yt[rest])
                scores[a] += (yt[i] - np.r_[1.0, zt[i]] @ weights) ** 2
        chosen = np.asarray(alphas)[scores.argmin(axis=0)]
        np.testing.assert_array_equal(result.alphas[0], chosen)
        assert len(np.unique(chosen)) > 1
        expected = np.stack([z[test] @ closed_form(zt, yt[:, [t]], chosen[t])[:, 0] for t in range(12)], axis=1)
        np.testing.assert_allclose(result.predictions[test], expected + mean, rtol=1e-5, atol=1e-4)


def test_generalised_cross_validation_equals_its_formula_with_the_hat_matrix_written_out():
    for n, f in ((40, 6), (24, 50)):  # more stimuli than features, and fewer
        x, y = data(n=n, f=f, targets=25, noise=3.0, seed=4)
        train, test = split(len(x), 6)
        alphas = tuple(np.logspace(-3, 5, 17))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            result = fit_encoding(x, y, EncodingParameters(alphas=alphas, inner="gcv"), test_sets=[test])
        z, yc, mean = standardised(x, y, train)
        zt, yt = z[train], yc[train]
        m = len(zt)
        centring = np.eye(m) - np.ones((m, m)) / m
        zc = centring @ zt
        scores = np.empty((len(alphas), y.shape[1]))
        for a, alpha in enumerate(alphas):  # the hat matrix of the penalised features plus the intercept
            hat = np.ones((m, m)) / m + zc @ np.linalg.solve(zc.T @ zc + alpha * np.eye(f), zc.T)
            residual = (np.eye(m) - hat) @ yt
            scores[a] = m * (residual ** 2).sum(axis=0) / np.trace(np.eye(m) - hat) ** 2
        chosen = np.asarray(alphas)[scores.argmin(axis=0)]
        np.testing.assert_array_equal(result.alphas[0], chosen)
        assert len(np.unique(chosen)) > 1
        expected = np.stack([z[test] @ closed_form(zt, yt[:, [t]], chosen[t])[:, 0] for t in range(25)], axis=1)
        np.testing.assert_allclose(result.predictions[test], expected + mean, rtol=1e-5, atol=1e-4)


def test_generalised_and_leave_one_out_choose_alike_and_predict_alike():
    x, y = data(n=200, f=40, targets=60, noise=4.0, seed=5)
    gcv = fit_encoding(x, y, EncodingParameters(inner="gcv"))
    loo = fit_encoding(x, y, EncodingParameters(inner="loo"))
    assert (gcv.alphas == loo.alphas).mean() > 0.8
    assert abs(gcv.r.mean() - loo.r.mean()) < 1e-3


def test_scores_without_kept_predictions_are_the_same():
    x, y = data(n=60, f=10, targets=30, seed=6)
    kept = fit_encoding(x, y, EncodingParameters(chunk=7))
    streamed = fit_encoding(x, y, EncodingParameters(chunk=7), keep_predictions=False)
    assert streamed.predictions is None
    for name in ("r", "r2", "fold_r", "fold_r2", "alphas"):
        np.testing.assert_array_equal(getattr(streamed, name), getattr(kept, name))
    whole = fit_encoding(x, y, EncodingParameters())  # one chunk: a target's result does not depend on its chunk
    np.testing.assert_allclose(whole.r, kept.r, rtol=1e-12)
    np.testing.assert_array_equal(whole.alphas, kept.alphas)


def test_alpha_selection_equals_a_literal_inner_cv_loop():
    x, y = data(n=90, f=15, targets=40, noise=4.0, seed=1)
    train, test = split(len(x), 18)
    alphas = tuple(np.logspace(-2, 4, 7))
    parameters = EncodingParameters(alphas=alphas, inner="kfold", inner_folds=4, seed=7)
    result = fit_encoding(x, y, parameters, test_sets=[test])
    z, yc, _ = standardised(x, y, train)
    zt, yt = z[train], yc[train]
    scores = np.zeros((len(alphas), y.shape[1]))
    for a, alpha in enumerate(alphas):
        for inner_train, inner_test in KFold(4, shuffle=True, random_state=7).split(zt):  # seed + fold 0
            weights = closed_form(zt[inner_train], yt[inner_train], alpha)
            scores[a] -= ((yt[inner_test] - zt[inner_test] @ weights) ** 2).mean(axis=0)
    expected = np.asarray(alphas)[scores.argmax(axis=0)]
    np.testing.assert_array_equal(result.alphas[0], expected)
    assert len(np.unique(expected)) > 1  # the targets did not all choose one alpha


def test_outer_folds_are_disjoint_seeded_and_cover_every_stimulus():
    for n, folds in [(10, 3), (101, 5), (7, 2)]:
        sets = outer_folds(n, folds, seed=4)
        joined = np.concatenate(sets)
        assert sorted(joined.tolist()) == list(range(n))
        sizes = [len(s) for s in sets]
        assert max(sizes) - min(sizes) <= 1 and len(sets) == folds
        assert all(np.array_equal(a, b) for a, b in zip(sets, outer_folds(n, folds, seed=4), strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(outer_folds(50, 5, 0), outer_folds(50, 5, 1), strict=True))
    with pytest.raises(InputError, match="too few"):
        outer_folds(4, 5, 0)
    with pytest.raises(ConfigError):
        outer_folds(10, 1, 0)


def test_fixed_split_and_its_errors():
    ids = ["a", "b", "c", "d", "e"]
    assert fixed_split(ids, ["d", "b"])[0].tolist() == [1, 3]
    for bad in (["z"], [], ["a", "b", "c", "d"], ["a", "a"]):
        with pytest.raises(InputError):
            fixed_split(ids, bad)


def test_no_leakage_with_a_reduction():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((100, 300)).astype(np.float32)
    y = rng.standard_normal((100, 400)).astype(np.float32)
    for reduce in ("pca:10", "srp:10", None):
        result = fit_encoding(x, y, EncodingParameters(reduce=reduce, alphas=(1.0, 100.0, 1e4)))
        assert abs(np.nanmean(result.r)) < 0.05, reduce


def test_planted_truth_is_found_in_its_layer_near_the_ceiling():
    rng = np.random.default_rng(5)
    n, f = 500, 20
    a = rng.standard_normal((n, f)).astype(np.float32)
    b = rng.standard_normal((n, f)).astype(np.float32)
    signal = a @ rng.standard_normal((f, 60))
    signal /= signal.std(axis=0)
    levels = np.repeat([0.5, 1.0, 2.0], 20)  # noise sd per target; signal sd 1
    y = (signal + levels * rng.standard_normal((n, 60))).astype(np.float32)
    ceiling = 1 / np.sqrt(1 + levels**2)
    parameters = EncodingParameters()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # B's targets choose the largest alpha
        r_a, r_b = (fit_encoding(layer, y, parameters).r for layer in (a, b))
    assert np.all(r_a > r_b)
    for level in np.unique(levels):
        chosen = levels == level
        assert ceiling[chosen][0] - 0.08 < r_a[chosen].mean() <= ceiling[chosen][0] + 0.03, level
        assert abs(r_b[chosen].mean()) < 0.1


def test_linear_equals_numpy_lstsq():
    for f in (10, 60):  # over- and under-determined: the minimum-norm solution
        x, y = data(n=50, f=f, targets=7)
        train, test = split(len(x), 10)
        result = fit_encoding(x, y, EncodingParameters(model="linear"), test_sets=[test])
        z, yc, mean = standardised(x, y, train)
        weights = np.linalg.lstsq(z[train], yc[train], rcond=None)[0]
        np.testing.assert_allclose(result.predictions[test], z[test] @ weights + mean, rtol=1e-3, atol=2e-3)
        assert np.isnan(result.alphas).all() and result.edge_share == 0


def test_scores_are_pearson_and_r2_over_the_held_out_stimuli():
    x, y = data(noise=6.0)
    result = fit_encoding(x, y, EncodingParameters(folds=4))
    held = np.concatenate(result.test_sets)
    for t in range(3):
        fold_r = [np.corrcoef(result.predictions[s, t], y[s, t])[0, 1] for s in result.test_sets]
        assert result.r[t] == pytest.approx(np.mean(fold_r), abs=1e-6)
        residual = ((y[:, t] - result.predictions[:, t]) ** 2).sum()
        assert result.r2[t] == pytest.approx(1 - residual / ((y[:, t] - y[:, t].mean()) ** 2).sum(), abs=1e-5)
        np.testing.assert_allclose(result.fold_r[:, t], fold_r, atol=1e-6)
    assert np.isfinite(result.predictions[held]).all()
    assert result.fold_r.shape == result.alphas.shape == (4, y.shape[1])


def test_noise_ceiling_equals_a_literal_split_half():
    rng = np.random.default_rng(8)
    truth = rng.standard_normal((40, 5, 1))
    repeated = truth + rng.standard_normal((40, 5, 5)) * np.array([0.5, 1, 2, 4, 8])[None, :, None]
    repeated[:, 4] = 1.0  # constant: undefined
    order = np.random.default_rng(3).permutation(5)
    ceiling = noise_ceiling(repeated, seed=3)
    for t in range(4):
        first, second = repeated[:, t, order[:2]].mean(axis=1), repeated[:, t, order[2:4]].mean(axis=1)
        r = np.corrcoef(first, second)[0, 1]
        expected = np.sqrt(max(2 * r / (1 + r), 0.0))
        assert ceiling[t] == pytest.approx(expected, abs=1e-12)
    assert np.isnan(ceiling[4])
    assert ceiling[0] > ceiling[2]
    with pytest.raises(InputError):
        noise_ceiling(repeated[:, :, :1])


def test_partition_variance_recovers_planted_components():
    rng = np.random.default_rng(9)
    n = 240
    own_a, own_b, common = (rng.standard_normal((n, 8)).astype(np.float32) for _ in range(3))
    spaces = {"A": np.hstack([own_a, common]), "B": np.hstack([own_b, common])}

    def part(features, targets):
        values = features @ rng.standard_normal((features.shape[1], targets))
        return values / values.std(axis=0)

    y = np.hstack([part(own_a, 6), part(own_b, 6), part(common, 6)])
    y = (y + 0.7 * rng.standard_normal(y.shape)).astype(np.float32)
    parameters = EncodingParameters(folds=3, inner_folds=3, alphas=tuple(np.logspace(-2, 5, 8)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = partition_variance(spaces, y, parameters)
    a_only, b_only, shared = slice(0, 6), slice(6, 12), slice(12, 18)
    unique_a, unique_b, both = result.unique["A"], result.unique["B"], result.shared[("A", "B")]
    assert unique_a[a_only].mean() > 0.4 and unique_b[b_only].mean() > 0.4
    assert abs(unique_a[b_only].mean()) < 0.05 and abs(unique_a[shared].mean()) < 0.05
    assert abs(unique_b[a_only].mean()) < 0.05 and abs(unique_b[shared].mean()) < 0.05
    assert both[shared].mean() > 0.4 and abs(both[a_only].mean()) < 0.05
    np.testing.assert_allclose(unique_a + unique_b + both, result.subsets[("A", "B")], atol=1e-10)
    assert set(result.subsets) == {("A",), ("B",), ("A", "B")}


def test_banded_ridge_in_its_dual_form_is_the_primal_fit():
    """More features than stimuli: the kernel (dual) fit chooses the same space weights
    and predicts what the primal BandedRidgeCV predicts, to float32 rounding."""
    import torch

    from net2brain_fovex.brain.encoding import _banded_ridge, _himalaya

    rng = np.random.default_rng(4)
    train = [rng.standard_normal((20, p)).astype(np.float32) for p in (3000, 60)]
    test = [rng.standard_normal((6, p)).astype(np.float32) for p in (3000, 60)]
    y = (0.03 * train[0][:, :5].sum(1, keepdims=True) + train[1][:, :2].sum(1, keepdims=True)
         + rng.standard_normal((20, 30))).astype(np.float32)
    y -= y.mean(axis=0)
    blocks = [(torch.from_numpy(a), torch.from_numpy(b)) for a, b in zip(train, test, strict=True)]
    parameters = EncodingParameters(alphas=tuple(np.logspace(-2, 6, 9)))
    predicted = {}
    with _himalaya("cpu"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # himalaya's advice to use the dual form
        for dual in (False, True):
            inner = KFold(5, shuffle=True, random_state=3)
            predicted[dual] = torch.as_tensor(_banded_ridge(blocks, torch.from_numpy(y), inner, parameters,
                                                            dual=dual)).numpy()
    np.testing.assert_allclose(predicted[True], predicted[False], atol=2e-5 * np.abs(predicted[False]).max())
    assert np.abs(predicted[False]).max() > 0.1  # not a vacuous zero fit


def test_kfold_ridge_in_its_dual_form_is_the_primal_fit():
    """More features than stimuli: `inner="kfold"` fits the kernel (dual) form, which
    predicts what himalaya's primal RidgeCV predicts, to float32 rounding. The alphas are
    the same except among small ones (at most 1 here, against kernel eigenvalues of about
    4000), where the fit nearly interpolates, the inner loss is flat, and rounding picks
    one of them: the predictions agree there too."""
    import torch

    from net2brain_fovex.brain.encoding import _himalaya, _ridge_cv

    rng = np.random.default_rng(6)
    train, test = rng.standard_normal((24, 4000)).astype(np.float32), rng.standard_normal((8, 4000)).astype(np.float32)
    train -= train.mean(axis=0)
    weights = rng.standard_normal((4000, 40)).astype(np.float32) * np.logspace(-3, 0, 40, dtype=np.float32)
    y = train @ weights / 60 + rng.standard_normal((24, 40)).astype(np.float32)  # signal from strong to none
    y -= y.mean(axis=0)
    parameters = EncodingParameters(inner="kfold", inner_folds=4, alphas=tuple(np.logspace(-2, 6, 9)))
    fitted = {}
    with _himalaya("cpu"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # himalaya's advice to use the dual form
        for dual in (False, True):
            held, alphas = _ridge_cv(torch.from_numpy(train), torch.from_numpy(test), torch.from_numpy(y), parameters,
                                     fold=1, dual=dual)
            fitted[dual] = torch.as_tensor(held).numpy(), torch.as_tensor(alphas).numpy()
    (dual, dual_alphas), (primal, primal_alphas) = fitted[True], fitted[False]
    differ = ~np.isclose(dual_alphas, primal_alphas, rtol=1e-6)
    assert differ.mean() <= 0.2 and (np.maximum(dual_alphas, primal_alphas)[differ] <= 1).all()
    assert len(set(np.round(np.log10(primal_alphas)).tolist())) >= 4  # the targets chose different alphas
    scale = np.abs(primal).max(axis=0)
    assert (np.abs(dual - primal).max(axis=0) <= np.where(differ, 5e-4, 1e-5) * scale).all()
    assert dual.dtype == np.float32 and np.median(scale) > 0.05  # not a vacuous zero fit


@pytest.mark.parametrize("reduce", [None, "pca:6", "srp:8"])
def test_saved_models_reproduce_their_predictions(tmp_path, reduce):
    x, y = data(n=60, f=10, targets=5, noise=3.0)
    parameters = EncodingParameters(folds=3, reduce=reduce)
    result = fit_encoding(x, y, parameters)
    path = save_models(tmp_path / "model.h5", x, y, parameters, result)
    z, yc, mean = standardised(x, y, np.arange(len(x)))
    if reduce == "pca:6":
        z = z @ np.linalg.svd(z, full_matrices=False)[2][:6].T
    alphas = np.exp(np.median(np.log(result.alphas), axis=0))
    if reduce != "srp:8":  # the random projection's matrix is checked by extraction's tests
        expected = np.stack([z @ closed_form(z, yc[:, [t]], alphas[t])[:, 0] for t in range(5)], axis=1) + mean
        np.testing.assert_allclose(predict(path, x), expected, rtol=1e-3, atol=1e-3)
    again = fit_encoding(np.vstack([x, x]), np.vstack([y, y]) + 0, parameters)  # a new stimulus set
    assert predict(path, np.vstack([x, x])).shape == again.predictions.shape
    with pytest.raises(InputError, match="takes 10 features"):
        predict(path, x[:, :4])


def test_an_alpha_at_the_edge_of_the_grid_warns():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((60, 20)).astype(np.float32)
    y = rng.standard_normal((60, 30)).astype(np.float32)  # unrelated: the most shrinkage wins
    with pytest.warns(RuntimeWarning, match="edge of `alphas`"):
        result = fit_encoding(x, y, EncodingParameters(alphas=(1e-3, 1e-2, 1e-1)))
    assert result.edge_share > 0.5


@pytest.mark.parametrize("options", [
    {"alphas": (0.0,)}, {"alphas": (-1.0, 1.0)}, {"alphas": (float("nan"),)}, {"alphas": ()},
    {"folds": 1}, {"inner_folds": 1}, {"chunk": 0}, {"seed": -1}, {"model": "lasso"},
    {"reduce": "pca"}, {"reduce": "ica:4"}, {"reduce": "pca:0"}, {"inner": "bootstrap"},
])
def test_bad_parameters_are_config_errors(options):
    with pytest.raises(ConfigError):
        EncodingParameters(**options)


def test_constant_or_non_finite_responses_are_input_errors():
    x, y = data()
    for column, value in ((3, np.nan), (5, np.inf)):
        bad = y.copy()
        bad[10, column] = value
        with pytest.raises(InputError, match=f"response column {column} holds NaN"):
            fit_encoding(x, bad, EncodingParameters())
    bad = y.copy()
    bad[:, 7] = 2.0
    with pytest.raises(InputError, match="response column 7 is constant"):
        fit_encoding(x, bad, EncodingParameters())
    with pytest.raises(InputError, match="80 stimuli"):
        fit_encoding(x, y[:50], EncodingParameters())
    with pytest.raises(InputError, match="training stimuli"):
        fit_encoding(x[:12], y[:12], EncodingParameters(folds=3, inner="kfold", inner_folds=5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert fit_encoding(x[:12], y[:12], EncodingParameters(folds=3, inner_folds=5)).alphas.shape == (3, 20)  # loo


def test_missing_solvers_name_the_pip_command(monkeypatch):
    import importlib.util

    from net2brain_fovex.brain.encoding import check_solvers

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "himalaya" else real_find_spec(name, *a))
    with pytest.raises(ConfigError, match=r"need himalaya, which is not installed: pip install 'net2brain-fovex\[encoding\]'"):
        check_solvers()
