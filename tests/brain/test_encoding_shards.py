"""Sharded encoding: the shards of a run, merged, write exactly what the unsharded run
writes (NIfTI betas of two subjects, arrays with time, arrays with repetitions); how the
(layer, target chunk) units are dealt; what the merge refuses."""
from __future__ import annotations

import dataclasses
import random

import h5py
import nibabel as nib
import numpy as np
import pytest
import yaml

from net2brain_fovex.brain import encoding
from net2brain_fovex.brain.encoding_files import CONFIG_NAME, _ranges, _units, encode_to_file, merge_encoding
from net2brain_fovex.errors import ConfigError, InputError, OutputError
from net2brain_fovex.io.hdf5 import ENCODE_SHARD_KIND
from net2brain_fovex.io.shards import Shard, shard_outputs
from tests.brain.test_encoding_files import GRID, N, box_mask, planted  # noqa: F401  (the fixture)

# planted voxels with little noise choose the smallest alphas: the engine says so, rightly
pytestmark = pytest.mark.filterwarnings("ignore:.*chose an alpha at an edge:RuntimeWarning")

CHUNK = 43  # 216 voxels = 5 x 43 + 1: the single last voxel joins the chunk before it


@pytest.fixture
def small_chunks(monkeypatch):
    """The engine's blocks (and so the units) of CHUNK targets, for a run and its shards alike:
    several units per layer on small data."""

    @dataclasses.dataclass(frozen=True)
    class Small(encoding.EncodingParameters):
        chunk: int = CHUNK

    monkeypatch.setattr(encoding, "EncodingParameters", Small)


def run_shards(activations, out, count, config=None, **options):
    for index in random.Random(count).sample(range(count), count):  # any order
        shard = f"{index}/{count}"
        result = encode_to_file(activations, out, shard=shard, device="cpu", config=config and {**config, "shard": shard},
                                **options)
        assert result.shard_file == out / f"encode.shard-{index:03d}-of-{count:03d}.h5" and result.summary == []
    return shard_outputs(out / "encode.h5")


def assert_same_folders(whole, merged):
    """Every map, table and summary.csv of `whole` in `merged`, the same values bit for bit."""
    names = sorted(p.name for p in whole.iterdir() if p.name != CONFIG_NAME)
    assert names == sorted(p.name for p in merged.iterdir() if ".shard-" not in p.name and p.name != CONFIG_NAME)
    for name in names:
        if name.endswith(".nii.gz"):
            a, b = nib.load(whole / name), nib.load(merged / name)
            assert np.array_equal(a.get_fdata(), b.get_fdata(), equal_nan=True), name
            assert np.array_equal(a.affine, b.affine) and a.header.binaryblock == b.header.binaryblock, name
        else:  # CSVs and PNGs (the same maps drawn the same way give the same bytes)
            assert (whole / name).read_bytes() == (merged / name).read_bytes(), name


def test_units_cover_every_target_once_and_shards_differ_by_one_unit_at_most():
    units = _units(["a", "b"], 216, CHUNK)
    assert units[:5] == [("a", 0, 43), ("a", 43, 86), ("a", 86, 129), ("a", 129, 172), ("a", 172, 216)]
    assert len(units) == 10 and units[5:] == [("b", start, stop) for _, start, stop in units[:5]]
    assert _units(["a"], 215, CHUNK)[-1] == ("a", 172, 215) and _units(["a"], 1, CHUNK) == [("a", 0, 1)]
    for count in (1, 3, 4, 10, 13):
        taken = [Shard(i, count).take(units) for i in range(count)]
        assert [u for part in taken for u in part] == units
        assert max(map(len, taken)) - min(map(len, taken)) <= 1
    assert _ranges(Shard(1, 3).take(units)) == {"a": (129, 216), "b": (0, 43)}
    assert _ranges([]) == {}


def test_merged_nifti_shards_equal_the_unsharded_run(planted, small_chunks, tmp_path):  # noqa: F811
    folder, betas, _ = planted
    background = tmp_path / "background.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(1).random(GRID).astype(np.float32), nib.load(betas[0]).affine),
             background)
    options = dict(betas=betas, rois=[folder / "A.nii.gz", folder / "B.nii.gz"], folds=4,
                   mask=box_mask(folder / "all.nii.gz", np.s_[:, :, :]), background=background)
    config = {"activations": str(folder / "acts.h5"), "folds": 4, "shard": None, "out_dir": str(tmp_path / "whole")}
    # both draw the figure and the R^2 maps' brain pictures over `background`: the merge draws the same ones
    whole = encode_to_file(folder / "acts.h5", tmp_path / "whole", device="cpu", config=config,
                           plot=tmp_path / "whole.png", **options)
    out = tmp_path / "sharded"
    parts = run_shards(folder / "acts.h5", out, 3, plot=tmp_path / "profile.png",
                       config={**config, "out_dir": str(out)}, **options)
    assert len(parts) == 3 and not list(out.glob("*.nii.gz")) and not (out / "summary.csv").exists()
    with h5py.File(parts[1], "r") as file:
        assert file.attrs["kind"] == ENCODE_SHARD_KIND and int(file.attrs["items_total"]) == 10
        assert list(file["scores"]) == ["a", "b"] and file["scores/a"].attrs["start"] == 129
        assert file["scores/b/r2"].shape == (2, 43) and file["scores/b/r"].dtype == np.float64
    assert merge_encoding(parts, out) == out
    assert_same_folders(whole.out_dir, out)
    assert (tmp_path / "profile.png").read_bytes()[:4] == b"\x89PNG"  # the figure is drawn by the merge
    one, other = (yaml.safe_load((f / CONFIG_NAME).read_text()) for f in (whole.out_dir, out))
    assert one.pop("out-dir") == str(whole.out_dir) and other.pop("out-dir") == str(out) and one == other


@pytest.mark.parametrize("layout", ["time", "repetitions"])
def test_merged_array_shards_equal_the_unsharded_run(planted, small_chunks, tmp_path, layout):  # noqa: F811
    folder, _, layers = planted
    rng = np.random.default_rng(12)
    shape = (N, 30, 4)  # 120 channels x time points, or 30 channels of 4 repetitions
    paths = []
    for subject in range(2 if layout == "time" else 1):
        array = rng.normal(size=shape)
        array[:, :10] += (layers["a"] @ rng.normal(size=(8, 10)))[:, :, None]
        paths.append(tmp_path / f"sub-{subject}.npy")
        np.save(paths[-1], array)
    options = dict(responses=paths, repetitions=layout == "repetitions", roi="MEG")
    whole = encode_to_file(folder / "acts.h5", tmp_path / "whole", device="cpu", **options)
    parts = run_shards(folder / "acts.h5", tmp_path / "sharded", 4, **options)
    merge_encoding(parts, tmp_path / "sharded")
    assert_same_folders(whole.out_dir, tmp_path / "sharded")
    header = (tmp_path / "sharded" / "sub-0_a.csv").read_text().splitlines()[0]
    assert header == ("channel,r,r2,noise_ceiling" if layout == "repetitions" else "channel,time,r,r2")


def test_more_shards_than_units_leave_some_empty(planted, tmp_path):  # noqa: F811
    folder, betas, _ = planted
    options = dict(betas=betas[:1], rois=[folder / "A.nii.gz"])  # 2 layers of 27 voxels: 2 units
    whole = encode_to_file(folder / "acts.h5", tmp_path / "whole", device="cpu", **options)
    parts = run_shards(folder / "acts.h5", tmp_path / "sharded", 5, **options)
    with h5py.File(parts[0], "r") as empty:
        assert "scores" not in empty and int(empty.attrs["items_total"]) == 2
    merge_encoding(parts, tmp_path / "merged")
    assert_same_folders(whole.out_dir, tmp_path / "merged")


@pytest.fixture
def two_runs(planted, tmp_path):  # noqa: F811
    """The 3 shards of a run, and shard 1 of a run with other folds."""
    folder, betas, _ = planted
    options = dict(betas=betas[:1], rois=[folder / "A.nii.gz"], layers="a")
    parts = run_shards(folder / "acts.h5", tmp_path / "run", 3, **options)
    other = encode_to_file(folder / "acts.h5", tmp_path / "other", shard="1/3", folds=4, device="cpu", **options)
    return folder, options, parts, other.shard_file


def test_merge_refuses_missing_duplicate_foreign_and_damaged_shards(planted, two_runs, tmp_path):  # noqa: F811
    folder, options, parts, other = two_runs
    out = tmp_path / "merged"
    fewer = encode_to_file(folder / "acts.h5", tmp_path / "two", shard="0/2", device="cpu", **options).shard_file
    damaged = tmp_path / "damaged" / parts[2].name
    damaged.parent.mkdir()
    damaged.write_bytes(parts[2].read_bytes())
    with h5py.File(damaged, "a") as file:
        file["scores/a"].attrs["stop"] = 5
    for paths, message in [
        ([parts[0], parts[2]], "shard(s) 1 of 3 are missing"),
        ([parts[0], parts[1], parts[1], parts[2]], "shard 1/3 is given twice"),
        ([parts[0], other, parts[2]], "come from different runs (job_sha256 differs)"),
        ([parts[0], fewer, parts[2]], "come from different runs (shard_count differs)"),
        ([parts[0], parts[1], damaged], "holds the scores of a[0:5]; shard 2/3 of 1 units needs a[0:27]"),
    ]:
        with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            merge_encoding(paths, out)
        assert not out.exists()
    merge_encoding(parts, out)
    with pytest.raises(OutputError, match="summary.csv exists already"):
        merge_encoding(parts, out)
    merge_encoding(parts, out, overwrite=True)


def test_a_complete_shard_is_kept_with_resume(two_runs, monkeypatch):
    folder, options, parts, _ = two_runs
    before = parts[2].read_bytes()
    with pytest.raises(OutputError, match="exists already"):
        encode_to_file(folder / "acts.h5", parts[2].parent, shard="2/3", device="cpu", **options)
    monkeypatch.setattr(encoding, "fit_encoding", lambda *a, **k: pytest.fail("a complete shard is fitted again"))
    kept = encode_to_file(folder / "acts.h5", parts[2].parent, shard="2/3", resume=True, device="cpu", **options)
    assert kept.shard_file == parts[2] and parts[2].read_bytes() == before


@pytest.mark.parametrize(("options", "message"), [
    ({"partition": "a,b"}, "a `partition` run .* is not sharded"),
    ({"save_models": True}, "`save_models` .* without `shard`"),
    ({"shard": "3/3"}, "shard 3/3 does not exist"),
    ({"shard": "1/2", "resume": True, "overwrite": True}, "give one"),
])
def test_shard_refuses_what_it_cannot_divide(planted, tmp_path, options, message):  # noqa: F811
    folder, betas, _ = planted
    with pytest.raises(ConfigError, match=message):
        encode_to_file(folder / "acts.h5", tmp_path / "enc", betas=betas[:1], device="cpu",
                       **{"shard": "0/2", **options})
    assert not (tmp_path / "enc").exists()
