"""Benchmark: `fit_encoding` against Net2Brain's ridge procedure and scikit-learn's RidgeCV.

1,000 stimuli x a 4,096-feature layer, 20,000 targets, 5 outer folds, the default alphas
and inner criterion (generalised cross-validation), float32, CPU. The features have a low-rank structure plus noise; every target is a
seeded weighted sum of them with noise of mixed levels (sd 0.5 to 8 times the signal's),
a tenth pure noise. All three methods use the same outer folds and are scored by the same
held-out r (the mean over folds of each fold's Pearson r):

* Net2Brain's ridge procedure written out (../shared/reference/net2brain.md): per fold,
  StandardScaler on the training stimuli, a grid search over alphas logspace(-2, 2, 5)
  shared by all targets, by ShuffleSplit(5) on a 50 % subsample of the training stimuli,
  a refit with the best alpha, predictions; targets: `fit_encoding` at least 10x faster,
  and a higher mean r;
* scikit-learn's `RidgeCV(alphas=DEFAULT_ALPHAS, alpha_per_target=True)` (efficient
  leave-one-out) on the same standardised features in each fold; targets: no slower,
  and the same mean r to 1e-3 (its alphas are exact leave-one-out's: the share of the
  targets that chose the same is printed).

Each method runs once (they take tens of seconds). The sizes are module constants;
`ENCODE_BENCH_SCALE` (e.g. 0.25) shrinks the targets and features for a quick check.
Run with:

    pytest tests/benchmarks/test_encode_speed.py -m benchmark -s
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from net2brain_fovex.brain.encoding import DEFAULT_ALPHAS, EncodingParameters, fit_encoding, outer_folds

pytestmark = pytest.mark.benchmark

SCALE = float(os.environ.get("ENCODE_BENCH_SCALE", "1"))
N_STIMULI, FOLDS = 1000, 5
N_FEATURES, N_TARGETS = int(4096 * SCALE), int(20_000 * SCALE)
RANK = 50
NET2BRAIN_ALPHAS = np.logspace(-2, 2, 5)
NET2BRAIN_TARGET, SKLEARN_TARGET, R_TOLERANCE = 10.0, 1.0, 1e-3


@pytest.fixture(scope="module")
def problem() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    latent = rng.standard_normal((N_STIMULI, RANK), dtype=np.float32)
    x = latent @ rng.standard_normal((RANK, N_FEATURES), dtype=np.float32)
    x += 3.0 * rng.standard_normal((N_STIMULI, N_FEATURES), dtype=np.float32)
    signal = x @ rng.standard_normal((N_FEATURES, N_TARGETS), dtype=np.float32)
    signal /= signal.std(axis=0)
    levels = rng.choice(np.array([0.5, 1.0, 2.0, 4.0, 8.0], dtype=np.float32), N_TARGETS)
    y = signal + levels * rng.standard_normal((N_STIMULI, N_TARGETS), dtype=np.float32)
    y[:, : N_TARGETS // 10] = rng.standard_normal((N_STIMULI, N_TARGETS // 10), dtype=np.float32)
    return x, y


def fold_mean_r(y: np.ndarray, predictions: np.ndarray, tests: list[np.ndarray]) -> np.ndarray:
    def pearson(a, b):
        a, b = a - a.mean(axis=0), b - b.mean(axis=0)
        return (a * b).sum(axis=0) / np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))

    return np.mean([pearson(y[t].astype(np.float64), predictions[t].astype(np.float64)) for t in tests], axis=0)


def per_fold(x, y, tests, fit_predict) -> tuple[np.ndarray, np.ndarray]:
    """(held-out predictions, the alphas chosen per fold and target)."""
    from sklearn.preprocessing import StandardScaler

    predictions, alphas = np.empty_like(y), np.empty((len(tests), y.shape[1]))
    for fold, test in enumerate(tests):
        train = np.setdiff1d(np.arange(len(x)), test)
        scaler = StandardScaler().fit(x[train])
        predictions[test], alphas[fold] = fit_predict(scaler.transform(x[train]), y[train], scaler.transform(x[test]))
    return predictions, alphas


def net2brain(x_train, y_train, x_test):
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GridSearchCV, ShuffleSplit

    half = np.random.default_rng(0).permutation(len(x_train))[: len(x_train) // 2]
    search = GridSearchCV(Ridge(), {"alpha": NET2BRAIN_ALPHAS}, cv=ShuffleSplit(5, random_state=0))
    search.fit(x_train[half], y_train[half])
    alpha = search.best_params_["alpha"]
    return Ridge(alpha=alpha).fit(x_train, y_train).predict(x_test), alpha


def sklearn_ridgecv(x_train, y_train, x_test):
    from sklearn.linear_model import RidgeCV

    model = RidgeCV(alphas=DEFAULT_ALPHAS, alpha_per_target=True).fit(x_train, y_train)
    return model.predict(x_test), model.alpha_


def test_encode_speed(problem):
    x, y = problem
    tests = outer_folds(N_STIMULI, FOLDS, seed=0)
    fit_encoding(x[:100], y[:100, :50], EncodingParameters(folds=2, inner_folds=2))  # warm-up: imports, pools
    start = time.perf_counter()
    ours = fit_encoding(x, y, EncodingParameters(folds=FOLDS), test_sets=tests)
    our_s = time.perf_counter() - start
    start = time.perf_counter()
    theirs, _ = per_fold(x, y, tests, net2brain)
    net2brain_s = time.perf_counter() - start
    start = time.perf_counter()
    reference, reference_alphas = per_fold(x, y, tests, sklearn_ridgecv)
    sklearn_s = time.perf_counter() - start
    our_r = fold_mean_r(y, ours.predictions, tests)
    net2brain_r, sklearn_r = fold_mean_r(y, theirs, tests), fold_mean_r(y, reference, tests)
    planted = slice(N_TARGETS // 10, None)
    print(f"\nencoding {N_STIMULI} stimuli x {N_FEATURES} features -> {N_TARGETS} targets, {FOLDS} folds: "
          f"fit_encoding {our_s:.1f} s, Net2Brain's ridge {net2brain_s:.1f} s ({net2brain_s / our_s:.1f}x), "
          f"scikit-learn RidgeCV {sklearn_s:.1f} s ({sklearn_s / our_s:.2f}x)")
    print(f"mean held-out r on planted targets: ours {our_r[planted].mean():.4f}, Net2Brain "
          f"{net2brain_r[planted].mean():.4f}, scikit-learn {sklearn_r[planted].mean():.4f}; on all targets ours "
          f"{our_r.mean():.4f} vs scikit-learn {sklearn_r.mean():.4f} (difference "
          f"{abs(our_r.mean() - sklearn_r.mean()):.2e}); alphas equal to scikit-learn's (exact leave-one-out) "
          f"{(ours.alphas == reference_alphas).mean():.1%}; edge share {ours.edge_share:.3f}")
    assert abs(our_r.mean() - sklearn_r.mean()) < R_TOLERANCE
    assert our_r[planted].mean() > net2brain_r[planted].mean()
    assert net2brain_s / our_s >= NET2BRAIN_TARGET
    assert sklearn_s / our_s >= SKLEARN_TARGET
