"""`net2brain encode` through the command line: maps, the best layer per ROI on stderr,
`--json`, the resolved options as a config that repeats the run, `--resume`, `--alphas`, `--inner`, `--partition`
(its group maps and `--resume`), predictions put back on the volumes' grid, `--shard` and `merge`."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import yaml

from tests.brain.test_encoding_files import planted  # noqa: F401  (the fixture)

# planted voxels with little noise choose the smallest alphas: the engine says so, rightly
pytestmark = pytest.mark.filterwarnings("ignore:.*chose an alpha at an edge:RuntimeWarning")


@pytest.fixture(scope="module")
def inputs(planted):  # noqa: F811
    folder, betas, _ = planted
    return ["--activations", folder / "acts.h5", *[a for b in betas for a in ("--betas", b)],
            "--rois", folder / "A.nii.gz", "--rois", folder / "B.nii.gz", "--device", "cpu"]


def test_encode_writes_the_maps_and_names_the_best_layer(net2brain, inputs, tmp_path):
    result = net2brain("encode", *inputs, "--out-dir", tmp_path / "enc", "--json")
    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert document["best"]["A"]["layer"] == "a" and document["best"]["B"]["layer"] == "b"
    assert "best layer for A: a (mean r" in result.err and "best layer for B: b" in result.err
    names = {p.name for p in (tmp_path / "enc").iterdir()}
    assert {"sub-1_a_r.nii.gz", "sub-2_b_r2.nii.gz", "group_a_t.nii.gz", "summary.csv", "encode.config.yaml"} <= names
    options = yaml.safe_load((tmp_path / "enc" / "encode.config.yaml").read_text())
    assert options["model"] == "ridge" and options["folds"] == 5 and options["out-dir"] == str(tmp_path / "enc")


def test_the_recorded_options_repeat_the_run(net2brain, inputs, tmp_path):
    assert net2brain("encode", *inputs, "--out-dir", tmp_path / "first", "--layers", "a", "--folds", 4).code == 0
    again = net2brain("encode", "--config", tmp_path / "first" / "encode.config.yaml", "--out-dir", tmp_path / "again")
    assert again.code == 0, again.err
    assert (tmp_path / "again" / "summary.csv").read_text() == (tmp_path / "first" / "summary.csv").read_text()


def test_resume_continues_an_interrupted_run(net2brain, inputs, tmp_path):
    out = tmp_path / "enc"
    assert net2brain("encode", *inputs, "--out-dir", out, "--layers", "b").code == 0
    before = (out / "summary.csv").read_text()
    (out / "summary.csv").unlink()
    (out / "sub-1_b_r2.nii.gz").unlink()
    resumed = net2brain("encode", *inputs, "--out-dir", out, "--layers", "b", "--resume")
    assert resumed.code == 0, resumed.err
    assert "1 of 2 (subject, layer) results are complete and kept" in resumed.err
    assert (out / "summary.csv").read_text() == before
    (out / "summary.csv").unlink()
    refused = net2brain("encode", *inputs, "--out-dir", out, "--layers", "b", "--resume", "--folds", 4)
    assert refused.code == 2 and "--folds" in refused.err and "--overwrite" in refused.err


def test_alphas_and_the_linear_model(net2brain, inputs, tmp_path):
    ridge = net2brain("encode", *inputs, "--out-dir", tmp_path / "r", "--layers", "a", "--alphas", "0.1,1,10", "--json")
    linear = net2brain("encode", *inputs, "--out-dir", tmp_path / "l", "--layers", "a", "--model", "linear", "--json")
    assert ridge.code == 0 and linear.code == 0, (ridge.err, linear.err)
    for result in (ridge, linear):
        best = json.loads(result.out)["best"]
        assert best["A"]["layer"] == "a" and np.isfinite(best["A"]["mean_r"])
    bad = net2brain("encode", *inputs, "--out-dir", tmp_path / "x", "--alphas", "1,ten")
    assert bad.code == 2 and "--alphas" in bad.err and not (tmp_path / "x").exists()


@pytest.mark.parametrize("inner", [["--inner", "loo"], ["--inner", "kfold", "--inner-folds", "3"]])
def test_the_inner_cross_validation_is_chosen_on_the_command_line(net2brain, planted, tmp_path, inner):  # noqa: F811
    """The r of each channel are the engine's with the same inner criterion, and the options are recorded."""
    from net2brain_fovex.brain.encoding import EncodingParameters, fit_encoding, outer_folds

    folder, _, layers = planted
    rng = np.random.default_rng(3)
    responses = layers["a"] @ rng.normal(size=(layers["a"].shape[1], 4)) + rng.normal(size=(len(layers["a"]), 4))
    np.save(tmp_path / "sub.npy", responses)
    result = net2brain("encode", "--activations", folder / "acts.h5", "--layers", "a", "--responses",
                       tmp_path / "sub.npy", "--out-dir", tmp_path / "enc", "--device", "cpu", *inner)
    assert result.code == 0, result.err
    rows = (tmp_path / "enc" / "sub_a.csv").read_text().splitlines()[1:]
    parameters = EncodingParameters(inner=inner[1], inner_folds=int(inner[3]) if len(inner) > 2 else 5)
    expected = fit_encoding(layers["a"], responses, parameters, test_sets=outer_folds(len(responses), 5, 0))
    np.testing.assert_allclose([float(row.split(",")[1]) for row in rows], expected.r, rtol=1e-6)
    options = yaml.safe_load((tmp_path / "enc" / "encode.config.yaml").read_text())
    assert options["inner"] == inner[1]


def test_partition_save_models_predict_and_plot(net2brain, inputs, planted, tmp_path):  # noqa: F811
    folder, _, layers = planted
    part = net2brain("encode", *inputs, "--out-dir", tmp_path / "p", "--partition", "a,b", "--alphas", "0.01,1,100",
                     "--plot", tmp_path / "p.pdf", "--json")
    assert part.code == 0, part.err
    assert (tmp_path / "p" / "sub-1_unique_a.nii.gz").is_file() and (tmp_path / "p.pdf").read_bytes()[:4] == b"%PDF"
    rows = {(r["roi"], r["subject"], r["measure"], r["spaces"]): r for r in json.loads(part.out)["summary"]}
    assert rows["A", "group", "unique", "a"]["mean_r2"] > rows["A", "group", "unique", "b"]["mean_r2"]
    fit = net2brain("encode", *inputs, "--out-dir", tmp_path / "m", "--layers", "a", "--save-models",
                    "--plot", tmp_path / "profile.png")
    assert fit.code == 0, fit.err
    assert (tmp_path / "profile.png").is_file() and (tmp_path / "m" / "sub-2_a_model.h5").is_file()
    predicted = net2brain("encode", "--predict", tmp_path / "m" / "sub-2_a_model.h5", "--activations",
                          folder / "acts.h5", "--out", tmp_path / "pred.npy")
    assert predicted.code == 0, predicted.err
    assert np.load(tmp_path / "pred.npy").shape == (len(layers["a"]), 2 * 27)  # the voxels of A and B
    both = net2brain("encode", "--predict", tmp_path / "m" / "sub-2_a_model.h5", "--activations", folder / "acts.h5",
                     "--out", tmp_path / "x.npy", "--out-dir", tmp_path / "x")
    assert both.code == 2 and "--predict" in both.err and "--out-dir" in both.err and not (tmp_path / "x.npy").exists()


def test_shards_of_a_slurm_array_merge_into_the_unsharded_folder(net2brain, inputs, tmp_path, monkeypatch):
    whole, out = tmp_path / "whole", tmp_path / "sharded"
    assert net2brain("encode", *inputs, "--out-dir", whole, "--plot", tmp_path / "whole.png").code == 0
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "3")  # 2 layers, 2 units: shard 0 has none
    for task in (3, 1, 2):
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", str(task))
        result = net2brain("encode", *inputs, "--out-dir", out, "--plot", tmp_path / "merged.png", "--shard", "auto",
                           "--resume", "--json")
        assert result.code == 0, result.err
        assert result.out == "" and f"join them with `net2brain merge --out {out}`" in result.err
    assert sorted(p.name for p in out.glob("*.h5")) == [f"encode.shard-00{i}-of-003.h5" for i in range(3)]
    assert not (out / "summary.csv").exists() and not (tmp_path / "merged.png").exists()
    merged = net2brain("merge", "--out", out)
    assert merged.code == 0, merged.err
    assert (out / "summary.csv").read_text() == (whole / "summary.csv").read_text()
    assert {p.name for p in whole.glob("*.nii.gz")} == {p.name for p in out.glob("*.nii.gz")}
    # the merge draws the brain picture of every R^2 map, as the unsharded run does
    assert {p.name for p in out.glob("*.png")} == {p.name for p in whole.glob("*.png")} == {
        f"sub-{s}_{layer}_r2.png" for s in (1, 2) for layer in "ab"} | {f"group_{layer}_mean_r.png" for layer in "ab"}
    assert (tmp_path / "merged.png").read_bytes()[:4] == b"\x89PNG"
    one, other = (yaml.safe_load((folder / "encode.config.yaml").read_text()) for folder in (whole, out))
    assert one.pop("shard") is None and other.pop("shard") is None
    assert one.pop("out-dir") == str(whole) and other.pop("out-dir") == str(out)
    assert one.pop("plot") != other.pop("plot") and one.pop("json") is False and other.pop("json") is True
    assert one.pop("resume") is False and other.pop("resume") is True and one == other  # shard 0's options
    again = net2brain("merge", "--out", out)
    assert again.code == 2 and "exists already" in again.err and "--overwrite" in again.err


def test_predictions_of_a_volume_model_are_a_nifti_on_its_grid(net2brain, inputs, planted, tmp_path):  # noqa: F811
    """--out X.nii.gz: a volume per new stimulus, the flat predictions at the mask voxels, NaN elsewhere;
    a NIfTI for a model of channels exits 2 writing nothing."""
    from net2brain_fovex.brain.encoding import predict

    folder, betas, layers = planted
    assert net2brain("encode", *inputs, "--out-dir", tmp_path / "m", "--layers", "a", "--save-models").code == 0
    model = tmp_path / "m" / "sub-1_a_model.h5"
    result = net2brain("encode", "--predict", model, "--activations", folder / "acts.h5", "--out", tmp_path / "p.nii.gz",
                       "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["files"]["predictions"] == str(tmp_path / "p.nii.gz")
    image, training = nib.load(tmp_path / "p.nii.gz"), nib.load(betas[0])
    assert image.shape == (*training.shape[:3], len(layers["a"])) and np.allclose(image.affine, training.affine)
    data = image.get_fdata(dtype=np.float32)
    inside = (nib.load(folder / "A.nii.gz").get_fdata() > 0) | (nib.load(folder / "B.nii.gz").get_fdata() > 0)
    np.testing.assert_array_equal(data[inside].T, predict(model, layers["a"]))
    assert np.isnan(data[~inside]).all()

    np.save(tmp_path / "meg.npy", layers["a"] @ np.random.default_rng(1).normal(size=(layers["a"].shape[1], 3)))
    assert net2brain("encode", "--activations", folder / "acts.h5", "--layers", "a", "--responses", tmp_path / "meg.npy",
                     "--out-dir", tmp_path / "meg", "--save-models", "--device", "cpu").code == 0
    before = sorted(tmp_path.iterdir())
    refused = net2brain("encode", "--predict", tmp_path / "meg" / "meg_a_model.h5", "--activations",
                        folder / "acts.h5", "--out", tmp_path / "meg.nii.gz")
    assert refused.code == 2 and "--out" in refused.err and "models channels of no volume" in refused.err
    assert len(refused.err.strip().splitlines()) == 1 and sorted(tmp_path.iterdir()) == before


def test_an_interrupted_partition_resumes_with_its_group_maps(net2brain, inputs, tmp_path):
    """--partition with several subjects writes the group's mean, t and p maps; --resume refits only the
    subject whose files are missing and gives the same folder."""
    out = tmp_path / "p"
    args = ["encode", *inputs, "--out-dir", out, "--partition", "a,b", "--alphas", "0.01,1,100"]
    assert net2brain(*args).code == 0
    group = sorted(p.name for p in out.glob("group_*.nii.gz"))
    assert group == sorted(f"group_{m}_{stat}.nii.gz" for m in ("r2_a", "r2_b", "r2_a+b", "unique_a", "unique_b",
                                                                "shared_a+b") for stat in ("mean", "t", "p"))
    maps = {name: nib.load(out / name).get_fdata() for name in group}
    summary = (out / "summary.csv").read_text()
    (out / "summary.csv").unlink()
    (out / "sub-2_shared_a+b.nii.gz").unlink()
    resumed = net2brain(*args, "--resume")
    assert resumed.code == 0, resumed.err
    assert "1 of 2 subjects are complete and kept" in resumed.err
    assert (out / "summary.csv").read_text() == summary
    for name, values in maps.items():  # the kept subject's maps read back and the other refitted: the same
        np.testing.assert_array_equal(nib.load(out / name).get_fdata(), values)
    (out / "summary.csv").unlink()
    refused = net2brain(*args, "--resume", "--folds", 4)
    assert refused.code == 2 and "--folds" in refused.err and "--overwrite" in refused.err
