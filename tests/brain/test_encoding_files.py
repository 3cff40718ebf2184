"""`encode_to_file` on small planted data: the best layer per ROI is the planted one, the
maps are the engine's scores, the group t map is scipy's, arrays with time, a fixed
split, repetitions, resume, the inner cross-validation, variance partitioning (its group
files and resume), saved models and their predictions put back in place."""
from __future__ import annotations

import csv

import h5py
import nibabel as nib
import numpy as np
import pytest
from scipy.stats import ttest_1samp

from net2brain_fovex.brain import encoding, encoding_files
from net2brain_fovex.brain.encoding import EncodingParameters, fit_encoding, fixed_split, outer_folds
from net2brain_fovex.brain.encoding_files import encode_to_file

# planted voxels with little noise choose the smallest alphas: the engine says so, rightly
pytestmark = pytest.mark.filterwarnings("ignore:.*chose an alpha at an edge:RuntimeWarning")

N, GRID, FEATURES = 40, (6, 6, 6), 8
IDS = [f"img_{i:02d}.png" for i in range(N)]
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])
BOX_A = np.s_[0:3, 0:3, 0:3]  # voxels made from layer a
BOX_B = np.s_[3:6, 3:6, 3:6]  # voxels made from layer b


def write_activations(path, layers, ids=IDS):
    with h5py.File(path, "w") as file:
        file.attrs["kind"] = "activations"
        file.attrs["model"] = "toy"
        file.create_dataset("stimuli", data=np.array(ids, dtype=h5py.string_dtype()))
        group = file.create_group("layers", track_order=True)
        for name, values in layers.items():
            group.create_dataset(name, data=values)
    return path


def nifti(path, data):
    nib.save(nib.Nifti1Image(np.asarray(data), AFFINE), str(path))
    return path


def box_mask(path, box):
    data = np.zeros(GRID, dtype=np.uint8)
    data[box] = 1
    return nifti(path, data)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Two subjects: the voxels of ROI A are a linear map of layer a plus noise, those of
    ROI B of layer b, the others noise."""
    folder = tmp_path_factory.mktemp("encode")
    rng = np.random.default_rng(3)
    layers = {"a": rng.normal(size=(N, FEATURES)).astype(np.float32),
              "b": rng.normal(size=(N, 2, 2, 2)).astype(np.float32)}  # a layer of any shape is flattened
    write_activations(folder / "acts.h5", layers)
    betas = []
    for subject in range(2):
        data = rng.normal(size=(*GRID, N)).astype(np.float32)
        for box, name in ((BOX_A, "a"), (BOX_B, "b")):
            weights = rng.normal(size=(FEATURES, 27))
            signal = layers[name].reshape(N, -1) @ weights  # (stimuli, voxels)
            data[box] = signal.T.reshape(3, 3, 3, N) + 0.3 * data[box]
        betas.append(nifti(folder / f"sub-{subject + 1}.nii.gz", data))
    box_mask(folder / "A.nii.gz", BOX_A)
    box_mask(folder / "B.nii.gz", BOX_B)
    return folder, betas, layers


@pytest.fixture(scope="module")
def result(planted, tmp_path_factory):
    folder, betas, _ = planted
    out = tmp_path_factory.mktemp("run") / "enc"
    return encode_to_file(folder / "acts.h5", out, betas=betas, rois=[folder / "A.nii.gz", folder / "B.nii.gz"],
                          mask=box_mask(folder / "all.nii.gz", np.s_[:, :, :]), device="cpu")


def read_map(path):
    return nib.load(path).get_fdata()


def test_the_best_layer_of_each_roi_is_the_planted_one(result):
    assert result.best["A"]["layer"] == "a" and result.best["B"]["layer"] == "b"
    assert result.best["A"]["subject"] == "group"
    rows = {(r["roi"], r["layer"], r["subject"]): r for r in result.summary}
    assert rows["A", "a", "sub-1"]["mean_r"] > 0.8 > rows["A", "b", "sub-1"]["mean_r"]
    assert rows["mask", "a", "sub-2"]["n_targets"] == np.prod(GRID) and rows["A", "a", "sub-2"]["n_targets"] == 27
    assert (result.out_dir / "summary.csv").is_file() and (result.out_dir / "group_b_t.nii.gz").is_file()


def test_the_maps_are_the_engines_scores_on_the_mask(planted, result):
    _, betas, layers = planted
    responses = nib.load(betas[1]).get_fdata(dtype=np.float32).reshape(-1, N).T  # C order = the mask's order
    parameters = EncodingParameters()
    expected = fit_encoding(layers["b"].reshape(N, -1), responses, parameters,
                            test_sets=outer_folds(N, parameters.folds, parameters.seed))
    np.testing.assert_allclose(read_map(result.out_dir / "sub-2_b_r.nii.gz").ravel(), expected.r, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(read_map(result.out_dir / "sub-2_b_r2.nii.gz").ravel(), expected.r2, rtol=1e-5, atol=1e-6)
    image = nib.load(result.out_dir / "sub-2_b_r.nii.gz")
    assert image.shape == GRID and np.allclose(image.affine, AFFINE)


def test_the_group_maps_are_the_mean_and_scipys_t(result):
    subjects = np.stack([read_map(result.out_dir / f"sub-{s}_a_r.nii.gz") for s in (1, 2)])
    test = ttest_1samp(subjects, 0.0, axis=0)
    np.testing.assert_allclose(read_map(result.out_dir / "group_a_mean_r.nii.gz"), subjects.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(read_map(result.out_dir / "group_a_t.nii.gz"), test.statistic, rtol=1e-4)
    np.testing.assert_allclose(read_map(result.out_dir / "group_a_p.nii.gz"), test.pvalue, rtol=1e-4, atol=1e-7)


def test_voxels_outside_the_mask_are_nan(planted, tmp_path):
    folder, betas, _ = planted
    run = encode_to_file(folder / "acts.h5", tmp_path / "enc", betas=betas[:1], rois=[folder / "A.nii.gz"],
                         layers="a", device="cpu")
    values = read_map(run.out_dir / "sub-1_a_r.nii.gz")
    assert np.isfinite(values[BOX_A]).all() and np.isnan(values[BOX_B]).all()  # the mask is the union of the rois
    assert {row["roi"] for row in run.summary} == {"mask", "A"} and not (run.out_dir / "group_a_t.nii.gz").exists()


def test_arrays_with_time_are_fitted_per_channel_and_time_point(planted, tmp_path):
    folder, _, layers = planted
    rng = np.random.default_rng(8)
    array = rng.normal(size=(N, 3, 4))
    array[:, 0, :] += (layers["a"] @ rng.normal(size=(FEATURES, 4))) * 3
    np.save(tmp_path / "meg.npy", array)
    run = encode_to_file(folder / "acts.h5", tmp_path / "enc", responses=[tmp_path / "meg.npy"], layers="a",
                         roi="MEG", folds=4, device="cpu")
    with open(run.out_dir / "meg_a.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(int(r["channel"]), int(r["time"])) for r in rows] == [(c, t) for c in range(3) for t in range(4)]
    expected = fit_encoding(layers["a"], array.reshape(N, -1), EncodingParameters(folds=4),
                            test_sets=outer_folds(N, 4, 0))
    np.testing.assert_allclose([float(r["r"]) for r in rows], expected.r, rtol=1e-5, atol=1e-6)
    summary = {(r["time"]): r for r in run.summary}
    assert set(summary) == {0, 1, 2, 3, "mean"} and summary[0]["n_targets"] == 3 and summary["mean"]["n_targets"] == 12
    assert summary[2]["mean_r"] == pytest.approx(np.mean(expected.r.reshape(3, 4)[:, 2]))


def test_a_fixed_split_scores_the_test_stimuli(planted, tmp_path):
    folder, betas, layers = planted
    test = IDS[::4]
    (tmp_path / "test.txt").write_text("# held out\n" + "\n".join(test) + "\n")
    run = encode_to_file(folder / "acts.h5", tmp_path / "enc", betas=betas[:1], rois=[folder / "B.nii.gz"],
                         layers="b", test_stimuli=tmp_path / "test.txt", device="cpu")
    responses = nib.load(betas[0]).get_fdata(dtype=np.float32)[BOX_B].reshape(-1, N).T
    expected = fit_encoding(layers["b"].reshape(N, -1), responses, EncodingParameters(),
                            test_sets=fixed_split(IDS, test))
    np.testing.assert_allclose(read_map(run.out_dir / "sub-1_b_r.nii.gz")[BOX_B].ravel(), expected.r, rtol=1e-5,
                               atol=1e-6)


def test_repetitions_give_the_noise_ceiling(planted, tmp_path):
    folder, _, layers = planted
    rng = np.random.default_rng(9)
    signal = layers["a"] @ rng.normal(size=(FEATURES, 5))
    repeated = signal[:, :, None] + rng.normal(size=(N, 5, 4))
    np.save(tmp_path / "sub.npy", repeated)
    run = encode_to_file(folder / "acts.h5", tmp_path / "enc", responses=[tmp_path / "sub.npy"], layers="a",
                         repetitions=True, device="cpu")
    (row,) = run.summary
    ceiling = encoding.noise_ceiling(repeated, seed=0)
    assert row["noise_ceiling"] == pytest.approx(np.nanmean(ceiling))
    assert row["pct_of_nc"] == pytest.approx(row["mean_r"] / row["noise_ceiling"] * 100)
    with open(run.out_dir / "sub_a.csv") as handle:
        assert next(csv.DictReader(handle)).keys() == {"channel", "r", "r2", "noise_ceiling"}


def test_resume_fits_only_what_is_missing(planted, result, tmp_path, monkeypatch):
    folder, betas, _ = planted
    options = dict(betas=betas, rois=[folder / "A.nii.gz", folder / "B.nii.gz"], mask=folder / "all.nii.gz",
                   device="cpu")
    import shutil

    out = tmp_path / "enc"
    shutil.copytree(result.out_dir, out)
    (out / "summary.csv").unlink()
    (out / "sub-2_a_r2.nii.gz").unlink()  # an interrupted run: the last pair not done
    calls = []
    real = encoding.fit_encoding
    monkeypatch.setattr(encoding, "fit_encoding", lambda *a, **k: calls.append(1) or real(*a, **k))
    resumed = encode_to_file(folder / "acts.h5", out, resume=True, **options)
    assert len(calls) == 1 and resumed.resumed == 3
    for name in ("summary.csv",):
        assert (out / name).read_text() == (result.out_dir / name).read_text()
    np.testing.assert_array_equal(read_map(out / "group_a_t.nii.gz"), read_map(result.out_dir / "group_a_t.nii.gz"))


def test_resume_refuses_other_options(planted, tmp_path):
    from net2brain_fovex.errors import InputError

    folder, betas, _ = planted
    config = {"activations": str(folder / "acts.h5"), "folds": 5}
    (tmp_path / "enc").mkdir()
    encoding_files.record_options(tmp_path / "enc", config, sidecar=tmp_path / "enc" / encoding_files.CONFIG_NAME)
    with pytest.raises(InputError, match="`folds` 5, not 4"):
        encode_to_file(folder / "acts.h5", tmp_path / "enc", betas=betas[:1], rois=[folder / "A.nii.gz"], folds=4,
                       resume=True, config={**config, "folds": 4}, device="cpu")


def test_the_inner_cross_validation_reaches_the_engine(planted, tmp_path):
    """`inner` and `inner_folds` choose the alphas: kfold's (of 3 inner folds) are the engine's and not loo's,
    and both give valid scores."""
    folder, _, layers = planted
    rng = np.random.default_rng(21)
    # channels from clean to mostly noise: the inner criteria choose alphas across the grid
    responses = layers["a"] @ rng.normal(size=(FEATURES, 8)) * np.geomspace(3, 0.05, 8) + rng.normal(size=(N, 8))
    np.save(tmp_path / "sub.npy", responses)
    chosen = {}
    for inner in ("loo", "kfold"):
        run = encode_to_file(folder / "acts.h5", tmp_path / inner, responses=[tmp_path / "sub.npy"], layers="a",
                             inner=inner, inner_folds=3, save_models=True, device="cpu")
        with h5py.File(run.out_dir / "sub_a_model.h5", "r") as file:
            chosen[inner] = file["alphas"][()]
        with open(run.out_dir / "sub_a.csv") as handle:
            r = np.array([float(row["r"]) for row in csv.DictReader(handle)])
        assert np.isfinite(r).all() and (np.abs(r) <= 1).all() and r[0] > 0.9
    engine = fit_encoding(layers["a"], responses, EncodingParameters(inner="kfold", inner_folds=3),
                          test_sets=outer_folds(N, 5, 0))
    np.testing.assert_allclose(chosen["kfold"], np.exp(np.median(np.log(engine.alphas), axis=0)), rtol=1e-6)
    assert not np.array_equal(chosen["kfold"], chosen["loo"])


# ------------------------------------------------------------------ partition, saved models, plots


@pytest.fixture(scope="module")
def two_spaces(planted):
    """Channels 0-1 made from layer a alone, 2-3 from layer b alone, 4-5 from both."""
    folder, _, layers = planted
    rng = np.random.default_rng(11)
    a, b = layers["a"], layers["b"].reshape(N, -1)
    array = 0.3 * rng.normal(size=(N, 6))
    array[:, 0:2] += a @ rng.normal(size=(FEATURES, 2))
    array[:, 2:4] += b @ rng.normal(size=(FEATURES, 2))
    array[:, 4:6] += a @ rng.normal(size=(FEATURES, 2)) + b @ rng.normal(size=(FEATURES, 2))
    np.save(folder / "two.npy", array)
    return folder / "two.npy", array


def test_partition_of_arrays_is_the_engines(planted, two_spaces, tmp_path):
    folder, _, layers = planted
    path, array = two_spaces
    run = encode_to_file(folder / "acts.h5", tmp_path / "enc", responses=[path], partition="a,b", folds=4,
                         alphas="0.01,1,100", device="cpu", plot=tmp_path / "partition.svg")
    with open(run.out_dir / "two_partition.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["channel", "r2_a", "r2_b", "r2_a+b", "unique_a", "unique_b", "shared_a+b"]
    expected = encoding.partition_variance({"a": layers["a"], "b": layers["b"].reshape(N, -1)}, array,
                                           EncodingParameters(folds=4, alphas=(0.01, 1, 100)),
                                           test_sets=outer_folds(N, 4, 0))
    np.testing.assert_allclose([float(r["unique_a"]) for r in rows], expected.unique["a"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose([float(r["shared_a+b"]) for r in rows], expected.shared["a", "b"], rtol=1e-5, atol=1e-6)
    unique_a = np.array([float(r["unique_a"]) for r in rows])
    unique_b = np.array([float(r["unique_b"]) for r in rows])
    assert (unique_a[:2] > unique_b[:2]).all() and (unique_b[2:4] > unique_a[2:4]).all()
    summary = {(r["measure"], r["spaces"]): r for r in run.summary}
    assert set(summary) == {("r2", "a"), ("r2", "b"), ("r2", "a+b"), ("unique", "a"), ("unique", "b"),
                            ("shared", "a+b")}
    assert summary["unique", "a"]["mean_r2"] == pytest.approx(np.mean(expected.unique["a"]))
    assert run.best == {} and (tmp_path / "partition.svg").read_text().lstrip().startswith("<?xml")
    with open(run.out_dir / "summary.csv") as handle:
        assert next(csv.reader(handle)) == ["roi", "subject", "measure", "spaces", "mean_r2", "median_r2", "n_targets"]


def test_partition_across_files_reorders_their_stimuli(planted, two_spaces, tmp_path):
    folder, _, layers = planted
    path, _ = two_spaces
    shuffled = np.random.default_rng(0).permutation(N)
    other = write_activations(tmp_path / "other.h5", {"b": layers["b"][shuffled]}, ids=[IDS[i] for i in shuffled])
    across = encode_to_file(folder / "acts.h5", tmp_path / "x", responses=[path], partition=f"a,{other}:b", folds=4,
                            alphas="0.01,1,100", device="cpu")
    within = encode_to_file(folder / "acts.h5", tmp_path / "w", responses=[path], partition="a,b", folds=4,
                            alphas="0.01,1,100", device="cpu")
    assert [r["spaces"] for r in across.summary][:3] == ["a", "other.b", "a+other.b"]
    np.testing.assert_allclose([r["mean_r2"] for r in across.summary], [r["mean_r2"] for r in within.summary],
                               rtol=1e-5, atol=1e-6)


def test_partition_of_volumes_writes_maps(planted, tmp_path):
    folder, betas, _ = planted
    run = encode_to_file(folder / "acts.h5", tmp_path / "enc", betas=betas, rois=[folder / "A.nii.gz"],
                         partition="a,b", alphas="0.01,1,100", device="cpu")
    names = {p.name for p in run.out_dir.iterdir()}
    assert {"sub-1_unique_a.nii.gz", "sub-2_unique_b.nii.gz", "sub-1_shared_a+b.nii.gz",
            "sub-2_r2_a+b.nii.gz"} <= names
    unique_a = read_map(run.out_dir / "sub-1_unique_a.nii.gz")
    assert np.nanmean(unique_a[BOX_A]) > np.nanmean(read_map(run.out_dir / "sub-1_unique_b.nii.gz")[BOX_A])
    assert np.isnan(unique_a[BOX_B]).all()
    rows = {(r["roi"], r["subject"], r["measure"], r["spaces"]): r for r in run.summary}
    assert rows["A", "group", "unique", "a"]["mean_r2"] == pytest.approx(
        np.mean([rows["A", s, "unique", "a"]["mean_r2"] for s in ("sub-1", "sub-2")]), rel=1e-5)


def test_partition_group_maps_are_the_mean_and_scipys_t(planted, tmp_path):
    folder, betas, _ = planted
    run = encode_to_file(folder / "acts.h5", tmp_path / "enc", betas=betas, rois=[folder / "A.nii.gz"],
                         partition="a,b", alphas="0.01,1,100", device="cpu")
    for measure in ("unique_a", "shared_a+b", "r2_a+b"):
        subjects = np.stack([read_map(run.out_dir / f"sub-{s}_{measure}.nii.gz") for s in (1, 2)])
        inside = np.isfinite(subjects).all(axis=0)
        test = ttest_1samp(subjects[:, inside], 0.0, axis=0)
        np.testing.assert_allclose(read_map(run.out_dir / f"group_{measure}_mean.nii.gz")[inside],
                                   subjects[:, inside].mean(axis=0), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(read_map(run.out_dir / f"group_{measure}_t.nii.gz")[inside], test.statistic,
                                   rtol=1e-4)
        np.testing.assert_allclose(read_map(run.out_dir / f"group_{measure}_p.nii.gz")[inside], test.pvalue,
                                   rtol=1e-4)
        assert run.out_dir / f"group_{measure}_t.nii.gz" in run.files


def test_partition_of_arrays_has_a_group_table(planted, two_spaces, tmp_path):
    folder, _, _ = planted
    path, _ = two_spaces
    second = tmp_path / "again.npy"
    np.save(second, np.load(path) + np.random.default_rng(2).normal(scale=0.5, size=np.load(path).shape))
    run = encode_to_file(folder / "acts.h5", tmp_path / "enc", responses=[path, second], partition="a,b", folds=4,
                         alphas="0.01,1,100", device="cpu")
    with open(run.out_dir / "group_partition.csv") as handle:
        rows = list(csv.DictReader(handle))
    subjects = []
    for name in ("two", "again"):
        with open(run.out_dir / f"{name}_partition.csv") as handle:
            subjects.append([float(row["unique_a"]) for row in csv.DictReader(handle)])
    np.testing.assert_allclose([float(row["unique_a_mean"]) for row in rows], np.mean(subjects, axis=0))
    np.testing.assert_allclose([float(row["unique_a_t"]) for row in rows], ttest_1samp(subjects, 0.0).statistic)


def test_partition_resumes_the_subjects_still_to_fit(planted, tmp_path, monkeypatch):
    folder, betas, _ = planted
    options = dict(betas=betas, rois=[folder / "A.nii.gz"], partition="a,b", alphas="0.01,1,100", device="cpu",
                   config={"partition": "a,b", "alphas": "0.01,1,100"})
    first = encode_to_file(folder / "acts.h5", tmp_path / "enc", **options)
    before = (first.out_dir / "summary.csv").read_text()
    (first.out_dir / "summary.csv").unlink()
    (first.out_dir / "sub-2_unique_b.nii.gz").unlink()
    fitted = []
    original = encoding.partition_variance
    monkeypatch.setattr(encoding, "partition_variance", lambda *a, **k: fitted.append(1) or original(*a, **k))
    resumed = encode_to_file(folder / "acts.h5", tmp_path / "enc", resume=True, **options)
    assert len(fitted) == 1 and resumed.resumed == 1
    assert (first.out_dir / "summary.csv").read_text() == before
    (first.out_dir / "summary.csv").unlink()
    from net2brain_fovex.errors import InputError

    with pytest.raises(InputError, match="`alphas`"):
        encode_to_file(folder / "acts.h5", tmp_path / "enc", resume=True,
                       **(options | {"alphas": "1,10", "config": {"partition": "a,b", "alphas": "1,10"}}))


@pytest.mark.parametrize(("options", "message"), [
    ({"partition": "a"}, "two or three feature spaces"),
    ({"partition": "a,a"}, "names a feature space twice"),
    ({"partition": "a,b", "model": "linear"}, "banded ridge"),
    ({"partition": "a,b", "inner": "loo"}, "leave `inner` out, or give kfold"),
    ({"partition": "a,b", "layers": "a"}, "leave `layers` out"),
    ({"partition": "a,b", "save_models": True}, "`save_models`"),
    ({"partition": "a,b", "resume": True, "overwrite": True}, "give one"),
])
def test_partition_refuses_contradictory_options(planted, two_spaces, tmp_path, options, message):
    from net2brain_fovex.errors import ConfigError

    folder, _, _ = planted
    with pytest.raises(ConfigError, match=message):
        encode_to_file(folder / "acts.h5", tmp_path / "enc", responses=[two_spaces[0]], device="cpu", **options)
    assert not (tmp_path / "enc").exists()


def test_saved_models_predict_new_stimuli(planted, two_spaces, tmp_path):
    from net2brain_fovex.brain.encoding_files import predict_to_file

    folder, _, layers = planted
    run = encode_to_file(folder / "acts.h5", tmp_path / "enc", responses=[two_spaces[0]], layers="a", folds=4,
                         save_models=True, device="cpu", plot=tmp_path / "profile.png")
    model = run.out_dir / "two_a_model.h5"
    assert model in run.files and (tmp_path / "profile.png").read_bytes()[:4] == b"\x89PNG"
    new = np.random.default_rng(4).normal(size=(7, FEATURES)).astype(np.float32)
    acts = write_activations(tmp_path / "new.h5", {"a": new}, ids=IDS[:7])
    out = predict_to_file(model, acts, tmp_path / "pred.npy")
    np.testing.assert_allclose(np.load(out), encoding.predict(model, new), rtol=1e-6)
    with h5py.File(predict_to_file(model, acts, tmp_path / "pred.h5"), "r") as file:
        assert file["predictions"].shape == (7, 6) and list(file["stimuli"].asstr()[()]) == IDS[:7]


def test_predictions_are_put_back_on_the_volumes_grid_or_in_the_channels_shape(planted, tmp_path):
    from net2brain_fovex.brain.encoding_files import predict_to_file
    from net2brain_fovex.errors import ConfigError

    folder, betas, layers = planted
    run = encode_to_file(folder / "acts.h5", tmp_path / "enc", betas=betas[:1], rois=[folder / "A.nii.gz"],
                         layers="a", save_models=True, device="cpu")
    model = run.out_dir / "sub-1_a_model.h5"
    new = np.random.default_rng(5).normal(size=(5, FEATURES)).astype(np.float32)
    acts = write_activations(tmp_path / "new.h5", {"a": new}, ids=IDS[:5])
    flat = encoding.predict(model, new)
    image = nib.load(predict_to_file(model, acts, tmp_path / "pred.nii.gz"))
    training = nib.load(betas[0])
    assert image.shape == (*training.shape[:3], 5) and np.allclose(image.affine, training.affine)
    data = image.get_fdata(dtype=np.float32)
    mask = nib.load(folder / "A.nii.gz").get_fdata() > 0
    np.testing.assert_array_equal(data[mask].T, flat)
    assert np.isnan(data[~mask]).all()
    np.testing.assert_array_equal(np.load(predict_to_file(model, acts, tmp_path / "pred.npy")), flat)

    rng = np.random.default_rng(8)
    array = rng.normal(size=(N, 3, 4))
    array[:, 0, :] += (layers["a"] @ rng.normal(size=(FEATURES, 4))) * 3
    np.save(tmp_path / "meg.npy", array)
    timed = encode_to_file(folder / "acts.h5", tmp_path / "meg", responses=[tmp_path / "meg.npy"], layers="a",
                           save_models=True, device="cpu")
    meg_model = timed.out_dir / "meg_a_model.h5"
    shaped = np.load(predict_to_file(meg_model, acts, tmp_path / "meg_pred.npy"))
    assert shaped.shape == (5, 3, 4)
    np.testing.assert_array_equal(shaped.reshape(5, -1), encoding.predict(meg_model, new))
    with h5py.File(predict_to_file(meg_model, acts, tmp_path / "meg_pred.h5"), "r") as file:
        np.testing.assert_array_equal(file["predictions"][()], shaped)
    with pytest.raises(ConfigError, match="is a NIfTI, but .* models channels of no volume; write .npy or .h5"):
        predict_to_file(meg_model, acts, tmp_path / "meg_pred.nii.gz")
    assert not (tmp_path / "meg_pred.nii.gz").exists()


def test_a_model_saved_without_layout_predicts_flat_arrays_only(planted, tmp_path):
    """A model a Python user saved without `layout`: (stimuli, targets) predictions, and no NIfTI."""
    from net2brain_fovex.brain.encoding_files import predict_to_file
    from net2brain_fovex.errors import ConfigError

    folder, _, layers = planted
    responses = layers["a"] @ np.random.default_rng(6).normal(size=(FEATURES, 3))
    parameters = EncodingParameters(alphas=(0.1, 1.0))
    fitted = fit_encoding(layers["a"], responses, parameters, test_sets=outer_folds(N, 5, 0))
    model = encoding.save_models(tmp_path / "bare_model.h5", layers["a"], responses, parameters, fitted, layer="a")
    assert encoding.model_layout(model) == {}
    assert np.load(predict_to_file(model, folder / "acts.h5", tmp_path / "pred.npy")).shape == (N, 3)
    before = sorted(tmp_path.iterdir())
    with pytest.raises(ConfigError, match="models targets of no volume; write .npy or .h5"):
        predict_to_file(model, folder / "acts.h5", tmp_path / "pred.nii")
    assert sorted(tmp_path.iterdir()) == before  # nothing written


def test_the_profile_figure_is_the_mean_and_sem_across_subjects(result):
    from net2brain_fovex.figures.encoding import profile_values

    profiles = profile_values(result.summary, ["a", "b"])
    rows = {(r["roi"], r["layer"], r["subject"]): r["mean_r"] for r in result.summary}
    mean, sem, subjects = profiles["A"]
    values = np.array([[rows["A", layer, s] for layer in ("a", "b")] for s in ("sub-1", "sub-2")])
    assert subjects == 2
    np.testing.assert_allclose(mean, values.mean(axis=0))
    np.testing.assert_allclose(sem, values.std(axis=0, ddof=1) / np.sqrt(2))
