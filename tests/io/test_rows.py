"""The resumable row writer: the partial file and its layout, batches, finishing (the
rename, the counter gone, the attributes), resuming after the last batch, refusing a
foreign or leftover partial file, starting a damaged one over, and what leaving the
context keeps."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from net2brain_fovex.errors import InputError, OutputError, ToolboxError
from net2brain_fovex.io.hdf5 import ROWS_DONE, open_h5
from net2brain_fovex.io.rows import DatasetSpec, RowWriter

STIMULI = ["img_1", "img_2", "img_3", "img_4", "img_5"]
SPECS = [DatasetSpec("layers/conv1", (2, 3), "float32", {"unit": "relu"}), DatasetSpec("maps", (4,), "float16")]


def writer(path, *, signature="job-1", resume=False, stimuli=STIMULI, specs=SPECS, batch_rows=2):
    return RowWriter(path, "activations", stimuli, specs, signature, resume, batch_rows=batch_rows)


@pytest.fixture
def rows():
    rng = np.random.default_rng(0)
    return {"layers/conv1": rng.normal(size=(5, 2, 3)), "maps": rng.normal(size=(5, 4))}


def batch(rows, start, stop):
    return {name: values[start:stop] for name, values in rows.items()}


def files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_create_lays_out_the_partial_file(tmp_path):
    out = tmp_path / "acts.h5"
    w = writer(out)
    try:
        assert w.partial == tmp_path / "acts.h5.partial" and w.rows_done == 0
        assert files(tmp_path) == ["acts.h5.partial"]
        file = w.file
        assert file.attrs["kind"] == "activations" and file.attrs["signature"] == "job-1"
        assert [s.decode() for s in file["stimuli"][()]] == STIMULI
        assert file["layers/conv1"].shape == (5, 2, 3) and file["layers/conv1"].dtype == np.float32
        assert file["layers/conv1"].chunks == (2, 2, 3)  # chunks divide the batch
        assert file["layers/conv1"].attrs["unit"] == "relu"
        assert file["maps"].shape == (5, 4) and file["maps"].dtype == np.float16
        assert int(file[ROWS_DONE][()]) == 0
    finally:
        w.close(discard=False)


def test_write_batches_and_finish(tmp_path, rows):
    out = tmp_path / "acts.h5"
    with writer(out) as w:
        for start in range(0, 5, 2):
            w.write(start, batch(rows, start, start + 2))
            assert w.rows_done == min(start + 2, 5)
            assert int(w.file[ROWS_DONE][()]) == w.rows_done
        assert w.finish({"model": "tiny", "layers": json.dumps(["conv1"])}) == out
    assert files(tmp_path) == ["acts.h5"]
    with h5py.File(out, "r") as file:
        assert ROWS_DONE not in file
        assert file.attrs["model"] == "tiny" and json.loads(file.attrs["layers"]) == ["conv1"]
        assert file.attrs["kind"] == "activations" and file.attrs["signature"] == "job-1"
        assert json.loads(file.attrs["provenance"])["package"] == "net2brain-fovex"  # added when not given
        np.testing.assert_allclose(file["layers/conv1"][()], rows["layers/conv1"].astype(np.float32))
        np.testing.assert_array_equal(file["maps"][()], rows["maps"].astype(np.float16))
    with open_h5(out, "activations") as file:  # a finished file opens as a result
        assert len(file["stimuli"]) == 5


def test_finish_keeps_given_provenance(tmp_path, rows):
    with writer(tmp_path / "acts.h5") as w:
        w.write(0, rows)
        w.finish({"provenance": "given"})
    with h5py.File(tmp_path / "acts.h5", "r") as file:
        assert file.attrs["provenance"] == "given"


def test_groups_keep_creation_order(tmp_path):
    specs = [DatasetSpec(f"layers/{name}", (1,), "float32") for name in ("z", "a", "m")]
    with writer(tmp_path / "acts.h5", specs=specs) as w:
        w.write(0, {s.path: np.ones((5, 1)) for s in specs})
        w.finish({"provenance": "p"})
    with h5py.File(tmp_path / "acts.h5", "r") as file:
        assert list(file["layers"]) == ["z", "a", "m"]


def test_unfinished_partial_is_not_a_result(tmp_path, rows):
    w = writer(tmp_path / "acts.h5")
    w.write(0, batch(rows, 0, 2))
    w.close(discard=False)
    with pytest.raises(InputError, match="is the unfinished file of an interrupted run"):
        open_h5(w.partial, "activations")


def test_resume_continues_after_last_batch(tmp_path, rows):
    out = tmp_path / "acts.h5"
    with pytest.raises(KeyboardInterrupt):
        with writer(out) as w:
            w.write(0, batch(rows, 0, 2))
            w.write(2, batch(rows, 2, 4))
            raise KeyboardInterrupt  # killed between two batches
    assert files(tmp_path) == ["acts.h5.partial"]
    with writer(out, resume=True) as again:
        assert again.rows_done == 4
        np.testing.assert_allclose(again.file["layers/conv1"][:4], rows["layers/conv1"][:4].astype(np.float32))
        again.write(4, batch(rows, 4, 5))
        again.finish({"provenance": "p"})
    assert files(tmp_path) == ["acts.h5"]
    with h5py.File(out, "r") as file:
        np.testing.assert_allclose(file["layers/conv1"][()], rows["layers/conv1"].astype(np.float32))
        np.testing.assert_array_equal(file["maps"][()], rows["maps"].astype(np.float16))


def test_resume_without_partial_starts_fresh(tmp_path):
    w = writer(tmp_path / "acts.h5", resume=True)
    try:
        assert w.rows_done == 0 and w.partial.exists()
    finally:
        w.close(discard=True)
    assert files(tmp_path) == []


def test_leftover_partial_refused_without_resume(tmp_path, rows):
    w = writer(tmp_path / "acts.h5")
    w.write(0, batch(rows, 0, 2))
    w.close(discard=False)
    with pytest.raises(OutputError, match=r"an interrupted run left .*acts.h5.partial: add `resume=True` to continue "
                                          "it, or `overwrite=True` to start again"):
        writer(tmp_path / "acts.h5")
    assert files(tmp_path) == ["acts.h5.partial"]  # kept for a later resume


@pytest.mark.parametrize("change", [{"signature": "job-2"}, {"stimuli": [*STIMULI[:4], "img_9"]}],
                         ids=["signature", "stimuli"])
def test_other_job_refused(tmp_path, rows, change):
    w = writer(tmp_path / "acts.h5")
    w.write(0, batch(rows, 0, 2))
    w.close(discard=False)
    with pytest.raises(OutputError, match=r"acts.h5.partial was written with other options or stimuli; rerun with the "
                                          "same options, or add `overwrite=True` to start again"):
        writer(tmp_path / "acts.h5", resume=True, **change)
    assert files(tmp_path) == ["acts.h5.partial"]
    with writer(tmp_path / "acts.h5", resume=True) as again:  # still resumable by its own job
        assert again.rows_done == 2


def test_damaged_partial_starts_over(tmp_path, rows):
    partial = tmp_path / "acts.h5.partial"
    partial.write_bytes(b"\x89HDF\r\n\x1a\n" + b"cut off by a crash" * 10)
    with writer(tmp_path / "acts.h5", resume=True) as w:
        assert w.rows_done == 0
        w.write(0, rows)
        w.finish({"provenance": "p"})
    with h5py.File(tmp_path / "acts.h5", "r") as file:
        np.testing.assert_array_equal(file["maps"][()], rows["maps"].astype(np.float16))


@pytest.mark.parametrize("damage", ["no counter", "bad counter", "missing dataset", "other shape"])
def test_partial_unlike_its_layout_starts_over(tmp_path, rows, damage):
    w = writer(tmp_path / "acts.h5")
    w.write(0, batch(rows, 0, 4))
    w.close(discard=False)
    with h5py.File(w.partial, "r+") as file:
        if damage == "no counter":
            del file[ROWS_DONE]
        elif damage == "bad counter":
            file[ROWS_DONE][()] = 9
        elif damage == "missing dataset":
            del file["maps"]
        else:
            del file["maps"]
            file.create_dataset("maps", shape=(5, 3), dtype="float16")
    with writer(tmp_path / "acts.h5", resume=True) as again:
        assert again.rows_done == 0
        assert again.file["maps"].shape == (5, 4) and int(again.file[ROWS_DONE][()]) == 0
        again.close(discard=True)


def test_toolbox_error_removes_partial(tmp_path, rows):
    with pytest.raises(InputError, match="bad stimulus"):
        with writer(tmp_path / "acts.h5") as w:
            w.write(0, batch(rows, 0, 2))
            raise InputError("bad stimulus")
    assert files(tmp_path) == []


def test_other_exceptions_keep_partial(tmp_path, rows):
    with pytest.raises(RuntimeError, match="model crashed"):
        with writer(tmp_path / "acts.h5") as w:
            w.write(0, batch(rows, 0, 2))
            raise RuntimeError("model crashed")
    assert files(tmp_path) == ["acts.h5.partial"]
    with writer(tmp_path / "acts.h5", resume=True) as again:
        assert again.rows_done == 2
        again.close(discard=True)


def test_failed_write_keeps_partial_on_toolbox_error(tmp_path, rows):
    with pytest.raises(OutputError, match="disk full"):
        with writer(tmp_path / "acts.h5") as w:
            w.write(0, batch(rows, 0, 2))
            w.write_failed = True  # as `write` marks a full disk
            raise OutputError("disk full")
    assert files(tmp_path) == ["acts.h5.partial"]


def test_exit_after_finish_leaves_result(tmp_path, rows):
    with writer(tmp_path / "acts.h5") as w:
        w.write(0, rows)
        w.finish({"provenance": "p"})
        assert w.file is None
    assert files(tmp_path) == ["acts.h5"]


def test_no_stimuli(tmp_path):
    """A writer of no rows (an empty shard, e.g. `--shard 0/5` over 3 stimuli) gives an
    empty finished file (it once crashed in h5py: chunks of 0 rows)."""
    try:
        w = writer(tmp_path / "acts.h5", stimuli=[])
    except ToolboxError:
        return  # refusing it in words would do too
    with w:
        assert w.file["maps"].shape == (0, 4)
        w.finish({"provenance": "p"})
    with h5py.File(tmp_path / "acts.h5", "r") as file:
        assert len(file["stimuli"]) == 0 and ROWS_DONE not in file
