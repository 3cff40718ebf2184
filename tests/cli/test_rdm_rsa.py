"""`net2brain rdm` and `net2brain rsa` through the command line: inputs, outputs, errors."""
from __future__ import annotations

import csv

import nibabel as nib
import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform

from net2brain_fovex.brain.rdm import compute_rdm
from net2brain_fovex.brain.rdm_files import read_rdm_file, write_rdms
from net2brain_fovex.io.config import config_path_for
from tests.brain.test_rdm import write_activations
from tests.conftest import write_images

RNG = np.random.default_rng(5)


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def activations(tmp_path):
    layers = {"conv": RNG.normal(size=(8, 3, 4, 4)).astype(np.float32), "fc": RNG.normal(size=(8, 6)).astype(np.float32)}
    path = tmp_path / "acts.h5"
    write_activations(path, layers, [f"img_{i}.png" for i in range(8)])
    return path, layers


def test_rdm_of_activations(net2brain, tmp_path, activations):
    path, layers = activations
    out, plots = tmp_path / "rdms.h5", tmp_path / "plots"
    plots.mkdir()
    result = net2brain("rdm", "--activations", path, "--out", out, "--metric", "euclidean", "--precision", "double",
                       "--plot", plots, "--memory", 1)
    assert result.code == 0, result
    read = read_rdm_file(out)
    assert list(read.rdms) == ["conv", "fc"] and read.metric == "euclidean" and read.model == "toy"
    assert read.stimuli == [f"img_{i}.png" for i in range(8)]
    np.testing.assert_allclose(read.rdms["conv"], squareform(pdist(layers["conv"].reshape(8, -1).astype(float))), atol=1e-9)
    assert sorted(p.name for p in plots.iterdir()) == ["conv.png", "fc.png"]
    assert config_path_for(out).exists()
    chosen = tmp_path / "fc.h5"
    assert net2brain("rdm", "--activations", path, "--out", chosen, "--layers", "fc").code == 0
    assert list(read_rdm_file(chosen).rdms) == ["fc"]


def test_rdm_of_fmri_volumes(net2brain, tmp_path):
    affine = np.diag([2.0, 2.0, 2.5, 1.0])
    shape, n = (5, 6, 4), 7
    masks = {}
    for name, corner in (("V1", (0, 0, 0)), ("IT", (2, 3, 1))):
        mask = np.zeros(shape, dtype=np.uint8)
        mask[corner[0]:corner[0] + 3, corner[1]:corner[1] + 3, corner[2]:corner[2] + 2] = 1
        masks[name] = mask
        nib.save(nib.Nifti1Image(mask, affine), tmp_path / f"{name}.nii.gz")
    subjects = []
    for s in range(2):
        data = RNG.normal(size=(*shape, n)).astype(np.float32)
        data[0, 0, 0, 3] = np.nan  # a broken voxel inside V1 is left out
        nib.save(nib.Nifti1Image(data, affine), tmp_path / f"sub-{s}.nii.gz")
        subjects.append(data)
    stimuli = write_images(tmp_path / "stimuli", n)
    out = tmp_path / "brain.h5"
    result = net2brain("rdm", "--betas", tmp_path / "sub-0.nii.gz", "--betas", tmp_path / "sub-1.nii.gz",
                       "--mask", tmp_path / "V1.nii.gz", "--mask", tmp_path / "IT.nii.gz", "--stimuli", stimuli,
                       "--out", out, "--precision", "double")
    assert result.code == 0, result
    read = read_rdm_file(out)
    assert read.rdms["V1"].shape == (2, n, n) and read.stimuli == [f"img_{i}.png" for i in range(1, n + 1)]
    for s, data in enumerate(subjects):
        for name, mask in masks.items():
            patterns = data[mask.astype(bool)].T  # (stimuli, voxels)
            patterns = patterns[:, np.isfinite(patterns).all(axis=0)]
            np.testing.assert_allclose(read.rdms[name][s], squareform(pdist(patterns.astype(float), "correlation")), atol=1e-9)
    assert "voxel(s) of V1 hold NaN" in result.err


def test_rdm_of_meg_responses_and_time_resolved_rsa(net2brain, tmp_path):
    n, channels, times = 6, 5, 4
    files = []
    for s in range(3):
        np.save(tmp_path / f"sub-{s}.npy", RNG.normal(size=(n, channels, times)))
        files += ["--responses", tmp_path / f"sub-{s}.npy"]
    brain = tmp_path / "meg.h5"
    result = net2brain("rdm", *files, "--roi", "MEG", "--out", brain)
    assert result.code == 0, result
    stack = read_rdm_file(brain).rdms["MEG"]
    assert stack.shape == (3, times, n, n)
    subject0 = np.load(tmp_path / "sub-0.npy")
    np.testing.assert_allclose(stack[0, 2], compute_rdm(subject0[:, :, 2]), atol=1e-6)
    model = tmp_path / "model.h5"
    write_rdms(model, [str(i) for i in range(n)], {"a": squareform(pdist(RNG.normal(size=(n, 3))))}, metric="euclidean")
    out = tmp_path / "meg_rsa.csv"  # meg.csv would share the sidecar meg.config.yaml of meg.h5
    result = net2brain("rsa", "--model-rdms", model, "--brain-rdms", brain, "--out", out)
    assert result.code == 0, result
    rows = read_csv(out)
    assert [row["time"] for row in rows] == ["0", "1", "2", "3", "mean"]


@pytest.fixture
def rsa_inputs(tmp_path):
    n = 10
    stimuli = [f"s{i}" for i in range(n)]
    layers = {f"layer{i}": squareform(pdist(RNG.normal(size=(n, 4)))) for i in range(4)}
    model = write_rdms(tmp_path / "model.h5", stimuli, layers, metric="correlation", attrs={"model": "toy"})
    from net2brain_fovex.demo.synthetic import simulate_brain_rdms

    brain = simulate_brain_rdms(layers, {"V1": "layer0", "IT": "layer2"}, subjects=6, noise=0.8, seed=0)
    folder = tmp_path / "brain_data"
    folder.mkdir()
    order = np.arange(n)[::-1]  # the brain file lists the stimuli in another order
    write_rdms(folder / "brain.h5", [stimuli[i] for i in order], {k: v[:, order][:, :, order] for k, v in brain.items()}, metric="x")
    return model, folder


def test_rsa_end_to_end(net2brain, tmp_path, rsa_inputs):
    model, brain = rsa_inputs
    out, figure = tmp_path / "results.csv", tmp_path / "results.png"
    result = net2brain("rsa", "--model-rdms", model, "--brain-rdms", brain, "--out", out, "--plot", figure,
                       "--weighted", "--folds", 3, "--bootstrap", 20, "--correction", "fdr")
    assert result.code == 0, result
    rows = read_csv(out)
    assert list(rows[0]) == ["roi", "model", "layer", "score", "sem", "p", "p_corrected", "lnc", "unc", "pct_of_nc",
                             "n_subjects", "measure", "ci_low", "ci_high"]
    best = {}
    for row in rows:
        if row["layer"] != "weighted" and float(row["score"]) > float(best.get(row["roi"], {"score": -1})["score"]):
            best[row["roi"]] = row
    assert best["V1"]["layer"] == "layer0" and best["IT"]["layer"] == "layer2"
    assert rows[0]["model"] == "toy" and rows[0]["measure"] == "spearman r^2" and rows[0]["n_subjects"] == "6"
    assert sum(row["layer"] == "weighted" for row in rows) == 2
    weights = read_csv(tmp_path / "results.weights.csv")
    assert len(weights) == 8 and {w["layer"] for w in weights} == {f"layer{i}" for i in range(4)}
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "best layer per ROI" in result.err and "layer0" in result.err


def test_rsa_no_squared_and_layer_choice(net2brain, tmp_path, rsa_inputs):
    model, brain = rsa_inputs
    out = tmp_path / "r.csv"
    result = net2brain("rsa", "--model-rdms", model, "--brain-rdms", brain, "--out", out, "--no-squared",
                       "--compare", "pearson", "--layers", "layer1,layer3")
    assert result.code == 0, result
    rows = read_csv(out)
    assert {row["layer"] for row in rows} == {"layer1", "layer3"} and rows[0]["measure"] == "pearson r"


def bad_nan(tmp_path):
    stack = np.stack([squareform(pdist(RNG.normal(size=(10, 3)))) for _ in range(2)])
    stack[1, 2, 3] = stack[1, 3, 2] = np.nan
    np.savez(tmp_path / "nan.npz", stack)
    return tmp_path / "nan.npz"


def bad_asymmetric(tmp_path):
    stack = RNG.uniform(size=(2, 10, 10))
    np.savez(tmp_path / "asym.npz", stack)
    return tmp_path / "asym.npz"


def bad_count(tmp_path):
    np.savez(tmp_path / "small.npz", np.stack([squareform(pdist(RNG.normal(size=(9, 3))))] * 2))
    return tmp_path / "small.npz"


def bad_names(tmp_path):
    write_rdms(tmp_path / "other.h5", [f"x{i}" for i in range(10)], {"IT": np.stack([squareform(pdist(RNG.normal(size=(10, 3))))] * 2)}, metric="x")
    return tmp_path / "other.h5"


def empty_folder(tmp_path):
    (tmp_path / "none").mkdir()
    return tmp_path / "none"


@pytest.mark.parametrize(
    ("make", "extra", "message"),
    [
        (bad_nan, [], "holds NaN or infinite values (first at index (1, 2, 3))"),
        (bad_asymmetric, [], "is not symmetric"),
        (bad_count, [], "ROI 'small' in {tmp}/small.npz has 9 stimuli, the model RDMs in {tmp}/model.h5 have 10"),
        (bad_names, [], "stimulus ids differ between {tmp}/model.h5 and {tmp}/other.h5: missing from the brain data: s0, s1, s2"),
        (empty_folder, [], "brain RDM folder {tmp}/none holds no"),
        (lambda t: t / "missing.npz", [], "brain RDM file or folder {tmp}/missing.npz does not exist"),
        (lambda t: t / "brain_data", ["--layers", "layer9"], "unknown layer 'layer9'; closest: layer3, layer2, layer1"),
        (lambda t: t / "brain_data", ["--compare", "cosine"], "Invalid value for '--compare'"),
    ],
)
def test_rsa_bad_input(net2brain, tmp_path, rsa_inputs, make, extra, message):
    model, _ = rsa_inputs
    brain = make(tmp_path)
    result = net2brain("rsa", "--model-rdms", model, "--brain-rdms", brain, "--out", tmp_path / "out.csv", *extra)
    assert result.code == 2, result
    assert message.format(tmp=tmp_path) in " ".join(result.err.split())
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metric", "mahalanobis"], "Invalid value for '--metric'"),
        (["--layers", "fc,pool"], "unknown layer 'pool'"),
        (["--responses", "x.npy"], "give exactly one of --activations, --betas"),
    ],
)
def test_rdm_bad_input(net2brain, tmp_path, activations, args, message):
    path, _ = activations
    result = net2brain("rdm", "--activations", path, "--out", tmp_path / "out.h5", *args)
    assert result.code == 2, result
    assert message in " ".join(result.err.split())
    assert not (tmp_path / "out.h5").exists()


def test_rdm_brain_input_errors(net2brain, tmp_path):
    volume = nib.Nifti1Image(RNG.normal(size=(4, 4, 4)).astype(np.float32), np.eye(4))
    nib.save(volume, tmp_path / "three_d.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), dtype=np.uint8), np.eye(4)), tmp_path / "m.nii.gz")
    result = net2brain("rdm", "--betas", tmp_path / "three_d.nii.gz", "--mask", tmp_path / "m.nii.gz", "--out", tmp_path / "o.h5")
    assert result.code == 2 and "has 3 dimensions; expected a 4D volume" in result.err
    (tmp_path / "broken.nii.gz").write_bytes(b"\x1f\x8b garbage")
    result = net2brain("rdm", "--betas", tmp_path / "broken.nii.gz", "--mask", tmp_path / "m.nii.gz", "--out", tmp_path / "o.h5")
    assert result.code == 2 and "cannot read response volume" in result.err
    np.save(tmp_path / "r.npy", np.ones(5))
    result = net2brain("rdm", "--responses", tmp_path / "r.npy", "--out", tmp_path / "o.h5")
    assert result.code == 2 and "responses must be numbers shaped (stimuli, channels)" in result.err
    assert not (tmp_path / "o.h5").exists()


def test_rsa_json_holds_every_row_of_the_csv(net2brain, tmp_path, rsa_inputs):
    import json

    model, brain = rsa_inputs
    out = tmp_path / "r.csv"
    result = net2brain("rsa", "--model-rdms", model, "--brain-rdms", brain, "--out", out, "--json")
    assert result.code == 0, result
    document = json.loads(result.out)
    rows = read_csv(out)
    assert len(document["results"]) == len(rows) == 8
    for given, written in zip(document["results"], rows, strict=True):
        assert given["roi"] == written["roi"] and given["layer"] == written["layer"]
        assert given["score"] == pytest.approx(float(written["score"]), rel=1e-12)
    assert "best layer per ROI" not in result.err
