"""Sharded searchlight: the shards of a run, merged, write what the unsharded run writes;
the merge refuses missing, duplicate and foreign shards."""
from __future__ import annotations

import random

import h5py
import nibabel as nib
import numpy as np
import pytest
import yaml

from net2brain_fovex.brain.comparisons import upper_triangle
from net2brain_fovex.brain.rdm import compute_rdm
from net2brain_fovex.brain.rdm_files import read_model_rdms, write_rdms
from net2brain_fovex.brain.searchlight import SphereIndex, run_searchlight, searchlight_scores
from net2brain_fovex.demo.synthetic import simulate_volumes
from net2brain_fovex.io.hdf5 import SEARCHLIGHT_SHARD_KIND as SHARD_KIND
from net2brain_fovex.io.shards import Shard, shard_outputs

N_STIMULI, SHAPE = 10, (9, 8, 6)


@pytest.fixture(scope="module")
def volumes(tmp_path_factory):
    """3 subjects, layer `a` planted at (4, 4, 2); each subject has unusable voxels of its
    own (NaN, constant) inside the mask, so the derived mask needs every subject."""
    folder = tmp_path_factory.mktemp("shards")
    rng = np.random.default_rng(11)
    rdms = {name: compute_rdm(rng.normal(size=(N_STIMULI, 30)), precision="double") for name in "ab"}
    simulated, affine = simulate_volumes(rdms, {"a": (4, 4, 2)}, shape=SHAPE, radius=4.0, subjects=3, seed=5)
    header = nib.Nifti1Header()
    header.set_xyzt_units("mm", "sec")
    paths = []
    for number, volume in enumerate(simulated):
        volume[2 + number, 3, 2, 4] = np.nan
        volume[5, 2 + number, 1] = 2.0
        image = nib.Nifti1Image(volume, affine, header=header)
        image.header["descrip"] = b"shards"
        paths.append(folder / f"sub-{number + 1}.nii.gz")
        nib.save(image, paths[-1])
    mask = np.zeros(SHAPE, dtype=np.uint8)
    mask[1:8, 1:7, :5] = 1
    nib.save(nib.Nifti1Image(mask, affine), folder / "mask.nii.gz")
    nib.save(nib.Nifti1Image(rng.random(SHAPE).astype(np.float32), affine), folder / "background.nii.gz")
    write_rdms(folder / "model.h5", [f"s{i:02d}" for i in range(N_STIMULI)], rdms, metric="correlation")
    return folder, paths


def searchlight(net2brain, volumes, out, *extra):
    folder, paths = volumes
    betas = [arg for path in paths for arg in ("--betas", path)]
    return net2brain("searchlight", *betas, "--model-rdms", folder / "model.h5", "--radius", 4, "--min-voxels", 3,
                     "--out-dir", out, *extra)


def run_shards(net2brain, volumes, out, count, *extra):
    for index in random.Random(count).sample(range(count), count):  # any order
        result = searchlight(net2brain, volumes, out, *extra, "--shard", f"{index}/{count}")
        assert result.code == 0, result
    return shard_outputs(out / "searchlight.h5")


def assert_same_outputs(whole, merged):
    maps = sorted(path.name for path in whole.glob("*.nii.gz"))
    assert maps and maps == sorted(path.name for path in merged.glob("*.nii.gz"))
    for name in maps:
        a, b = nib.load(whole / name), nib.load(merged / name)
        assert np.array_equal(a.get_fdata(), b.get_fdata(), equal_nan=True), name
        assert np.array_equal(a.affine, b.affine) and a.header.binaryblock == b.header.binaryblock, name
    assert (whole / "summary.csv").read_text() == (merged / "summary.csv").read_text()
    pictures = sorted(path.name for path in whole.glob("*.png"))
    assert pictures == sorted(path.name for path in merged.glob("*.png"))
    for name in pictures:  # the same maps drawn the same way give the same bytes
        assert (whole / name).read_bytes() == (merged / name).read_bytes(), name
    one, other = (yaml.safe_load((folder / "searchlight.config.yaml").read_text()) for folder in (whole, merged))
    assert one.pop("shard") is None and "shard" not in other
    assert one.pop("out-dir") == str(whole) and other.pop("out-dir") == str(merged) and one == other


@pytest.mark.parametrize("extra", [
    ["--fdr", 0.05],  # the mask derived from every subject
    ["--mask", "mask.nii.gz", "--precision", "double", "--compare", "pearson", "--batch-size", 7],
    ["--fdr", 0.05, "--plot", "--background", "background.nii.gz"],  # the merge draws the brain pictures
])
def test_merged_shards_equal_the_unsharded_run(net2brain, volumes, tmp_path, extra):
    extra = [volumes[0] / arg if str(arg).endswith(".nii.gz") else arg for arg in extra]
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    assert searchlight(net2brain, volumes, whole, *extra).code == 0
    parts = run_shards(net2brain, volumes, sharded, 3, *extra)
    assert [path.name for path in parts] == [f"searchlight.shard-00{i}-of-003.h5" for i in range(3)]
    assert not list(sharded.glob("*.nii.gz")) and not list(sharded.glob("*.png"))
    assert not (sharded / "summary.csv").exists()
    assert (sharded / "searchlight.shard-001-of-003.config.yaml").exists()
    attrs = []
    for path in parts:
        with h5py.File(path, "r") as file:
            attrs.append(dict(file.attrs))
            assert file["scores"].dtype == np.float64 and file["scores"].shape[:2] == (3, 2)
    assert {a["kind"] for a in attrs} == {SHARD_KIND} and len({a["job_sha256"] for a in attrs}) == 1
    assert [a["shard_index"] for a in attrs] == [0, 1, 2] and len({int(a["items_total"]) for a in attrs}) == 1
    result = net2brain("merge", "--out", sharded)
    assert result.code == 0, result
    assert_same_outputs(whole, sharded)
    assert bool(list(sharded.glob("group_a_*.png"))) == ("--plot" in extra)


def test_the_derived_mask_is_the_same_in_every_shard(net2brain, volumes, tmp_path):
    parts = run_shards(net2brain, volumes, tmp_path, 3)
    masks = []
    for path in parts:
        with h5py.File(path, "r") as file:
            masks.append(file["mask"][()].astype(bool))
            start, stop = Shard(int(file.attrs["shard_index"]), 3).bounds(int(masks[0].sum()))
            assert file["scores"].shape[2] == stop - start and file.attrs["centre_start"] == start
    assert all(np.array_equal(mask, masks[0]) for mask in masks)
    for number in range(3):  # every subject's unusable voxels are left out
        assert not masks[0][2 + number, 3, 2] and not masks[0][5, 2 + number, 1]
    assert masks[0].sum() == np.prod(SHAPE) - 6


@pytest.mark.parametrize("precision", ["single", "double"])
@pytest.mark.parametrize("layers", [1, 4, 17])
def test_a_centre_does_not_depend_on_its_batch(precision, layers):
    """What makes shards exact: a centre's value is the same in any batch, at any place."""
    rng = np.random.default_rng(layers)
    index = SphereIndex.build(rng.uniform(size=(8, 8, 6)) < 0.9, np.diag([2.0, 2.5, 3.0, 1.0]), 5.0)
    patterns = rng.normal(size=(len(index.coordinates), N_STIMULI)).astype(np.float32)
    models = upper_triangle(np.stack([compute_rdm(rng.normal(size=(N_STIMULI, 20))) for _ in range(layers)]))
    whole = searchlight_scores(patterns, index, models, batch_size=64, precision=precision)
    for start, stop, batch in [(0, 1, 1), (3, 4, 8), (5, 40, 7), (17, 300, 33), (1, len(patterns), 2)]:
        part = searchlight_scores(patterns, index, models, batch_size=batch, precision=precision,
                                  centres=np.arange(start, stop))
        assert np.array_equal(part, whole[:, start:stop], equal_nan=True), (start, stop, batch)


@pytest.mark.parametrize("with_mask", [False, True])
def test_core_shards_side_by_side_are_the_unsharded_values(volumes, with_mask):
    folder, paths = volumes
    model = read_model_rdms(folder / "model.h5").rdms
    options = {"mask": folder / "mask.nii.gz" if with_mask else None, "min_voxels": 3, "batch_size": 5,
               "precision": "double", "metric": "euclidean"}
    whole = run_searchlight(paths, model, 4.0, **options)
    parts = [run_searchlight(paths, model, 4.0, shard=Shard(i, 4), **options) for i in range(4)]
    assert [part.centre_range for part in parts] == [Shard(i, 4).bounds(int(whole.mask.sum())) for i in range(4)]
    assert all(np.array_equal(part.mask, whole.mask) for part in parts)
    assert np.array_equal(np.concatenate([part.values for part in parts], axis=2), whole.values, equal_nan=True)
    assert np.isnan(whole.values).any() == with_mask and np.isfinite(whole.values).sum() > 1000


def test_shard_auto_under_slurm(net2brain, volumes, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "4")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    for task in (5, 4):
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", str(task))
        result = searchlight(net2brain, volumes, tmp_path, "--layers", "a", "--shard", "auto")
        assert result.code == 0, result
    parts = shard_outputs(tmp_path / "searchlight.h5")
    assert [path.name for path in parts] == ["searchlight.shard-000-of-002.h5", "searchlight.shard-001-of-002.h5"]
    assert net2brain("merge", *parts, "--out", tmp_path / "maps").code == 0
    assert (tmp_path / "maps" / "group_a_t.nii.gz").exists() and (tmp_path / "maps" / "summary.csv").exists()


def test_merge_refuses_missing_duplicate_and_foreign_shards(net2brain, volumes, tmp_path):
    parts = run_shards(net2brain, volumes, tmp_path / "run", 3, "--layers", "a")
    other = run_shards(net2brain, volumes, tmp_path / "other", 3, "--layers", "a", "--radius", 5)
    out = tmp_path / "merged"
    for paths, message in [
        ([parts[0], parts[2]], "shard(s) 1 of 3 are missing"),
        ([parts[0], parts[1], parts[1], parts[2]], "shard 1/3 is given twice"),
        ([parts[0], other[1], parts[2]], "come from different runs (job_sha256 differs)"),
    ]:
        result = net2brain("merge", *paths, "--out", out)
        assert result.code == 2 and message in result.err and "Traceback" not in result.err, result
        assert not out.exists()
    assert net2brain("merge", *parts, "--out", out).code == 0
    result = net2brain("merge", *parts, "--out", out)
    assert result.code == 2 and "exists already; add --overwrite" in result.err
    assert net2brain("merge", *parts, "--out", out, "--overwrite").code == 0


def test_shard_option_errors(net2brain, volumes, tmp_path):
    result = searchlight(net2brain, volumes, tmp_path, "--shard", "3/3")
    assert result.code == 2 and "shard 3/3 does not exist" in result.err
    assert searchlight(net2brain, volumes, tmp_path, "--layers", "b", "--shard", "1/2").code == 0
    result = searchlight(net2brain, volumes, tmp_path, "--layers", "b", "--shard", "1/2")
    assert result.code == 2 and "searchlight.shard-001-of-002.h5 exists already; add --overwrite" in result.err
    assert searchlight(net2brain, volumes, tmp_path, "--layers", "b", "--shard", "1/2", "--overwrite").code == 0
    result = searchlight(net2brain, volumes, tmp_path / "fdr", "--fdr", 2, "--shard", "0/2")
    assert result.code == 2 and "--fdr must be between 0 and 1, got 2" in result.err
    assert not (tmp_path / "fdr").exists() or not any((tmp_path / "fdr").iterdir())
    folder, _ = volumes
    result = net2brain("searchlight", "--searchlight-rdms", tmp_path / "sl.npz", "--model-rdms", folder / "model.h5",
                       "--out-dir", tmp_path / "pre", "--shard", "0/2")
    assert result.code == 2 and "a --searchlight-rdms run is not sharded" in result.err


def test_the_merge_refuses_shards_whose_background_is_gone(net2brain, volumes, tmp_path):
    background = tmp_path / "bg.nii.gz"
    background.write_bytes((volumes[0] / "background.nii.gz").read_bytes())
    parts = run_shards(net2brain, volumes, tmp_path / "sharded", 2, "--plot", "--background", background)
    background.unlink()
    result = net2brain("merge", "--out", tmp_path / "sharded")
    assert result.code == 2 and len(result.err.strip().splitlines()) == 1, result
    assert str(parts[0]) in result.err and str(background) in result.err and "put that image back" in result.err
    assert sorted(path.name for path in (tmp_path / "sharded").iterdir()) == sorted(
        [path.name for path in parts] + [path.name.replace(".h5", ".config.yaml") for path in parts])


@pytest.mark.parametrize("with_mask", [False, True])
def test_no_whole_volume_is_held_while_the_spheres_are_scored(volumes, monkeypatch, with_mask):
    """Each subject's 4D volume (0.33 GB for 92 stimuli on a 2 mm grid) is let go once its
    mask-voxel patterns are taken; the check pass over the volumes held the last one."""
    import gc
    import weakref

    from net2brain_fovex.brain import nifti
    from net2brain_fovex.brain import searchlight as module

    folder, paths = volumes
    read, load = [], nifti.load_volume

    def tracked_load(*args, **kwargs):
        volume = load(*args, **kwargs)
        read.append(weakref.ref(volume.data))
        return volume

    held = []

    def checked_scores(*args, **kwargs):
        gc.collect()
        held.append(sum(ref() is not None for ref in read))
        return scores(*args, **kwargs)

    scores = module.searchlight_scores
    monkeypatch.setattr(nifti, "load_volume", tracked_load)
    monkeypatch.setattr(module, "searchlight_scores", checked_scores)
    mask = folder / "mask.nii.gz" if with_mask else None
    run_searchlight(paths, read_model_rdms(folder / "model.h5").rdms, 4.0, mask=mask, min_voxels=3)
    assert len(read) == 2 * len(paths) - 1 and held == [0] * len(paths)  # the first subject is read once
