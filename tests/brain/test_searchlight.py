"""Searchlight RSA: spheres, per-centre values against a literal loop, maps, statistics, errors."""
from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist, squareform
from scipy.stats import kendalltau, pearsonr, spearmanr, ttest_1samp

from net2brain_fovex.brain.rdm import compute_rdm
from net2brain_fovex.brain.rdm_files import write_rdms
from net2brain_fovex.brain.searchlight import SphereIndex, precomputed_scores, searchlight_scores, sphere_offsets
from net2brain_fovex.demo.synthetic import simulate_volumes
from net2brain_fovex.errors import ConfigError, InputError

RNG = np.random.default_rng(7)
ANISOTROPIC = np.array([[2.0, 0, 0, -10], [0, 2.5, 0, 4], [0, 0, 3.0, 7], [0, 0, 0, 1]])


def literal_members(mask, affine, radius):
    """For every mask voxel, the mask voxels within radius mm: distances computed one by one."""
    coordinates = np.argwhere(mask)
    millimetres = coordinates @ np.asarray(affine)[:3, :3].T
    return [set(np.flatnonzero(np.linalg.norm(millimetres - millimetres[c], axis=1) <= radius)) for c in range(len(coordinates))]


@pytest.mark.parametrize("affine", [ANISOTROPIC, np.array([[0, -2.0, 0, 0], [1.5, 0, 0.5, 0], [0, 0, 2.0, 0], [0, 0, 0, 1]])])
@pytest.mark.parametrize("radius", [2.0, 4.9, 6.0])
def test_sphere_membership_against_distances(affine, radius):
    mask = RNG.uniform(size=(7, 8, 6)) < 0.7
    index = SphereIndex.build(mask, affine, radius)
    found = index.neighbours(np.arange(len(index.coordinates)))
    expected = literal_members(mask, affine, radius)
    for row, members in zip(found, expected, strict=True):
        assert set(row[row >= 0].tolist()) == members
    assert (sphere_offsets(affine, radius)[0] == 0).all()  # the centre comes first


def test_radius_is_inclusive_in_millimetres():
    offsets = sphere_offsets(np.diag([2.0, 2.0, 2.0, 1.0]), 2.0)
    assert len(offsets) == 7  # the centre and its 6 face neighbours at exactly 2 mm
    assert len(sphere_offsets(np.diag([2.0, 2.0, 2.0, 1.0]), 6.0)) == 123
    with pytest.raises(ConfigError, match="`radius` must be a positive number"):
        sphere_offsets(np.eye(4), 0)


def literal_scores(patterns, mask, affine, radius, models, metric, method, min_voxels):
    """One centre at a time with scipy."""
    scipy_metric = {"correlation": "correlation", "euclidean": "euclidean", "sqeuclidean": "sqeuclidean", "cosine": "cosine"}[metric]
    compare = {"spearman": lambda a, b: spearmanr(a, b).statistic, "pearson": lambda a, b: pearsonr(a, b).statistic,
               "kendall": lambda a, b: kendalltau(a, b).statistic}[method]
    scores = np.full((len(models), len(patterns)), np.nan)
    for centre, members in enumerate(literal_members(mask, affine, radius)):
        if len(members) < max(min_voxels, 2):
            continue
        rdm = pdist(patterns[sorted(members)].T, scipy_metric)
        for layer, model in enumerate(models):
            scores[layer, centre] = compare(rdm, model)
    return scores


@pytest.mark.parametrize(("metric", "method"), [
    ("correlation", "spearman"), ("euclidean", "pearson"), ("sqeuclidean", "spearman"), ("cosine", "pearson"),
    ("correlation", "kendall"),
])
def test_per_centre_values_equal_literal_loop(metric, method):
    mask = np.zeros((6, 7, 5), dtype=bool)
    mask[1:5, 1:6, :4] = True
    mask[2, 3, 1] = False
    n = 9
    index = SphereIndex.build(mask, ANISOTROPIC, 4.0)
    patterns = RNG.normal(size=(len(index.coordinates), n)) + 1
    models = np.stack([pdist(RNG.normal(size=(n, 3))) for _ in range(2)])
    got = searchlight_scores(patterns, index, models, metric=metric, compare=method, min_voxels=4, batch_size=13,
                             precision="double")
    expected = literal_scores(patterns, mask, ANISOTROPIC, 4.0, models, metric, method, 4)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, atol=1e-10, equal_nan=True)
    single = searchlight_scores(patterns, index, models, metric=metric, compare=method, min_voxels=4, batch_size=1000)
    np.testing.assert_allclose(single, expected, atol=1e-3, equal_nan=True)  # float32 ranks of nearly equal values


def test_precomputed_searchlight_rdms():
    n, subjects = 8, 3
    rdms = np.stack([[squareform(pdist(RNG.normal(size=(n, 3)))) for _ in range(subjects)] for _ in range(5)])
    models = {"a": squareform(pdist(RNG.normal(size=(n, 3)))), "b": squareform(pdist(RNG.normal(size=(n, 3))))}
    got = precomputed_scores(rdms, models, "spearman", batch_size=2)
    for c in range(5):
        for s in range(subjects):
            for l, model in enumerate(models.values()):
                assert got[s, l, c] == pytest.approx(spearmanr(squareform(rdms[c, s]), squareform(model)).statistic, abs=1e-12)
    with pytest.raises(InputError, match="must be \\(searchlights, subjects, n, n\\)"):
        precomputed_scores(rdms[0], models)
    with pytest.raises(InputError, match=r"model RDM 'c' has shape \(7, 7\); the searchlight RDMs are for 8 stimuli"):
        precomputed_scores(rdms, {**models, "c": models["a"][:7, :7]})
    broken = models["b"].copy()
    broken[0, 1] = np.nan
    with pytest.raises(InputError, match=r"model RDM 'b'.*NaN"):
        precomputed_scores(rdms, {"a": models["a"], "b": broken})
    with pytest.raises(ConfigError, match="give at least one model RDM"):
        precomputed_scores(rdms, {})
    with pytest.raises(ConfigError, match="`batch_size` must be at least 1"):
        precomputed_scores(rdms, models, batch_size=0)
    with pytest.raises(InputError, match="are for 2 stimuli; a comparison needs at least 3"):
        precomputed_scores(rdms[:, :, :2, :2], {"a": models["a"][:2, :2]})


# ------------------------------------------------------------------------------ CLI


N_STIMULI = 16


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """3 subjects; layer `a` planted at (4, 8, 6), layer `b` at (11, 8, 6); `c` nowhere."""
    folder = tmp_path_factory.mktemp("searchlight")
    acts = {name: RNG.normal(size=(N_STIMULI, 40)) for name in "abc"}
    rdms = {k: compute_rdm(v, precision="double") for k, v in acts.items()}
    volumes, affine = simulate_volumes(rdms, {"a": (4, 8, 6), "b": (11, 8, 6)}, subjects=3, noise=0.5, seed=3)
    header = nib.Nifti1Header()
    header.set_xyzt_units("mm", "sec")
    paths = []
    for number, volume in enumerate(volumes):
        image = nib.Nifti1Image(volume, affine, header=header)
        image.header["descrip"] = b"planted"
        nib.save(image, folder / f"sub-{number + 1}.nii.gz")
        paths.append(folder / f"sub-{number + 1}.nii.gz")
    stimuli = [f"s{i:02d}" for i in range(N_STIMULI)]
    write_rdms(folder / "model.h5", stimuli, rdms, metric="correlation")
    return folder, paths, affine


def run(net2brain, planted, out, *extra):
    folder, paths, _ = planted
    betas = [arg for path in paths for arg in ("--betas", path)]
    return net2brain("searchlight", *betas, "--model-rdms", folder / "model.h5", "--radius", 6, "--out-dir", out, *extra)


def test_planted_spheres_light_up(net2brain, planted, tmp_path):
    folder, paths, affine = planted
    result = run(net2brain, planted, tmp_path / "out", "--fdr", 0.05)
    assert result.code == 0, result
    for layer, centre in {"a": (4, 8, 6), "b": (11, 8, 6)}.items():
        mean = nib.load(tmp_path / "out" / f"group_{layer}_mean.nii.gz").get_fdata()
        assert np.unravel_index(np.nanargmax(mean), mean.shape) == centre
        fdr = nib.load(tmp_path / "out" / f"group_{layer}_fdr0.05.nii.gz").get_fdata()
        assert fdr[centre] == 1
    with open(tmp_path / "out" / "summary.csv", newline="") as handle:
        rows = {row["map"]: row for row in csv.DictReader(handle)}
    assert (rows["group_a_mean.nii.gz"]["peak_i"], rows["group_a_mean.nii.gz"]["peak_j"]) == ("4", "8")
    assert rows["group_b_mean.nii.gz"]["peak_x"] == "22.0"  # 11 voxels x 2 mm
    assert rows["sub-1_c.nii.gz"]["statistic"] == "score" and len(rows) == 3 * 3 + 3 * 2


def test_searchlight_json_is_the_summary(net2brain, planted, tmp_path):
    import json

    result = run(net2brain, planted, tmp_path / "out", "--layers", "a", "--json")
    assert result.code == 0, result
    document = json.loads(result.out)
    with open(tmp_path / "out" / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["map"] for r in document["summary"]] == [r["map"] for r in rows]
    assert document["summary"][0]["peak_value"] == pytest.approx(float(rows[0]["peak_value"]))
    assert all(Path(path).exists() for path in document["files"]["maps"])


def test_group_maps_against_scipy_and_header_kept(net2brain, planted, tmp_path):
    folder, paths, affine = planted
    assert run(net2brain, planted, tmp_path / "out").code == 0
    subject_maps = np.stack([nib.load(tmp_path / "out" / f"sub-{s}_a.nii.gz").get_fdata() for s in (1, 2, 3)])
    test = ttest_1samp(subject_maps, 0, axis=0)
    t = nib.load(tmp_path / "out" / "group_a_t.nii.gz").get_fdata()
    p = nib.load(tmp_path / "out" / "group_a_p.nii.gz").get_fdata()
    finite = np.isfinite(t)
    assert finite.sum() > 1000
    np.testing.assert_allclose(t[finite], test.statistic[finite], rtol=1e-5)
    np.testing.assert_allclose(p[finite], test.pvalue[finite], rtol=1e-4, atol=1e-12)
    np.testing.assert_allclose(nib.load(tmp_path / "out" / "group_a_mean.nii.gz").get_fdata(), subject_maps.mean(0), atol=1e-6)
    written, source = nib.load(tmp_path / "out" / "sub-1_a.nii.gz"), nib.load(paths[0])
    np.testing.assert_array_equal(written.affine, source.affine)
    assert written.shape == source.shape[:3] and written.get_data_dtype() == np.float32
    assert written.header.get_xyzt_units() == ("mm", "sec") and written.header["descrip"] == source.header["descrip"]
    np.testing.assert_array_equal(written.header.get_zooms()[:3], source.header.get_zooms()[:3])


def test_stimulus_order_from_a_list(net2brain, planted, tmp_path):
    folder, paths, affine = planted
    order = RNG.permutation(N_STIMULI)
    shuffled = []
    for path in paths:
        image = nib.load(path)
        nib.save(nib.Nifti1Image(image.get_fdata()[..., order].astype(np.float32), image.affine), tmp_path / path.name)
        shuffled += ["--betas", tmp_path / path.name]
    listing = tmp_path / "order.txt"  # the volumes' order, as stimulus ids
    listing.write_text("\n".join(f"s{i:02d}.png" for i in order))
    for i in range(N_STIMULI):
        (tmp_path / f"s{i:02d}.png").write_bytes(b"")
    from net2brain_fovex.brain.rdm_files import read_rdm_file

    model = read_rdm_file(folder / "model.h5")
    write_rdms(tmp_path / "model.h5", [f"s{i:02d}.png" for i in range(N_STIMULI)], model.rdms, metric="correlation")
    result = net2brain("searchlight", *shuffled, "--stimuli", listing, "--model-rdms", tmp_path / "model.h5",
                       "--radius", 6, "--out-dir", tmp_path / "reordered", "--layers", "a")
    assert result.code == 0, result
    assert run(net2brain, planted, tmp_path / "plain", "--layers", "a").code == 0
    np.testing.assert_allclose(nib.load(tmp_path / "reordered" / "group_a_mean.nii.gz").get_fdata(),
                               nib.load(tmp_path / "plain" / "group_a_mean.nii.gz").get_fdata(), atol=1e-6)


def test_default_mask_leaves_out_unusable_voxels(net2brain, tmp_path):
    acts = {"a": RNG.normal(size=(8, 20))}
    (volume,), affine = simulate_volumes({"a": compute_rdm(acts["a"])}, {"a": (3, 3, 3)}, shape=(7, 7, 7), subjects=1, seed=1)
    volume[0, 0, 0, 2] = np.nan
    volume[6, 6, 6] = 1.0  # constant
    nib.save(nib.Nifti1Image(volume, affine), tmp_path / "sub.nii.gz")
    write_rdms(tmp_path / "m.h5", [str(i) for i in range(8)], {"a": compute_rdm(acts["a"])}, metric="correlation")
    result = net2brain("searchlight", "--betas", tmp_path / "sub.nii.gz", "--model-rdms", tmp_path / "m.h5",
                       "--radius", 4, "--out-dir", tmp_path / "out", "--min-voxels", 1)
    assert result.code == 0, result
    score = nib.load(tmp_path / "out" / "sub_a.nii.gz").get_fdata()
    assert np.isnan(score[0, 0, 0]) and np.isnan(score[6, 6, 6]) and np.isfinite(score[3, 3, 3])
    assert not (tmp_path / "out" / "group_a_mean.nii.gz").exists()  # one subject: no group maps


def test_precomputed_via_cli(net2brain, tmp_path):
    n = 7
    rdms = np.stack([[squareform(pdist(RNG.normal(size=(n, 3)))) for _ in range(2)] for _ in range(4)])
    centres = np.array([[1, 1, 1], [0, 2, 1], [2, 0, 0], [1, 2, 2]])
    np.savez(tmp_path / "sl.npz", rdms, centres=centres)
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3), dtype=np.float32), np.diag([3.0, 3, 3, 1])), tmp_path / "ref.nii.gz")
    write_rdms(tmp_path / "m.h5", [str(i) for i in range(n)], {"a": squareform(pdist(RNG.normal(size=(n, 2))))}, metric="x")
    result = net2brain("searchlight", "--searchlight-rdms", tmp_path / "sl.npz", "--reference", tmp_path / "ref.nii.gz",
                       "--model-rdms", tmp_path / "m.h5", "--out-dir", tmp_path / "out")
    assert result.code == 0, result
    from net2brain_fovex.brain.rdm_files import read_rdm_file

    expected = precomputed_scores(rdms, read_rdm_file(tmp_path / "m.h5").rdms)  # (subjects, layers, searchlights)
    for subject in (0, 1):
        volume = nib.load(tmp_path / "out" / f"sub-{subject + 1:02d}_a.nii.gz").get_fdata()
        assert np.isfinite(volume).sum() == 4 and np.isnan(volume[0, 0, 1])
        for c, (i, j, k) in enumerate(centres):
            assert volume[i, j, k] == pytest.approx(expected[subject, 0, c], abs=1e-6)
    assert (tmp_path / "out" / "group_a_t.nii.gz").exists()


@pytest.fixture
def bad_inputs(tmp_path, planted):
    folder, paths, affine = planted
    three_d = tmp_path / "three_d.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 12), dtype=np.float32), affine), three_d)
    short = tmp_path / "short.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 12, 5), dtype=np.float32), affine), short)
    wrong_shape = tmp_path / "mask_shape.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((8, 8, 8), dtype=np.uint8), affine), wrong_shape)
    moved = tmp_path / "mask_affine.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((16, 16, 12), dtype=np.uint8), np.diag([3.0, 3, 3, 1])), moved)
    empty = tmp_path / "mask_empty.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 12), dtype=np.uint8), affine), empty)
    return {"3d": three_d, "short": short, "shape": wrong_shape, "affine": moved, "empty": empty, "good": paths[0], "model": folder / "model.h5"}


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (lambda b: ["--betas", b["3d"], "--radius", 6], "has 3 dimensions; expected a 4D volume"),
        (lambda b: ["--betas", b["short"], "--radius", 6], "holds 5 volumes, but there are 16 stimuli"),
        (lambda b: ["--betas", b["good"], "--mask", b["shape"], "--radius", 6], "has shape (8, 8, 8)"),
        (lambda b: ["--betas", b["good"], "--mask", b["affine"], "--radius", 6], "have different affines"),
        (lambda b: ["--betas", b["good"], "--mask", b["empty"], "--radius", 6], "is empty: no voxel is finite and non-zero"),
        (lambda b: ["--betas", b["good"], "--radius", 0], "--radius must be a positive number of millimetres"),
        (lambda b: ["--betas", b["good"], "--radius", -2], "--radius must be a positive number of millimetres"),
        (lambda b: ["--betas", b["good"]], "missing option --radius"),
        (lambda b: ["--betas", b["good"], "--radius", 6, "--layers", "d"], "unknown layer 'd'"),
    ],
)
def test_bad_input_exits_2(net2brain, tmp_path, bad_inputs, case, message):
    out = tmp_path / "out"
    result = net2brain("searchlight", *case(bad_inputs), "--model-rdms", bad_inputs["model"], "--out-dir", out)
    assert result.code == 2, result
    assert message in result.err and "Traceback" not in result.err
    assert not out.exists() or not any(out.glob("*.nii.gz"))


def test_values_do_not_depend_on_the_threads_and_the_threads_are_restored():
    """On a CPU, batches run side by side, one per torch thread: the same values with one
    thread or three, and torch's thread count as it was afterwards."""
    mask = np.ones((7, 6, 5), dtype=bool)
    index = SphereIndex.build(mask, np.eye(4), 2.0)
    patterns = RNG.normal(size=(len(index.coordinates), 12)).astype(np.float32)
    models = np.stack([pdist(RNG.normal(size=(12, 3))) for _ in range(2)])
    before = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 3):
            torch.set_num_threads(threads)
            results.append(searchlight_scores(patterns, index, models, batch_size=7))
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(results[0], results[1])
    assert np.isfinite(results[0]).all()
