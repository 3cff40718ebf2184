"""Shards: parsing (with SLURM's variables), the blocks they take, and `merge` giving
the file an unsharded run writes, or refusing missing, duplicate and foreign shards."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from net2brain_fovex.errors import ConfigError, InputError
from net2brain_fovex.io.shards import Shard, check_shards, dataset_paths, parse_shard, shard_outputs
from tests.conftest import factory, write_images


def test_parse_shard():
    assert parse_shard(None) is None and parse_shard("") is None
    assert parse_shard("3/8") == Shard(3, 8) and parse_shard(" 0 / 1 ") == Shard(0, 1)
    for bad in ("8/8", "-1/4", "1/0", "a/b", "2"):
        with pytest.raises(ConfigError):
            parse_shard(bad)


def test_shard_auto_reads_slurm_array_variables():
    slurm = {"SLURM_ARRAY_TASK_ID": "12", "SLURM_ARRAY_TASK_MIN": "10", "SLURM_ARRAY_TASK_COUNT": "4"}
    assert parse_shard("auto", slurm) == Shard(2, 4)
    with pytest.raises(ConfigError, match="SLURM_ARRAY_TASK_COUNT"):
        parse_shard("auto", {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "0"})
    with pytest.raises(ConfigError, match="contiguous"):
        parse_shard("auto", {**slurm, "SLURM_ARRAY_TASK_ID": "15"})


@pytest.mark.parametrize("total", [0, 1, 7, 10, 101])
@pytest.mark.parametrize("count", [1, 3, 8])
def test_shards_are_disjoint_contiguous_and_cover_everything(total, count):
    items = list(range(total))
    parts = [list(Shard(i, count).take(items)) for i in range(count)]
    assert sum(parts, []) == items
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1


def test_shard_paths_and_finding_them(tmp_path):
    assert Shard(2, 8).path(tmp_path / "acts.h5") == tmp_path / "acts.shard-002-of-008.h5"
    assert Shard(0, 1000).path("maps.nii.gz").name == "maps.shard-0000-of-1000.nii.gz"
    for i in (1, 0, 2):
        Shard(i, 3).path(tmp_path / "acts.h5").touch()
    (tmp_path / "acts2.shard-000-of-003.h5").touch()
    assert [p.name for p in shard_outputs(tmp_path / "acts.h5")] == [f"acts.shard-00{i}-of-003.h5" for i in range(3)]


def extract_args(stimuli, out, *extra):
    return ["extract", "--model", factory("tiny_cnn"), "--weights", "random", "--stimuli", stimuli, "--out", out,
            "--layers", "all", "--batch-size", 2, "--image-size", 32, *extra]


def datasets(path):
    found = {}
    with h5py.File(path, "r") as file:
        for name in dataset_paths(file):  # in the file's own order, which must agree too
            found[name] = file[name][()]
        return found, dict(file.attrs)


def assert_same_datasets(first, second):
    a, _ = datasets(first)
    b, _ = datasets(second)
    assert list(a) == list(b)
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, name
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_extract_shards_merge_into_the_unsharded_file(net2brain, tmp_path):
    stimuli = write_images(tmp_path / "stimuli", 7, size=36)
    whole = tmp_path / "whole.h5"
    assert net2brain(*extract_args(stimuli, whole)).code == 0
    out = tmp_path / "acts.h5"
    for index in (2, 0, 1):  # any order
        result = net2brain(*extract_args(stimuli, out, "--shard", f"{index}/3"))
        assert result.code == 0, result
    shard_files = shard_outputs(out)
    assert len(shard_files) == 3 and not out.exists()
    with h5py.File(shard_files[1], "r") as file:
        assert file["stimuli"].shape == (2,) and file.attrs["shard_index"] == 1 and file.attrs["items_total"] == 7
    result = net2brain("merge", "--out", out)
    assert result.code == 0, result
    assert_same_datasets(whole, out)
    _, attrs = datasets(out)
    _, unsharded = datasets(whole)
    assert "shard_index" not in attrs and attrs["signature"] == unsharded["signature"]
    assert attrs["stimuli_sha256"] == unsharded["stimuli_sha256"]


def test_shard_auto_under_simulated_slurm(net2brain, tmp_path, monkeypatch):
    stimuli = write_images(tmp_path / "stimuli", 5, size=36)
    out = tmp_path / "acts.h5"
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    for task in ("1", "2"):
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", task)
        assert net2brain(*extract_args(stimuli, out, "--shard", "auto")).code == 0
    assert [p.name for p in shard_outputs(out)] == ["acts.shard-000-of-002.h5", "acts.shard-001-of-002.h5"]
    assert net2brain("merge", "--out", out).code == 0
    whole = tmp_path / "whole.h5"
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID")
    assert net2brain(*extract_args(stimuli, whole)).code == 0
    assert_same_datasets(whole, out)


def test_merge_refuses_missing_duplicate_and_foreign_shards(net2brain, tmp_path):
    stimuli = write_images(tmp_path / "stimuli", 6, size=36)
    out = tmp_path / "acts.h5"
    for index in range(3):
        assert net2brain(*extract_args(stimuli, out, "--shard", f"{index}/3")).code == 0
    parts = shard_outputs(out)
    other = tmp_path / "other.h5"
    assert net2brain(*extract_args(stimuli, other, "--shard", "1/3", "--dtype", "float16")).code == 0
    cases = {
        "missing": ([parts[0], parts[2]], "shard(s) 1 of 3 are missing"),
        "duplicate": ([parts[0], parts[1], parts[1], parts[2]], "given twice"),
        "foreign": ([parts[0], Shard(1, 3).path(other), parts[2]], "different runs"),
    }
    for name, (given, message) in cases.items():
        result = net2brain("merge", *given, "--out", out)
        assert result.code == 2 and message in result.err, (name, result)
        assert not out.exists()
    unsharded = tmp_path / "plain.h5"
    assert net2brain(*extract_args(stimuli, unsharded)).code == 0
    result = net2brain("merge", unsharded, "--out", out)
    assert result.code == 2 and "not a shard" in result.err
    result = net2brain("merge", "--out", tmp_path / "nothing.h5")
    assert result.code == 2 and "no shard files" in result.err


def test_a_shard_resumes_like_a_whole_run(net2brain, tmp_path):
    stimuli = write_images(tmp_path / "stimuli", 6, size=36)
    out = tmp_path / "acts.h5"
    assert net2brain(*extract_args(stimuli, out, "--shard", "0/2")).code == 0
    again = net2brain(*extract_args(stimuli, out, "--shard", "0/2"))
    assert again.code == 2 and "exists already" in again.err
    assert net2brain(*extract_args(stimuli, out, "--shard", "0/2", "--resume")).code == 0


def test_explain_shards_merge_into_the_unsharded_file(fovex, tmp_path):
    pictures = write_images(tmp_path / "pictures", 5, size=36)
    base = ["explain", "--model", factory("tiny_cnn"), "--weights", "random", "--images", pictures, "--image-size", 32,
            "--batch-size", 2, "--scanpath-length", 2, "--optimization-steps", 3, "--blur-filter-size", 5]
    whole, out = tmp_path / "whole.h5", tmp_path / "maps.h5"
    assert fovex(*base, "--out", whole).code == 0
    for index in range(2):
        assert fovex(*base, "--out", out, "--shard", f"{index}/2").code == 0
    result = fovex("merge", "--out", out)
    assert result.code == 0, result
    assert_same_datasets(whole, out)


def test_fovex_merge_refuses_activation_shards(fovex, tmp_path):
    path = Shard(0, 1).path(tmp_path / "acts.h5")
    with h5py.File(path, "w") as file:
        file.attrs.update({"kind": "activations", "shard_index": 0, "shard_count": 1, "items_total": 0, "job_sha256": "x"})
        file.create_dataset("stimuli", data=np.array([], dtype=h5py.string_dtype()))
    result = fovex("merge", path, "--out", tmp_path / "merged.h5")
    assert result.code == 2 and "not attributions" in result.err
    with pytest.raises(InputError, match="not attributions"):
        check_shards([path], "attributions")
