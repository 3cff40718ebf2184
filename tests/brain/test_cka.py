"""Linear CKA (`net2brain_fovex.brain.cka`): the formulas written out literally, the
invariances, the permutation test, and `cka_to_file` end to end."""
from __future__ import annotations

import csv
import itertools
import warnings

import h5py
import numpy as np
import pytest

from net2brain_fovex.brain.cka import cka_to_file, gram_matrix, linear_cka, permutation_p, prepare_side
from net2brain_fovex.errors import InputError

RNG = np.random.default_rng(3)


def literal_biased(x: np.ndarray, y: np.ndarray) -> float:
    """HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)), HSIC = tr(K H L H) / (n-1)^2."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, l = x @ x.T, y @ y.T

    def hsic(a, b):
        return np.trace(a @ h @ b @ h) / (n - 1) ** 2

    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def literal_unbiased_hsic(k: np.ndarray, l: np.ndarray) -> float:
    """Song et al. 2012, eq. 5, with explicit loops over the terms."""
    n = len(k)
    kt, lt = k.copy(), l.copy()
    np.fill_diagonal(kt, 0)
    np.fill_diagonal(lt, 0)
    trace = sum(kt[i, j] * lt[j, i] for i in range(n) for j in range(n))
    sum_k = sum(kt[i, j] for i in range(n) for j in range(n))
    sum_l = sum(lt[i, j] for i in range(n) for j in range(n))
    cross = sum(kt[i, j] * lt[j, q] for i in range(n) for j in range(n) for q in range(n))
    return (trace + sum_k * sum_l / ((n - 1) * (n - 2)) - 2 / (n - 2) * cross) / (n * (n - 3))


def literal_debiased(x: np.ndarray, y: np.ndarray) -> float:
    k, l = x @ x.T, y @ y.T
    return literal_unbiased_hsic(k, l) / np.sqrt(literal_unbiased_hsic(k, k) * literal_unbiased_hsic(l, l))


def related(n=12, p=7, q=5, noise=1.0, rng=RNG):
    x = rng.normal(size=(n, p))
    y = x @ rng.normal(size=(p, q)) + noise * rng.normal(size=(n, q))
    return x, y


@pytest.mark.parametrize("estimator", ["debiased", "biased"])
@pytest.mark.parametrize("shape", [(8, 3, 5), (12, 20, 4)])
def test_cka_equals_the_literal_formulas(estimator, shape):
    n, p, q = shape
    x, y = related(n, p, q)
    y = y + 3.0  # an offset: both estimators are invariant to it
    literal = literal_debiased(x, y) if estimator == "debiased" else literal_biased(x, y)
    assert linear_cka(x, y, estimator) == pytest.approx(literal, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("estimator", ["debiased", "biased"])
def test_cka_is_invariant_to_orthogonal_transforms_and_isotropic_scaling(estimator):
    x, y = related(15, 6, 6)
    q, _ = np.linalg.qr(RNG.normal(size=(6, 6)))
    base = linear_cka(x, y, estimator)
    assert linear_cka(x @ q, y, estimator) == pytest.approx(base, rel=1e-10)
    assert linear_cka(x, 7.5 * y, estimator) == pytest.approx(base, rel=1e-10)
    assert linear_cka(0.01 * x @ q, 40 * y @ q.T, estimator) == pytest.approx(base, rel=1e-10)
    assert linear_cka(x, y, estimator) == pytest.approx(linear_cka(y, x, estimator), rel=1e-12)


@pytest.mark.parametrize("estimator", ["debiased", "biased"])
def test_cka_of_a_representation_with_itself_is_one(estimator):
    x = RNG.normal(size=(10, 4, 3))  # features flattened per stimulus
    assert linear_cka(x, x, estimator) == pytest.approx(1.0, abs=1e-12)


def test_biased_cka_lies_in_0_1_and_a_constant_side_is_nan():
    x, y = related(9, 3, 3)
    assert 0 <= linear_cka(x, y, "biased") <= 1
    with pytest.warns(RuntimeWarning, match="does not vary"):
        assert np.isnan(linear_cka(x, np.ones((9, 3)), "biased"))


def test_refusals():
    with pytest.raises(InputError, match="at least 4 stimuli"):
        linear_cka(np.eye(3), np.eye(3))
    assert np.isfinite(linear_cka(np.eye(3), RNG.normal(size=(3, 2)), "biased"))
    with pytest.raises(InputError, match="rows"):
        linear_cka(np.eye(5), np.eye(4))
    with pytest.raises(InputError, match="NaN"):
        linear_cka(np.full((5, 2), np.nan), np.eye(5))
    with pytest.raises(ValueError, match="unknown estimator 'unbiassed'"):
        linear_cka(np.eye(5), np.eye(5), "unbiassed")


def sides(x, y, estimator="debiased"):
    return prepare_side(gram_matrix(x), estimator), prepare_side(gram_matrix(y), estimator)


@pytest.mark.parametrize("estimator", ["debiased", "biased"])
def test_permuted_values_equal_cka_of_permuted_rows(estimator):
    """The batched permutation path (gathered Gram matrices) equals CKA of y[perm]."""
    from net2brain_fovex.brain.cka import _cka, _hsic

    x, y = related(10, 4, 4)
    a, b = sides(x, y, estimator)
    orders = np.stack([RNG.permutation(10) for _ in range(5)])
    batched = _cka(a, b, _hsic(a, b, orders))
    assert batched == pytest.approx([linear_cka(x, y[o], estimator) for o in orders], rel=1e-10)


def test_permutation_p_is_deterministic_and_small_for_a_planted_relation():
    x, y = related(30, 5, 5, noise=0.5)
    a, b = sides(x, y)
    observed = linear_cka(x, y)
    first = permutation_p(a, b, observed, 199, seed=4)
    assert first == permutation_p(a, b, observed, 199, seed=4)
    assert first == pytest.approx(1 / 200)
    assert permutation_p(a, b, observed, 199, seed=5) == pytest.approx(1 / 200)
    assert np.isnan(permutation_p(a, b, float("nan"), 10, seed=0))


def test_permutation_p_is_spread_for_independent_data():
    rng = np.random.default_rng(11)
    ps = []
    for _ in range(30):
        x, y = rng.normal(size=(12, 3)), rng.normal(size=(12, 3))
        a, b = sides(x, y)
        ps.append(permutation_p(a, b, linear_cka(x, y), 49, seed=0))
    ps = np.array(ps)
    assert ps.min() >= 1 / 50 and ps.max() <= 1
    assert 0.3 < ps.mean() < 0.7 and (ps < 0.05).mean() < 0.2 and (ps > 0.5).mean() > 0.25


def test_p_counts_permutations_equal_to_the_observed_value():
    """With 4 stimuli and identical sides some permutations reproduce CKA = 1: they count."""
    x = RNG.normal(size=(4, 2))
    a, b = sides(x, x)
    p = permutation_p(a, b, 1.0, 500, seed=0)
    assert 1 / 501 < p < 1


# --------------------------------------------------------------------------- files

IDS = [f"s{i}" for i in range(10)]


def write_activations(path, layers, stimuli=IDS):
    with h5py.File(path, "w") as file:
        file.attrs["kind"] = "activations"
        file.create_dataset("stimuli", data=np.array(stimuli, dtype=h5py.string_dtype()))
        group = file.create_group("layers", track_order=True)
        for name, values in layers.items():
            group.create_dataset(name, data=values)
    return path


def read_rows(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_model_vs_model_file_reorders_the_ids_and_streams_the_features(tmp_path):
    x, y = related(10, 6, 4)
    z = RNG.normal(size=(10, 2, 3, 3)).astype(np.float64)
    a = write_activations(tmp_path / "a.h5", {"x": x, "z": z})
    order = RNG.permutation(10)
    b = write_activations(tmp_path / "b.h5", {"y": y[order], "x": x[order]}, [IDS[i] for i in order])
    result = cka_to_file(a, tmp_path / "cka.csv", against=b, permutations=19, seed=1, plot=tmp_path / "cka.png",
                         memory=1)
    rows = read_rows(tmp_path / "cka.csv")
    assert list(rows[0]) == ["layer_a", "layer_b", "cka", "p", "n_stimuli", "estimator"]
    got = {(r["layer_a"], r["layer_b"]): float(r["cka"]) for r in rows}
    expected = {(la, lb): linear_cka(va, vb) for (la, va), (lb, vb) in
                itertools.product([("x", x), ("z", z)], [("y", y), ("x", x)])}
    assert got == pytest.approx(expected, rel=1e-9)
    assert got[("x", "x")] == pytest.approx(1.0)
    assert float(next(r["p"] for r in rows if r["layer_b"] == "x" and r["layer_a"] == "x")) == pytest.approx(1 / 20)
    assert (tmp_path / "cka.png").read_bytes().startswith(b"\x89PNG")
    assert result.paths["plot"] == tmp_path / "cka.png"


def test_chunked_gram_equals_the_whole_one(tmp_path):
    from net2brain_fovex.brain.cka import _layer_grams

    x = RNG.normal(size=(10, 50, 4)).astype(np.float32)
    write_activations(tmp_path / "a.h5", {"x": x})
    (_, streamed), = _layer_grams(tmp_path / "a.h5", ["x"], memory_bytes=200, device="cpu")
    assert streamed.numpy() == pytest.approx(gram_matrix(x.astype(np.float64)).numpy(), abs=1e-8)


def test_model_vs_brain_responses_per_subject_and_time(tmp_path):
    x, y = related(10, 5, 3, noise=0.2)
    a = write_activations(tmp_path / "a.h5", {"x": x})
    np.save(tmp_path / "sub-1.npy", y)
    timed = np.stack([y, RNG.normal(size=y.shape)], axis=2)
    np.save(tmp_path / "sub-2.npy", timed)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cka_to_file(a, tmp_path / "cka.csv", responses=[tmp_path / "sub-1.npy", tmp_path / "sub-2.npy"], roi="IT",
                    estimator="biased", plot=tmp_path / "cka.svg")
    rows = read_rows(tmp_path / "cka.csv")
    assert list(rows[0]) == ["layer_a", "roi", "subject", "time", "cka", "n_stimuli", "estimator"]
    assert [(r["subject"], r["time"]) for r in rows] == [("sub-1", ""), ("sub-2", "0"), ("sub-2", "1")]
    assert float(rows[0]["cka"]) == pytest.approx(literal_biased(x, y), rel=1e-9)
    assert float(rows[1]["cka"]) == pytest.approx(float(rows[0]["cka"]), rel=1e-9)
    assert rows[0]["estimator"] == "biased" and rows[0]["n_stimuli"] == "10"


def test_model_vs_brain_volumes_with_stimulus_order(tmp_path):
    import nibabel as nib

    from net2brain_fovex.extraction.stimuli import discover_stimuli
    from tests.conftest import write_images

    x, _ = related(10, 5, 3)
    order = RNG.permutation(10)
    data = RNG.normal(size=(3, 3, 2, 10)).astype(np.float32)
    nib.save(nib.Nifti1Image(data[..., order], np.eye(4)), str(tmp_path / "sub-1.nii.gz"))
    inside = np.zeros((3, 3, 2), dtype=np.uint8)
    inside[:2, :2, :] = 1
    nib.save(nib.Nifti1Image(inside, np.eye(4)), str(tmp_path / "V1.nii.gz"))
    folder = write_images(tmp_path / "stim", 10, size=8, names=[f"img_{i}.png" for i in order])
    listing = tmp_path / "order.txt"
    listing.write_text("\n".join(str(folder / f"img_{i}.png") for i in order) + "\n")
    listed = [s.id for s in discover_stimuli(listing)]  # the volumes' order
    a = write_activations(tmp_path / "a.h5", {"x": x}, [listed[list(order).index(i)] for i in range(10)])
    cka_to_file(a, tmp_path / "cka.csv", betas=[tmp_path / "sub-1.nii.gz"], mask=[tmp_path / "V1.nii.gz"],
                stimuli=listing)
    (row,) = read_rows(tmp_path / "cka.csv")
    assert (row["roi"], row["subject"]) == ("V1", "sub-1")
    patterns = data[:2, :2, :, :].reshape(-1, 10).T  # rows in the activations' order
    assert float(row["cka"]) == pytest.approx(literal_debiased(x, patterns.astype(np.float64)), rel=1e-6)
