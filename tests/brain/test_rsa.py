"""RSA against literal per-subject implementations and scipy; brain RDM formats; alignment."""
from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from scipy.io import savemat
from scipy.optimize import nnls
from scipy.spatial.distance import pdist, squareform
from scipy.stats import pearsonr, spearmanr, ttest_1samp

from net2brain_fovex.brain.comparisons import compare, compare_pairs, correlate_pairs, prepare, upper_triangle
from net2brain_fovex.brain.noise_ceilings import noise_ceiling
from net2brain_fovex.brain.parameters import RSAParameters
from net2brain_fovex.brain.rdm_files import RDMSet, align_to_model, read_brain_rdms, read_model_rdms, write_rdms
from net2brain_fovex.brain.rsa import ModelVectors, rsa_roi, tidy_rows
from net2brain_fovex.brain.statistics import correct
from net2brain_fovex.brain.weighted import weighted_rsa
from net2brain_fovex.errors import ConfigError, InputError, UnknownNameError

RNG = np.random.default_rng(0)


def random_rdm(n, rng=RNG):
    return squareform(pdist(rng.normal(size=(n, 4))))


def upper(matrix):
    rows, cols = np.triu_indices(len(matrix), k=1)
    return matrix[rows, cols]


def tau_a(x, y):
    total = 0.0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            total += np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])
    return total / (len(x) * (len(x) - 1) / 2)


LITERAL = {
    "spearman": lambda x, y: spearmanr(x, y).statistic,
    "pearson": lambda x, y: pearsonr(x, y).statistic,
    "kendall": tau_a,
}


def test_upper_triangle_is_squareform_order():
    rdm = random_rdm(6)
    np.testing.assert_array_equal(upper_triangle(rdm), squareform(rdm, checks=False))


@pytest.mark.parametrize("method", list(LITERAL))
def test_comparisons_against_literal(method):
    a, b = RNG.normal(size=(3, 28)), RNG.normal(size=(4, 28))
    b[1, :7] = 0.5  # ties
    a[2, 3:9] = a[2, 3]
    expected = np.array([[LITERAL[method](x, y) for y in b] for x in a])
    np.testing.assert_allclose(compare(a, b, method), expected, atol=1e-12)
    np.testing.assert_allclose(compare_pairs(a, b[:3], method), np.diag(expected[:, :3]), atol=1e-12)


def literal_roi(model_rdms, brain, method, squared):
    """Net2Brain's way: loops over layers and subjects."""
    rows = {}
    for layer, rdm in model_rdms.items():
        values = np.array([LITERAL[method](upper(rdm), upper(subject)) for subject in brain])
        values = values**2 if squared else values
        rows[layer] = (values.mean(), values.std(ddof=1) / np.sqrt(len(values)), ttest_1samp(values, 0).pvalue)
    lower, upper_ = [], []
    for s in range(len(brain)):
        others = np.delete(brain, s, axis=0).mean(axis=0)
        lower.append(LITERAL[method](upper(brain[s]), upper(others)))
        upper_.append(LITERAL[method](upper(brain[s]), upper(brain.mean(axis=0))))
    lower, upper_ = np.array(lower), np.array(upper_)
    if squared:
        lower, upper_ = lower**2, upper_**2
    return rows, lower.mean(), upper_.mean()


@pytest.mark.parametrize(("method", "squared"), [("spearman", True), ("pearson", False), ("kendall", True)])
def test_roi_scores_and_noise_ceilings_against_loops(method, squared):
    n = 9
    model_rdms = {f"layer{i}": random_rdm(n) for i in range(3)}
    base = random_rdm(n)
    brain = np.stack([base + squareform(np.abs(RNG.normal(size=n * (n - 1) // 2))) for _ in range(5)])
    result = rsa_roi(model_rdms, brain, roi="roi", parameters=RSAParameters(method, squared, "none"))
    rows, lower, upper_ = literal_roi(model_rdms, brain, method, squared)
    for index, layer in enumerate(model_rdms):
        np.testing.assert_allclose([result.score[index], result.sem[index], result.p[index]], rows[layer], atol=1e-10)
    np.testing.assert_allclose(result.lnc, lower, atol=1e-10)
    np.testing.assert_allclose(result.unc, upper_, atol=1e-10)
    assert np.array_equal(result.p, result.p_corrected)


@pytest.mark.parametrize("method", list(LITERAL))
def test_model_vectors_prepared_once_give_the_same_scores_for_every_roi(method):
    """rsa_to_file prepares (ranks) the model RDMs once for all ROIs: the same numbers,
    timed data included, as preparing them per ROI."""
    n = 8
    model_rdms = {f"layer{i}": random_rdm(n) for i in range(3)}
    prepared = ModelVectors.from_rdms(model_rdms, method)
    assert prepared.layers == list(model_rdms) and prepared.method == method
    parameters = RSAParameters(method, True, "fdr")
    for brain in (np.stack([random_rdm(n) for _ in range(4)]), np.stack([[random_rdm(n) for _ in range(2)] for _ in range(4)])):
        once, each = rsa_roi(prepared, brain, parameters=parameters), rsa_roi(model_rdms, brain, parameters=parameters)
        for field in ("score", "sem", "p", "p_corrected", "lnc", "unc", "subject_values"):
            np.testing.assert_array_equal(getattr(once, field), getattr(each, field))
        assert once.layers == each.layers and once.times == each.times
    with pytest.raises(ConfigError, match="prepared for 'pearson', the comparison is 'spearman'"):
        rsa_roi(ModelVectors.from_rdms(model_rdms, "pearson"), brain, parameters=RSAParameters("spearman"))


@pytest.mark.parametrize("method", list(LITERAL))
def test_noise_ceiling_of_prepared_vectors_equals_its_own_preparing(method):
    """rsa_roi hands the noise ceiling the subjects' vectors it ranked for the scores."""
    brain = upper_triangle(np.stack([[random_rdm(7) for _ in range(3)] for _ in range(4)]))  # (S, T, m)
    own = prepare(brain, method)
    assert own.shape == brain.shape
    for given, computed in zip(noise_ceiling(brain, method, True, prepared=own), noise_ceiling(brain, method, True),
                               strict=True):
        np.testing.assert_array_equal(given, computed)


def test_correlate_pairs_broadcasts_prepared_rows_for_every_method():
    a, b = RNG.normal(size=(3, 2, 15)), RNG.normal(size=(2, 15))
    for method in LITERAL:
        expected = np.array([[LITERAL[method](a[i, t], b[t]) for t in range(2)] for i in range(3)])
        np.testing.assert_allclose(correlate_pairs(prepare(a, method), prepare(b, method), method), expected, atol=1e-12)


def test_float32_brain_vectors_have_float64_noise_ceilings():
    """Prepared vectors are float64 whatever the input, so a float32 brain file's ceilings
    are not rounded to float32 on the way (they were before rsa_roi shared them)."""
    brain = upper_triangle(np.stack([random_rdm(10) for _ in range(5)]))
    lower, upper_ = noise_ceiling(brain.astype(np.float32), "spearman", False)
    assert lower.dtype == upper_.dtype == np.float64
    expected = noise_ceiling(brain.astype(np.float32).astype(float), "spearman", False)
    np.testing.assert_array_equal((lower, upper_), expected)


def test_corrections():
    p = np.array([0.01, 0.04, 0.03, 0.5])
    np.testing.assert_allclose(correct(p, "bonferroni"), [0.04, 0.16, 0.12, 1.0])
    # Benjamini-Hochberg by hand: sorted p * m / rank, then the running minimum from the top
    ranked = np.sort(p) * 4 / np.arange(1, 5)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    np.testing.assert_allclose(correct(p, "fdr"), adjusted[np.argsort(np.argsort(p))])
    with pytest.raises(UnknownNameError, match="unknown correction 'holm'"):
        correct(p, "holm")


def test_an_undefined_p_is_no_test_for_either_correction():
    """Columns are time points; a NaN p (a constant RDM) counts for neither Bonferroni nor FDR."""
    p = np.array([[0.01, 0.02], [np.nan, 0.04], [0.03, 0.5]])
    np.testing.assert_allclose(correct(p, "bonferroni"), [[0.02, 0.06], [np.nan, 0.12], [0.06, 1.0]])
    np.testing.assert_allclose(correct(p[:, :1], "fdr"), correct(np.array([[0.01], [0.03]]), "fdr")[[0, 0, 1]] *
                               np.array([[1], [np.nan], [1]]))


def test_single_subject_has_no_lower_ceiling_or_sem():
    result = rsa_roi({"a": random_rdm(6)}, random_rdm(6)[None], roi="roi", parameters=RSAParameters())
    assert np.isnan(result.lnc).all() and np.isnan(result.sem).all() and np.isfinite(result.unc).all()


def test_time_resolved_rows_and_aggregate():
    n, subjects, times = 8, 4, 3
    model_rdms = {"a": random_rdm(n), "b": random_rdm(n)}
    brain = np.stack([[random_rdm(n) for _ in range(times)] for _ in range(subjects)])
    options = RSAParameters("spearman", True, "bonferroni")
    result = rsa_roi(model_rdms, brain, roi="meg", parameters=options)
    assert result.times == ["0", "1", "2", "mean"] and result.score.shape == (2, 4)
    for t in range(times):
        single = rsa_roi(model_rdms, brain[:, t], roi="meg", parameters=options)
        np.testing.assert_allclose(result.score[:, t], single.score, atol=1e-12)
        np.testing.assert_allclose(result.p_corrected[:, t], single.p_corrected, atol=1e-12)
        np.testing.assert_allclose(result.lnc[:, t], single.lnc, atol=1e-12)
    values = np.stack([[[spearmanr(upper(model_rdms[k]), upper(brain[s, t])).statistic ** 2 for t in range(times)]
                        for s in range(subjects)] for k in model_rdms])
    np.testing.assert_allclose(result.score[:, -1], values.mean(axis=2).mean(axis=1), atol=1e-12)
    rows = tidy_rows([result], "toy", options)
    assert len(rows) == 2 * 4 and rows[3]["time"] == "mean"


def test_planted_layer_wins():
    from net2brain_fovex.demo.synthetic import simulate_brain_rdms

    model_rdms = {f"layer{i}": random_rdm(20) for i in range(5)}
    brain = simulate_brain_rdms(model_rdms, {"V1": "layer1", "IT": "layer3"}, subjects=6, noise=1.0, seed=1)
    for roi, layer in {"V1": "layer1", "IT": "layer3"}.items():
        result = rsa_roi(model_rdms, brain[roi], roi=roi, parameters=RSAParameters())
        assert result.layers[int(result.score.argmax())] == layer
        assert result.p_corrected[result.layers.index(layer)] < 0.001


def test_weighted_rsa_against_literal_folds():
    n, subjects = 10, 6
    model_rdms = {f"l{i}": random_rdm(n) for i in range(3)}
    mix = 2.0 * model_rdms["l0"] + 0.5 * model_rdms["l2"]
    brain = np.stack([mix + squareform(np.abs(RNG.normal(scale=0.3, size=n * (n - 1) // 2))) for _ in range(subjects)])
    options = RSAParameters("pearson", True, "none", seed=3, folds=3, fit="nnls")
    result = weighted_rsa(model_rdms, brain, roi="roi", parameters=options)
    order = np.random.default_rng(3).permutation(subjects)
    design = np.column_stack([np.stack([upper(r) for r in model_rdms.values()]).T, np.ones(n * (n - 1) // 2)])
    fold_scores, weights = [], []
    for test in np.array_split(order, 3):
        train = [s for s in order if s not in test]
        w = nnls(design, np.mean([upper(brain[s]) for s in train], axis=0))[0]
        fold_scores.append(np.mean([pearsonr(design @ w, upper(brain[s])).statistic ** 2 for s in test]))
        weights.append(w[:-1])
    np.testing.assert_allclose(result.fold_scores, fold_scores, atol=1e-10)
    np.testing.assert_allclose(result.score, np.mean(fold_scores), atol=1e-10)
    np.testing.assert_allclose(result.sem, np.std(fold_scores, ddof=1) / np.sqrt(3), atol=1e-10)
    np.testing.assert_allclose(result.weights, np.mean(weights, axis=0), atol=1e-10)
    assert result.weights[0] > result.weights[2] > result.weights[1] >= 0
    lower, upper_ = noise_ceiling(upper_triangle(brain), "pearson", True)
    assert result.lnc == pytest.approx(lower) and result.unc == pytest.approx(upper_)
    with pytest.raises(InputError, match="needs at least 2 subjects"):
        weighted_rsa(model_rdms, brain[:1], roi="roi", parameters=options)


def test_bootstrap_is_seeded_and_brackets_the_score():
    model_rdms = {f"l{i}": random_rdm(12) for i in range(2)}
    from net2brain_fovex.demo.synthetic import simulate_brain_rdms

    brain = simulate_brain_rdms(model_rdms, {"roi": "l0"}, subjects=5, seed=2)["roi"]
    first = rsa_roi(model_rdms, brain, roi="roi", parameters=RSAParameters(bootstrap=200, seed=4))
    again = rsa_roi(model_rdms, brain, roi="roi", parameters=RSAParameters(bootstrap=200, seed=4))
    np.testing.assert_array_equal(first.ci, again.ci)
    assert (first.ci[:, 0] < first.score).all() and (first.score < first.ci[:, 1]).all()


# ------------------------------------------------------------------------- file formats


@pytest.fixture
def brain_stack():
    return np.stack([random_rdm(7) for _ in range(3)])


def test_read_net2brain_npz(tmp_path, brain_stack):
    np.savez(tmp_path / "fmri_EVC_RDMs.npz", brain_stack)
    read = read_brain_rdms(tmp_path / "fmri_EVC_RDMs.npz")
    assert list(read.rdms) == ["fmri_EVC_RDMs"] and read.stimuli is None
    np.testing.assert_array_equal(read.rdms["fmri_EVC_RDMs"], brain_stack)
    meg = np.stack([brain_stack] * 2, axis=1)  # (subjects, time, n, n)
    np.savez(tmp_path / "meg.npz", meg)
    assert read_brain_rdms(tmp_path / "meg.npz").rdms["meg"].shape == (3, 2, 7, 7)


def test_net2brain_npz_with_more_arrays_reads_the_first_and_says_so(tmp_path, brain_stack):
    np.savez(tmp_path / "EVC.npz", brain_stack, np.zeros(2), np.arange(7))
    with pytest.warns(RuntimeWarning, match=r"EVC.npz holds 3 arrays: read the first, 'arr_0', as Net2Brain does, and "
                                            r"ignored arr_1, arr_2"):
        read = read_brain_rdms(tmp_path / "EVC.npz")
    np.testing.assert_array_equal(read.rdms["EVC"], brain_stack)


def test_mat_with_several_rdm_variables_is_refused(tmp_path, brain_stack):
    import scipy.io

    scipy.io.savemat(tmp_path / "IT.mat", {"session1": brain_stack, "session2": brain_stack, "note": "x"})
    with pytest.raises(InputError, match=r"IT.mat holds 2 variables that could be RDMs \(session1, session2\); keep "
                                         "only one in the file"):
        read_brain_rdms(tmp_path / "IT.mat")
    scipy.io.savemat(tmp_path / "one.mat", {"rdms": brain_stack, "note": "x"})
    np.testing.assert_array_equal(read_brain_rdms(tmp_path / "one.mat").rdms["one"], brain_stack)


def test_read_pickled_npz_is_refused(tmp_path):
    np.savez(tmp_path / "evil.npz", np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputError, match="without unpickling"):
        read_brain_rdms(tmp_path / "evil.npz")


def test_read_mat_layouts(tmp_path, brain_stack):
    struct = np.empty((3, 2), dtype=[("RDM", object), ("name", object)])
    for s in range(3):
        for session in range(2):
            struct[s, session] = (brain_stack[s] * (1 + session), f"IT | S{s} | Session: {session + 1}")
    savemat(tmp_path / "IT.mat", {"RDMs": struct})
    read = read_brain_rdms(tmp_path / "IT.mat")
    np.testing.assert_allclose(read.rdms["IT"], brain_stack * 1.5)  # sessions averaged
    savemat(tmp_path / "V1.mat", {"rdms": brain_stack})
    np.testing.assert_allclose(read_brain_rdms(tmp_path / "V1.mat").rdms["V1"], brain_stack)
    savemat(tmp_path / "V2.mat", {"vectors": np.stack([squareform(r, checks=False) for r in brain_stack])})
    np.testing.assert_allclose(read_brain_rdms(tmp_path / "V2.mat").rdms["V2"], brain_stack)
    models = np.empty((1, 2), dtype=[("RDM", object), ("name", object)])
    models[0, 0], models[0, 1] = (brain_stack[0], "animacy"), (squareform(brain_stack[1], checks=False), "V1 model")
    savemat(tmp_path / "models.mat", {"Models": models})
    read = read_model_rdms(tmp_path / "models.mat")
    assert list(read.rdms) == ["animacy", "V1 model"]
    np.testing.assert_allclose(read.rdms["V1 model"], brain_stack[1])


def test_read_folder_and_h5(tmp_path, brain_stack):
    folder = tmp_path / "brain_data"
    folder.mkdir()
    np.savez(folder / "V1.npz", brain_stack)
    write_rdms(folder / "more.h5", list("abcdefg"), {"IT": brain_stack, "single": brain_stack[0]}, metric="correlation")
    (folder / "notes.txt").write_text("ignored")
    read = read_brain_rdms(folder)
    assert sorted(read.rdms) == ["IT", "V1", "single"] and read.rdms["single"].shape == (1, 7, 7)
    assert read.stimuli == list("abcdefg")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="holds no .h5, .hdf5, .npz, .mat files"):
        read_brain_rdms(empty)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda s: s[:, :, :-1], "is not square"),
        (lambda s: s + np.triu(np.ones_like(s[0]), 1), "is not symmetric"),
        (lambda s: np.where(np.eye(7, dtype=bool), np.nan, s), "holds NaN or infinite values"),
        (lambda s: s[0, 0], "expected \\(subjects, n, n\\)"),
    ],
)
def test_bad_brain_rdms(tmp_path, brain_stack, make, message):
    np.savez(tmp_path / "bad.npz", make(brain_stack))
    with pytest.raises(InputError, match=message):
        read_brain_rdms(tmp_path / "bad.npz")


def test_alignment_reorders_and_names_mismatches(brain_stack):
    model = RDMSet({"a": brain_stack[0]}, list("abcdefg"), "correlation", "model.h5")
    order = [3, 0, 1, 2, 6, 5, 4]
    shuffled = brain_stack[:, order][:, :, order]
    brain = RDMSet({"IT": shuffled}, [list("abcdefg")[i] for i in order], None, "brain.h5")
    np.testing.assert_array_equal(align_to_model(model, brain)["IT"], brain_stack)
    brain.stimuli = list("abcdefx")
    with pytest.raises(InputError, match="missing from the brain data: g; not in the model RDMs: x"):
        align_to_model(model, brain)
    with pytest.raises(InputError, match="has 6 stimuli, the model RDMs in model.h5 have 7"):
        align_to_model(model, RDMSet({"IT": brain_stack[:, :6, :6]}, None, None, "brain.h5"))


def test_ranks_equal_scipy_with_ties():
    from scipy.stats import rankdata

    from net2brain_fovex.brain.comparisons import ranks

    x = np.round(RNG.normal(size=(3, 4, 50)), 1)  # many ties
    np.testing.assert_array_equal(ranks(x), rankdata(x, axis=-1))


@pytest.mark.parametrize("layout", ["runs", "signed-zeros", "negative", "constant", "fortran", "one-column"])
def test_float32_ranks_of_the_integer_sort_equal_scipy(layout):
    """float32 rows are ranked by one sort of integer keys (value bits, then position): runs of
    ties at the ends and across rows, -0.0 equal to 0.0, negative values, constant rows,
    non-contiguous input; exactly scipy's average ranks, as float32."""
    from scipy.stats import rankdata

    from net2brain_fovex.brain.comparisons import ranks

    x = np.round(RNG.normal(size=(6, 41)), 1).astype(np.float32)
    if layout == "runs":
        x[0, :] = np.sort(x[0])
        x[1, -5:] = x[1, 0]
        x[2, :3] = x[3, -3:] = 7.0
    elif layout == "signed-zeros":
        x[:, :4] = np.float32(-0.0)
        x[:, 4:8] = 0.0
    elif layout == "negative":
        x = -np.abs(x) - np.float32(1e-30)
    elif layout == "constant":
        x[2] = -3.5
    elif layout == "fortran":
        x = np.asfortranarray(x)
    else:
        x = x[:, :1]
    got = ranks(x)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, rankdata(x, axis=-1).astype(np.float32))


def test_float64_ranks_resolve_what_float32_rounding_ties():
    """float64 rows are sorted by their float32 roundings, then the runs those make equal are
    re-sorted in float64: values apart by 1e-12 keep their order, equal ones average."""
    from scipy.stats import rankdata

    from net2brain_fovex.brain.comparisons import ranks

    base = np.round(RNG.normal(size=(8, 60)), 1)
    x = base + RNG.integers(0, 3, size=base.shape) * 1e-12
    x[0, :4], x[1, :3] = 1e300, -1e300  # beyond float32: all infinite there
    got = ranks(x)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, rankdata(x, axis=-1))


def test_ranks_of_rows_with_nan_put_nan_last_as_before():
    from net2brain_fovex.brain.comparisons import ranks

    got = ranks(np.array([[1.0, np.nan, 0.0, np.nan], [2.0, 1.0, 3.0, 0.0]], dtype=np.float32))
    np.testing.assert_array_equal(got, [[2, 3, 1, 4], [3, 2, 4, 1]])



@pytest.mark.parametrize("n", [3, 4])
@pytest.mark.parametrize("compare", ["spearman", "pearson", "kendall"])
def test_bootstrap_over_few_stimuli_leaves_out_undefined_samples(n, compare):
    """A sample with fewer than 3 pairs of distinct stimuli has no correlation: it is left out
    (one warning), and the interval is that of the samples that define one (literal loop)."""
    from net2brain_fovex.brain.comparisons import compare as compare_vectors

    model_rdms = {"a": random_rdm(n), "b": random_rdm(n)}
    brain = np.stack([random_rdm(n) for _ in range(3)])
    parameters = RSAParameters(bootstrap=300, seed=1, compare=compare)
    with pytest.warns(RuntimeWarning, match=rf"of 300 bootstrap samples over {n} stimuli drew too few distinct stimuli"):
        result = rsa_roi(model_rdms, brain, roi="roi", parameters=parameters)
    draws = np.random.default_rng(1)
    scores = []
    rows, cols = np.triu_indices(n, k=1)
    for _ in range(300):
        index = draws.integers(0, n, n)
        keep = index[rows] != index[cols]
        a, b = index[rows][keep], index[cols][keep]
        if len(a) < 3:
            continue
        values = []
        with warnings.catch_warnings():  # a constant resample: NaN, left out below
            warnings.simplefilter("ignore", RuntimeWarning)
            for name in ("a", "b"):
                per_subject = [compare_vectors(model_rdms[name][a, b][None], s[a, b][None], compare)[0, 0] for s in brain]
                values.append(np.mean(np.square(per_subject)))
        scores.append(values)
    scores = np.array(scores)
    scores = scores[np.isfinite(scores).all(axis=1)]
    np.testing.assert_allclose(result.ci[:, 0], np.percentile(scores, 2.5, axis=0))
    np.testing.assert_allclose(result.ci[:, 1], np.percentile(scores, 97.5, axis=0))


def test_rdm_names_that_cannot_be_datasets_are_refused(tmp_path):
    from net2brain_fovex.brain.rdm_files import write_rdms

    for name, problem in (("", "is empty or a dot"), (".", "is empty or a dot"), ("V1/left", "holds a /")):
        with pytest.raises(InputError, match=rf"the name {re.escape(repr(name))} of an RDM \(a layer or ROI\) {problem}"):
            write_rdms(tmp_path / "r.h5", ["a", "b"], {name: np.zeros((2, 2))}, metric="correlation")
    assert not (tmp_path / "r.h5").exists()
