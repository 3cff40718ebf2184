"""Provenance in every output (versions, command line, config, inputs hash, seed, device)
and `net2brain info` / `fovex info` on each kind of file."""
from __future__ import annotations

import json
import os
import platform

import h5py
import nibabel as nib
import numpy as np
import pytest
import torch
import torchvision
from scipy.spatial.distance import pdist, squareform

import net2brain_fovex
from net2brain_fovex.brain.rdm_files import write_rdms
from net2brain_fovex.extraction.stimuli import discover_stimuli, fingerprint
from net2brain_fovex.io.config import config_path_for, load_config, read_resolved_config, write_resolved_config
from net2brain_fovex.io.provenance import build_provenance, command_scope, files_sha256, input_entries, invocation
from net2brain_fovex.io.shards import Shard
from tests.conftest import factory, write_images

RNG = np.random.default_rng(11)
MODEL = ["--model", factory("tiny_cnn"), "--weights", "random", "--image-size", 16]


def h5_provenance(path, name="provenance"):
    with h5py.File(path, "r") as file:
        return json.loads(file.attrs[name])


def sidecar_provenance(path):
    return read_resolved_config(path)[1]


def assert_environment(record):
    assert record["package"] == "net2brain-fovex" and record["package_version"] == net2brain_fovex.__version__
    assert record["torch"] == torch.__version__ and record["torchvision"] == torchvision.__version__
    assert record["numpy"] == np.__version__ and record["python"] == platform.python_version()
    assert record["platform"] and record["hostname"] and record["created"].endswith("+00:00")


def touch_later(path):
    """Change a file's modification time (as an edit would)."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))


@pytest.fixture
def stimuli(tmp_path):
    return write_images(tmp_path / "my stimuli", 5, size=20)


def extract(net2brain, stimuli, out, *extra):
    result = net2brain("extract", *MODEL, "--stimuli", stimuli, "--out", out, "--layers", "features.1,head",
                       "--batch-size", 2, *extra)
    assert result.code == 0, result
    return out


# ------------------------------------------------------------------ each command


def test_extract_records_versions_command_line_config_inputs_seed_and_device(net2brain, tmp_path, stimuli):
    out = extract(net2brain, stimuli, tmp_path / "acts one.h5", "--seed", 3, "--device", "cpu")
    record = h5_provenance(out)
    assert_environment(record)
    assert record["command"] == "net2brain extract"
    line = record["command_line"]
    assert line.startswith("net2brain extract --model ") and "--seed 3 --device cpu" in line
    assert f"'{out}'" in line and f"'{stimuli}'" in line  # paths with spaces are shell-quoted
    assert record["config"]["seed"] == 3 and record["config"]["layers"] == "features.1,head"
    assert record["config"]["out"] == str(out)
    assert record["seed"] == 3 and record["device"] == "cpu"
    with h5py.File(out, "r") as file:
        assert record["inputs_sha256"] == file.attrs["stimuli_sha256"] == fingerprint(discover_stimuli(stimuli))
    assert record["inputs_count"] == 5
    # the sidecar holds the same record as comments; as a config it holds only the options
    side = sidecar_provenance(config_path_for(out))
    assert {k: v for k, v in side.items() if k not in ("created", "config")} == \
        {k: v for k, v in record.items() if k not in ("created", "config")}
    options = load_config(config_path_for(out))
    assert "provenance" not in options and "command_line" not in options and options["seed"] == 3
    # an edited input changes the hash
    touch_later(stimuli / "img_2.png")
    again = extract(net2brain, stimuli, tmp_path / "again.h5", "--seed", 3, "--device", "cpu")
    assert h5_provenance(again)["inputs_sha256"] != record["inputs_sha256"]


def test_the_sidecar_still_repeats_the_run(net2brain, tmp_path, stimuli):
    first = extract(net2brain, stimuli, tmp_path / "first.h5")
    second = tmp_path / "second.h5"
    result = net2brain("extract", "--config", config_path_for(first), "--out", second)
    assert result.code == 0, result
    record = h5_provenance(second)
    assert "--config" in record["command_line"] and record["config"]["out"] == str(second)
    with h5py.File(first) as a, h5py.File(second) as b:
        np.testing.assert_array_equal(a["layers/head"][()], b["layers/head"][()])


def test_rdm_of_activations_and_of_brain_data(net2brain, tmp_path, stimuli):
    acts = extract(net2brain, stimuli, tmp_path / "acts.h5")
    out = tmp_path / "rdms.h5"
    assert net2brain("rdm", "--activations", acts, "--out", out, "--metric", "euclidean").code == 0
    record = h5_provenance(out)
    assert_environment(record)
    assert record["command"] == "net2brain rdm" and "--metric euclidean" in record["command_line"]
    assert record["config"]["metric"] == "euclidean" and record["config"]["activations"] == str(acts)
    assert record["inputs_count"] == 1 and record["inputs_sha256"] == files_sha256([("acts.h5", acts)])
    assert record["seed"] is None and record["device"] == "cpu"
    touch_later(acts)
    later = tmp_path / "later.h5"
    assert net2brain("rdm", "--activations", acts, "--out", later, "--metric", "euclidean").code == 0
    assert h5_provenance(later)["inputs_sha256"] != record["inputs_sha256"]
    # brain RDMs from responses: every subject's file is an input
    files = []
    for s in range(2):
        np.save(tmp_path / f"sub-{s}.npy", RNG.normal(size=(5, 4)))
        files += ["--responses", tmp_path / f"sub-{s}.npy"]
    brain = tmp_path / "brain.h5"
    assert net2brain("rdm", *files, "--roi", "MEG", "--out", brain).code == 0
    record = h5_provenance(brain)
    assert record["inputs_count"] == 2 and "--roi MEG" in record["command_line"]


def rsa_inputs(tmp_path, n=8):
    ids = [f"s{i}" for i in range(n)]
    model = write_rdms(tmp_path / "model.h5", ids, {"a": squareform(pdist(RNG.normal(size=(n, 3))))}, metric="correlation")
    brain = write_rdms(tmp_path / "brain.h5", ids, {"IT": np.stack([squareform(pdist(RNG.normal(size=(n, 3))))
                                                                    for _ in range(3)])}, metric="correlation")
    return model, brain


def test_rsa_csv_provenance_in_its_sidecar(net2brain, tmp_path):
    model, brain = rsa_inputs(tmp_path)
    out = tmp_path / "results.csv"
    result = net2brain("rsa", "--model-rdms", model, "--brain-rdms", brain, "--out", out, "--compare", "pearson",
                       "--seed", 5)
    assert result.code == 0, result
    options, record = read_resolved_config(config_path_for(out))
    assert_environment(record)
    assert options["compare"] == "pearson" and record["config"] == options
    assert record["command"] == "net2brain rsa" and "--compare pearson --seed 5" in record["command_line"]
    assert record["seed"] == 5 and record["device"] is None
    assert record["inputs_count"] == 2
    assert record["inputs_sha256"] == files_sha256([("model.h5", model), ("brain.h5", brain)])
    # the record written outside a command is the caller's: no command line
    with h5py.File(model, "r") as file:
        assert json.loads(file.attrs["provenance"])["command_line"] is None


def explain(fovex, pictures, out, *extra):
    result = fovex("explain", *MODEL, "--images", pictures, "--out", out, "--method", "gradcam", "--batch-size", 2, *extra)
    assert result.code == 0, result
    return out


def test_explain_and_evaluate(fovex, tmp_path):
    pictures = write_images(tmp_path / "pictures", 4, size=20)
    maps = explain(fovex, pictures, tmp_path / "maps.h5", "--seed", 7, "--device", "cpu")
    record = h5_provenance(maps)
    assert_environment(record)
    assert record["command"] == "fovex explain" and "--method gradcam" in record["command_line"]
    assert record["seed"] == 7 and record["device"] == "cpu" and record["config"]["method"] == "gradcam"
    assert record["inputs_count"] == 4 and record["inputs_sha256"] == fingerprint(discover_stimuli(pictures))
    assert sidecar_provenance(config_path_for(maps))["inputs_sha256"] == record["inputs_sha256"]

    out = tmp_path / "metrics.csv"
    result = fovex("evaluate", *MODEL, "--images", pictures, "--maps", maps, "--out", out, "--metrics",
                   "avg_drop,deletion", "--step", 64, "--seed", 7, "--device", "cpu")
    assert result.code == 0, result
    curves = h5_provenance(tmp_path / "metrics.curves.h5")
    assert_environment(curves)
    assert curves["command"] == "fovex evaluate" and "--metrics avg_drop,deletion" in curves["command_line"]
    assert curves["seed"] == 7 and curves["device"] == "cpu" and curves["inputs_count"] == 5  # 4 images + the maps
    side = sidecar_provenance(config_path_for(out))
    assert side["inputs_sha256"] == curves["inputs_sha256"] and side["command_line"] == curves["command_line"]
    touch_later(maps)
    again = tmp_path / "again.csv"
    assert fovex("evaluate", *MODEL, "--images", pictures, "--maps", maps, "--out", again, "--metrics", "avg_drop").code == 0
    assert h5_provenance(tmp_path / "again.curves.h5")["inputs_sha256"] != curves["inputs_sha256"]


def test_merge_keeps_the_shards_provenance_and_adds_its_own(net2brain, tmp_path, stimuli):
    out = tmp_path / "acts.h5"
    for index in range(2):
        extract(net2brain, stimuli, out, "--shard", f"{index}/2")
    result = net2brain("merge", "--out", out)
    assert result.code == 0, result
    record = h5_provenance(out)
    assert_environment(record)
    assert record["command"] == "net2brain merge" and record["command_line"] == f"net2brain merge --out {out}"
    shards = [Shard(i, 2).path(out) for i in range(2)]
    assert record["inputs_count"] == 2
    assert record["inputs_sha256"] == files_sha256([(p.name, p) for p in shards])
    assert record["seed"] is None and record["device"] is None
    kept = h5_provenance(out, "shard_provenance")
    assert [f"--shard {i}/2" in r["command_line"] for i, r in enumerate(kept)] == [True, True]
    assert all(r["command"] == "net2brain extract" and r["inputs_count"] == 5 for r in kept)
    assert sidecar_provenance(config_path_for(out))["command_line"] == record["command_line"]


def test_core_calls_outside_a_command_record_what_they_are_given(tmp_path):
    record = build_provenance(config={"out": tmp_path / "x.h5"}, seed=1)
    assert record["command_line"] is None and record["command"] is None
    assert record["config"] == {"out": str(tmp_path / "x.h5")} and record["seed"] == 1 and record["inputs_sha256"] is None
    folder = write_images(tmp_path / "f", 2)
    (folder / ".hidden").write_text("x")
    assert [name for name, _ in input_entries([folder])] == ["f/img_1.png", "f/img_2.png"]
    with invocation("net2brain rsa --seed 2"), command_scope("net2brain rsa", {"seed": 2, "device": "cpu"}, [folder]):
        first = build_provenance()
        second = build_provenance(device="cuda")
        assert first["inputs_count"] == 2 and first["seed"] == 2 and first["command_line"] == "net2brain rsa --seed 2"
        assert {k: v for k, v in second.items() if k not in ("created", "device")} == \
            {k: v for k, v in first.items() if k not in ("created", "device")}
        assert second["device"] == "cuda"
    assert build_provenance()["command_line"] is None  # the scope ended


# ------------------------------------------------------------------ info


@pytest.mark.parametrize("tool", ["net2brain", "fovex"])
def test_info_on_activations_text_and_json(request, tool, net2brain, tmp_path, stimuli):
    out = extract(net2brain, stimuli, tmp_path / "acts.h5", "--seed", 4)
    run = request.getfixturevalue(tool)
    text = run("info", out)
    assert text.code == 0, text
    assert text.out.startswith(f"{out}: HDF5, activations")
    for expected in ("provenance:", f"torch: {torch.__version__}", "command_line: net2brain extract", "attributes:",
                     "datasets:", "/layers/features.1", "(5, 5)", "float32", "/stimuli", "string", "seed: 4"):
        assert expected in text.out, expected
    described = run("info", out, "--json")
    assert described.code == 0, described
    data = json.loads(described.out)
    assert data["format"] == "hdf5" and data["kind"] == "activations"
    assert data["provenance"] == h5_provenance(out)
    assert data["attributes"]["model"].endswith("tiny_cnn") and "provenance" not in data["attributes"]
    assert data["attributes"]["preprocessing"]["crop"] == 16  # JSON attributes are decoded
    assert {"path": "/layers/head", "shape": [5, 5], "dtype": "float32"} in data["datasets"]
    assert data["stimuli"]["count"] == 5


def test_info_on_rdms_attributions_curves_and_merged_files(net2brain, fovex, tmp_path, stimuli):
    acts = extract(net2brain, stimuli, tmp_path / "acts.h5")
    rdms = tmp_path / "rdms.h5"
    assert net2brain("rdm", "--activations", acts, "--out", rdms).code == 0
    pictures = write_images(tmp_path / "pictures", 3, size=20)
    maps = explain(fovex, pictures, tmp_path / "maps.h5")
    assert fovex("evaluate", *MODEL, "--images", pictures, "--maps", maps, "--out", tmp_path / "m.csv",
                 "--metrics", "deletion", "--step", 64).code == 0
    sharded = tmp_path / "sharded.h5"
    for index in range(2):
        explain(fovex, pictures, sharded, "--shard", f"{index}/2")
    assert fovex("merge", "--out", sharded).code == 0
    cases = {rdms: ("rdms", "/rdms/head"), maps: ("attributions", "/maps"),
             tmp_path / "m.curves.h5": ("evaluation", "/gradcam/deletion_curve"), sharded: ("attributions", "/scores")}
    for path, (kind, dataset) in cases.items():
        result = net2brain("info", path, "--json")
        assert result.code == 0, result
        data = json.loads(result.out)
        assert data["kind"] == kind and dataset in [d["path"] for d in data["datasets"]], path
        assert data["provenance"]["package_version"] == net2brain_fovex.__version__
        text = fovex("info", path)
        assert text.code == 0 and f"HDF5, {kind}" in text.out and dataset in text.out
    merged = json.loads(net2brain("info", sharded, "--json").out)
    assert merged["provenance"]["command"] == "fovex merge" and len(merged["shard_provenance"]) == 2
    assert "shard provenance:" in fovex("info", sharded).out


def test_info_on_a_partial_file(net2brain, tmp_path, stimuli):
    out = extract(net2brain, stimuli, tmp_path / "acts.h5")
    partial = tmp_path / "acts.h5.partial"
    with h5py.File(out, "r") as source, h5py.File(partial, "w") as file:
        file.attrs["kind"] = "activations"
        source.copy("stimuli", file)
        file["_rows_done"] = 2
    data = json.loads(net2brain("info", partial, "--json").out)
    assert data["incomplete"] == {"rows_done": 2, "rows": 5} and data["provenance"] is None


def test_info_on_a_nifti_map_with_the_searchlight_sidecar(net2brain, tmp_path):
    volume = np.full((4, 5, 3), np.nan, dtype=np.float32)
    volume[1:3, 1:4, 1] = [[0.1, 0.2, -0.3], [0.4, 0.5, 0.25]]
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    affine[:3, 3] = [-10, -20, 5]
    path = tmp_path / "sub-01_head.nii.gz"
    nib.save(nib.Nifti1Image(volume, affine), path)
    with invocation("net2brain searchlight --radius 4"), command_scope("net2brain searchlight", {"radius": 4.0}):
        write_resolved_config(tmp_path / "searchlight.config.yaml", "net2brain searchlight", {"radius": 4.0})
    result = net2brain("info", path, "--json")
    assert result.code == 0, result
    data = json.loads(result.out)
    assert data["format"] == "nifti" and data["shape"] == [4, 5, 3] and data["voxel_size"] == [2.0, 2.0, 3.0]
    assert data["affine"] == affine.tolist() and data["dtype"] == "float32"
    np.testing.assert_allclose(data["value_range"], [-0.3, 0.5], rtol=1e-6)
    assert data["finite_voxels"] == 6 and data["non_finite_voxels"] == 54
    assert data["sidecar"] == str(tmp_path / "searchlight.config.yaml")
    assert data["provenance"]["command_line"] == "net2brain searchlight --radius 4"
    assert data["provenance"]["config"] == {"radius": 4.0}
    text = net2brain("info", path).out
    assert "NIfTI" in text and "voxel size: [2, 2, 3]" in text and "value range: [-0.3, 0.5]" in text
    assert "command_line: net2brain searchlight --radius 4" in text
    # <stem>.config.yaml beside a map wins over the folder's searchlight record
    with command_scope("net2brain other", {"x": 1}):
        write_resolved_config(tmp_path / "sub-01_head.config.yaml", "net2brain other", {"x": 1})
    assert json.loads(net2brain("info", path, "--json").out)["provenance"]["command"] == "net2brain other"


def test_info_on_csv_files_and_sidecars(net2brain, fovex, tmp_path):
    model, brain = rsa_inputs(tmp_path)
    out = tmp_path / "results.csv"
    assert net2brain("rsa", "--model-rdms", model, "--brain-rdms", brain, "--out", out).code == 0
    result = fovex("info", out, "--json")
    assert result.code == 0, result
    data = json.loads(result.out)
    assert data["format"] == "csv" and data["columns"][:3] == ["roi", "model", "layer"] and data["rows"] == 1
    assert data["sidecar"] == str(config_path_for(out)) and data["provenance"]["command"] == "net2brain rsa"
    text = net2brain("info", out).out
    assert "columns: [roi, model, layer" in text and "rows: 1" in text and "command: net2brain rsa" in text
    sidecar = net2brain("info", config_path_for(out), "--json")
    data = json.loads(sidecar.out)
    assert data["format"] == "yaml" and data["options"]["compare"] == "spearman"
    assert data["provenance"]["command"] == "net2brain rsa" and "config" not in data["provenance"]
    assert "options:" in net2brain("info", config_path_for(out)).out
    # a summary CSV finds the sidecar of the run's main output
    summary = tmp_path / "results.summary.csv"
    summary.write_text("a,b\n1,2\n")
    assert json.loads(net2brain("info", summary, "--json").out)["sidecar"] == str(config_path_for(out))


@pytest.mark.parametrize("name, content, message", [
    ("missing.h5", None, "does not exist"),
    ("broken.h5", b"this is not HDF5 at all", "not a readable HDF5 file"),
    ("broken.nii.gz", b"\x1f\x8b garbage", "not a readable NIfTI file"),
    ("notes.txt", b"hello", "unknown format"),
    ("bad.yaml", b"a: [1, 2\n", "not valid YAML"),
    ("empty.csv", b"", "is empty"),
])
def test_info_refuses_missing_corrupt_and_unknown_files(net2brain, fovex, tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    for run in (net2brain, fovex):
        for extra in ((), ("--json",)):
            result = run("info", path, *extra)
            assert result.code == 2 and message in result.err and result.out == "", result
            assert len(result.err.strip().splitlines()) == 1
