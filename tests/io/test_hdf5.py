"""Our HDF5 files: opening one (missing, a folder, not HDF5, of another kind, unfinished),
messages naming the core function that writes each kind, stimulus ids and JSON
attributes."""
from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from net2brain_fovex.errors import InputError
from net2brain_fovex.io.hdf5 import KINDS, PARTIAL_SUFFIX, ROWS_DONE, json_attr, open_h5, read_stimuli


def make(path, kind="activations", stimuli=("a", "b", "c"), rows_done=None):
    with h5py.File(path, "w") as file:
        if kind is not None:
            file.attrs["kind"] = kind
        if stimuli is not None:
            file.create_dataset("stimuli", data=np.array(list(stimuli), dtype=h5py.string_dtype()))
        if rows_done is not None:
            file[ROWS_DONE] = rows_done
    return path


def test_kinds_name_their_writers():
    assert KINDS == {"activations": "extract_to_file", "rdms": "rdms_to_file", "attributions": "explain_to_file",
                     "evaluation": "evaluate_to_file", "searchlight-shard": "searchlight_to_file",
                     "encode-shard": "encode_to_file"}


def test_open_finished_file(tmp_path):
    path = make(tmp_path / "acts.h5")
    with open_h5(str(path), "activations") as file:
        assert file.mode == "r" and file.attrs["kind"] == "activations"
        assert read_stimuli(file) == ["a", "b", "c"]


@pytest.mark.parametrize("kind", list(KINDS))
def test_missing_file_names_its_writer(tmp_path, kind):
    path = tmp_path / "gone.h5"
    with pytest.raises(InputError, match=rf"^file {re.escape(str(path))} does not exist; give the {kind} file written "
                                         rf"by `{KINDS[kind]}`$"):
        open_h5(path, kind)


def test_folder_refused(tmp_path):
    with pytest.raises(InputError, match=rf"^{re.escape(str(tmp_path))} is a folder; give the rdms file written by "
                                         "`rdms_to_file`$"):
        open_h5(tmp_path, "rdms")


def test_unknown_kind_names_the_toolbox(tmp_path):
    with pytest.raises(InputError, match="does not exist; give the maps file written by the toolbox$"):
        open_h5(tmp_path / "gone.h5", "maps")


@pytest.mark.parametrize("content", [b"", b"name,value\n1,2\n", b"\x89HDF\r\n\x1a\n truncated"],
                         ids=["empty", "csv", "cut-header"])
def test_not_hdf5_refused(tmp_path, content):
    path = tmp_path / "attrs.h5"
    path.write_bytes(content)
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))} is not a readable HDF5 file \(truncated or of "
                                         r"another format\); give the attributions file written by `explain_to_file`$"):
        open_h5(path, "attributions")


def test_truncated_hdf5_refused(tmp_path):
    whole = make(tmp_path / "whole.h5")
    with h5py.File(whole, "a") as file:
        file["layers/conv1"] = np.zeros((3, 500))
    cut = tmp_path / "cut.h5"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(InputError, match=r"cut.h5 is not a readable HDF5 file \(truncated or of another format\)"):
        open_h5(cut, "activations")


def test_other_kind_refused(tmp_path):
    path = make(tmp_path / "rdms.h5", kind="rdms")
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))} holds rdms, expected activations; give the file "
                                         "written by `extract_to_file`$"):
        open_h5(path, "activations")
    unmarked = make(tmp_path / "plain.h5", kind=None)
    with pytest.raises(InputError, match=r"plain.h5 holds unknown data, expected evaluation; give the file written by "
                                         "`evaluate_to_file`"):
        open_h5(unmarked, "evaluation")


def test_partial_name_refused(tmp_path):
    path = make(tmp_path / f"acts.h5{PARTIAL_SUFFIX}")
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))} is the unfinished file of an interrupted run; rerun "
                                         "its command with `resume=True` to finish it, then use the finished file$"):
        open_h5(path, "activations")


def test_unfinished_file_refused(tmp_path):
    path = make(tmp_path / "acts.h5", rows_done=2)  # renamed by hand, or copied before the run ended
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))} is the unfinished file of an interrupted run "
                                         r"\(2 of 3 rows\); rerun its command with `resume=True` to finish it"):
        open_h5(path, "activations")
    bare = make(tmp_path / "bare.h5", stimuli=None, rows_done=0)
    with pytest.raises(InputError, match=r"bare.h5 is the unfinished file of an interrupted run \(\? of \? rows\)"):
        open_h5(bare, "activations")


def test_refused_files_are_closed(tmp_path):
    path = make(tmp_path / "rdms.h5", kind="rdms")
    with pytest.raises(InputError, match="holds rdms, expected activations"):
        open_h5(path, "activations")
    with h5py.File(path, "a") as file:  # not held open by the refused call
        file.attrs["kind"] = "activations"
    with open_h5(path, "activations") as file:
        assert file.attrs["kind"] == "activations"


# ------------------------------------------------------------------ stimuli


def test_read_stimuli_decodes_ids(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as file:
        file.create_dataset("stimuli", data=np.array(["img_1", "ünï"], dtype=h5py.string_dtype()))
        assert read_stimuli(file) == ["img_1", "ünï"]
        del file["stimuli"]
        file["stimuli"] = np.array([b"x1", b"x2"], dtype="S2")  # fixed-length bytes
        assert read_stimuli(file) == ["x1", "x2"]
        del file["stimuli"]
        file["stimuli"] = np.array([3, 1, 2])
        assert read_stimuli(file) == ["3", "1", "2"]


def test_read_stimuli_refuses_duplicates(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as file:
        file.create_dataset("stimuli", data=np.array(["a", "b", "c", "b", "a"], dtype=h5py.string_dtype()))
        with pytest.raises(InputError, match=r"a.h5 lists stimulus id 'b' twice in /stimuli; ids must be unique: "
                                             "rewrite the file from stimuli with unique names"):
            read_stimuli(file)


@pytest.mark.parametrize("layout", ["missing", "group", "2d"])
def test_read_stimuli_refuses_files_without_ids(tmp_path, layout):
    with h5py.File(tmp_path / "a.h5", "w") as file:
        if layout == "group":
            file.create_group("stimuli")
        elif layout == "2d":
            file["stimuli"] = np.array([["a", "b"]], dtype=h5py.string_dtype())
        with pytest.raises(InputError, match=r"a.h5 has no /stimuli list of ids; give a file written by the toolbox"):
            read_stimuli(file)


# ------------------------------------------------------------------ JSON attributes


def test_json_attr():
    value = {"b": [1, 2], "a": {"path": Path("x/y.h5")}}
    text = json_attr(value)
    assert text == '{"a": {"path": "x/y.h5"}, "b": [1, 2]}'  # sorted keys, paths as strings
    assert json.loads(text) == {"a": {"path": "x/y.h5"}, "b": [1, 2]}
    assert json_attr(["z", 3]) == '["z", 3]'
    assert json_attr({"z": 1, "a": 2}) == json_attr({"a": 2, "z": 1})


def test_hand_written_layouts_read_without_kind(tmp_path):
    acts = make(tmp_path / "acts.h5", kind=None)
    with h5py.File(acts, "a") as file:
        file["layers/fc"] = np.arange(6.0).reshape(3, 2)
    with open_h5(acts, "activations") as file:
        np.testing.assert_array_equal(file["layers/fc"][()], [[0, 1], [2, 3], [4, 5]])
    with pytest.raises(InputError, match=r"acts.h5 holds activations, expected rdms"):
        open_h5(acts, "rdms")
    with h5py.File(acts, "a") as file:  # two documented layouts in one file: which one is meant cannot be known
        file["rdms/fc"] = np.zeros((3, 3))
    with pytest.raises(InputError, match=r"acts.h5 has the layouts of activations and rdms and no root attribute kind; "
                                         r"set the root attribute kind='rdms' \(h5py: f.attrs\['kind'\] = 'rdms'\)$"):
        open_h5(acts, "rdms")
    bare = make(tmp_path / "bare.h5", kind=None)
    with pytest.raises(InputError, match=r"bare.h5 holds unknown data, expected activations; set the root attribute "
                                         r"kind='activations' .*, or give the file written by `extract_to_file`$"):
        open_h5(bare, "activations")
