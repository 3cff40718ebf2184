"""Every file a run writes, checked together before any work."""
from __future__ import annotations

import os

import pytest

from net2brain_fovex.errors import OutputError
from net2brain_fovex.io.outputs import Output, check_outputs, figure_format
from net2brain_fovex.io.provenance import command_scope


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "stim"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"png")
    (tmp_path / "acts.h5").write_bytes(b"hdf5")
    return {"activations": [tmp_path / "acts.h5"], "stimuli": [folder]}


def refused(outputs, inputs, match, overwrite=True):
    with pytest.raises(OutputError, match=match):
        check_outputs(outputs, inputs, overwrite=overwrite)


def test_an_output_that_is_an_input_is_refused_whatever_overwrite_says(tmp_path, inputs):
    (tmp_path / "link.h5").symlink_to(tmp_path / "acts.h5")
    os.link(tmp_path / "acts.h5", tmp_path / "hard.h5")
    for path in (tmp_path / "acts.h5", tmp_path / "stim" / ".." / "acts.h5", tmp_path / "link.h5", tmp_path / "hard.h5"):
        refused([Output("out", path, "hdf5")], inputs, r"`out` .* is an input of this run \(`activations`\): writing it "
                                                        "would destroy the input; write the output elsewhere")
    refused([Output("plot", tmp_path / "stim" / "a.png", "png")], inputs, r"is an input of this run \(`stimuli`\)")
    refused([Output("out", tmp_path / "stim", "folder")], inputs, r"`out` .*stim is an input of this run \(`stimuli`\)")


def test_a_new_file_of_an_input_folder_s_kind_is_refused(tmp_path, inputs):
    refused([Output("plot", tmp_path / "stim" / "b.png", "png")], inputs,
            r"`plot` .*b.png would add a .png file to .*stim, a folder of inputs \(`stimuli`\): the next run would read it")
    check_outputs([Output("out", tmp_path / "stim" / "acts2.h5", "hdf5")], inputs)  # another kind: fine


def test_the_config_file_is_an_input(tmp_path, inputs):
    config = tmp_path / "acts.config.yaml"
    config.write_text("seed: 1\n")
    with command_scope("net2brain extract", {}, config_file=config):
        refused([Output("out", config, "yaml")], inputs, r"is an input of this run \(`config`\)")


def test_two_outputs_on_one_file(tmp_path, inputs):
    refused([Output("out", tmp_path / "r.csv", "csv"), Output("plot", tmp_path / "x" / ".." / "r.csv", "csv")], inputs,
            r"`plot` and `out` are the same file")


def test_existing_outputs_and_companions_need_overwrite(tmp_path, inputs):
    (tmp_path / "rsa.csv").write_text("old")
    (tmp_path / "rsa.weights.csv").write_text("old")
    outputs = [Output("out", tmp_path / "new.csv", "csv"), Output("out", tmp_path / "rsa.weights.csv", "csv")]
    refused(outputs, inputs, r"output .*rsa.weights.csv exists already; add `overwrite=True` to replace it", False)
    check_outputs(outputs, inputs, overwrite=True)
    check_outputs([Output("out", tmp_path / "rsa.csv", "csv", replaceable=True)], inputs)  # an interrupted run's


def test_outputs_that_are_no_regular_files(tmp_path, inputs):
    os.mkfifo(tmp_path / "pipe.h5")
    (tmp_path / "dir.h5").mkdir()
    (tmp_path / "broken.h5").symlink_to(tmp_path / "gone.h5")
    refused([Output("out", tmp_path / "pipe.h5", "hdf5")], inputs, r"is not a regular file \(a FIFO, socket or device\)")
    refused([Output("out", tmp_path / "dir.h5", "hdf5")], inputs, r"dir.h5 is a folder; give a file name")
    refused([Output("out", tmp_path / "broken.h5", "hdf5")], inputs, r"broken.h5 is a broken link")
    refused([Output("out_dir", tmp_path / "acts.h5", "folder")], {}, r"is a file, not a folder")


def test_a_suffix_of_another_format_is_refused_and_figures_follow_theirs(tmp_path, inputs):
    refused([Output("out", tmp_path / "acts.csv", "hdf5")], inputs, r"`out` .*acts.csv.*give a name ending in .h5")
    refused([Output("plot", tmp_path / "p.h5", "figure")], inputs, r"give a name ending in .png")
    check_outputs([Output("out", tmp_path / "notes", "hdf5")], inputs)  # no suffix that names a format
    assert [figure_format(name) for name in ("a.png", "a.pdf", "a.svg", "a.JPG", "a")] == ["png", "pdf", "svg", "jpeg", "png"]
