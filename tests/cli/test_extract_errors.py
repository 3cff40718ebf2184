"""Bad input to `extract`: exit 2, one clear line, no output file (final or partial)."""
from __future__ import annotations

import pytest

from tests.conftest import factory, write_images


def no_outputs(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith("out")] == []


def corrupt_image(tmp_path):
    folder = write_images(tmp_path / "stim", 5)
    (folder / "img_4.png").write_bytes((folder / "img_4.png").read_bytes()[:60])  # truncated
    return folder


def empty_folder(tmp_path):
    folder = tmp_path / "stim"
    folder.mkdir()
    (folder / "readme.txt").write_text("no images here")
    return folder


CASES = {
    # name: (make stimuli folder, extra args, message)
    "missing folder": (lambda t: t / "nowhere", [], "stimulus folder or list {tmp}/nowhere does not exist"),
    "empty folder": (empty_folder, [], "stimulus folder {tmp}/stim holds no images or videos"),
    "corrupt image": (corrupt_image, [], "cannot decode image {tmp}/stim/img_4.png"),
    "unknown model": (lambda t: write_images(t / "stim", 2), ["--model", "resnet_18"], "unknown model 'resnet_18'; closest: resnet18"),
    "unknown layer": (lambda t: write_images(t / "stim", 2), ["--layers", "features.0,heads"], "unknown layer 'heads'; closest: head"),
    "bad factory": (lambda t: write_images(t / "stim", 2), ["--model", factory("nope")], "has no function 'nope'"),
    "bad batch size": (lambda t: write_images(t / "stim", 2), ["--batch-size", 0], "--batch-size must be at least 1"),
    "bad mean": (lambda t: write_images(t / "stim", 2), ["--mean", "0.5,0.5"], "--mean '0.5,0.5' must be three numbers"),
    "per-frame images": (lambda t: write_images(t / "stim", 2), ["--per-frame"], "--per-frame needs videos"),
    "single image": (lambda t: write_images(t / "stim", 1) / "img_1.png", [], "is a single stimulus; give its folder"),
    "missing list entry": (
        lambda t: (t / "list.txt").write_text("a.png\n") and t / "list.txt", [], "{tmp}/list.txt, line 1: file {tmp}/a.png does not exist",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_2(net2brain, tmp_path, case):
    make, extra, message = CASES[case]
    stimuli = make(tmp_path)
    args = ["extract", "--model", factory("tiny_cnn"), "--weights", "random", "--image-size", 16,
            "--stimuli", stimuli, "--out", tmp_path / "out.h5", *extra]
    result = net2brain(*args)
    assert result.code == 2, result
    assert message.format(tmp=tmp_path) in result.err
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err
    assert no_outputs(tmp_path)


def test_existing_output_is_kept(net2brain, tmp_path, images):
    out = tmp_path / "out.h5"
    out.write_bytes(b"precious")
    args = ["extract", "--model", factory("tiny_cnn"), "--weights", "random", "--image-size", 16, "--stimuli", images, "--out", out]
    result = net2brain(*args)
    assert result.code == 2 and f"output {out} exists already; add --overwrite" in result.err
    assert out.read_bytes() == b"precious"
    assert net2brain(*args, "--overwrite").code == 0
    assert out.read_bytes()[:4] == b"\x89HDF"


def test_a_missing_output_folder_is_created_and_one_under_a_file_refused(net2brain, tmp_path, images):
    result = net2brain("extract", "--model", factory("tiny_cnn"), "--stimuli", images, "--out", tmp_path / "no" / "out.h5")
    assert result.code == 0 and (tmp_path / "no" / "out.h5").is_file()
    (tmp_path / "file").write_text("x")
    result = net2brain("extract", "--model", factory("tiny_cnn"), "--stimuli", images, "--out", tmp_path / "file" / "out.h5")
    assert result.code == 2 and "output folder" in result.err and "is a file" in result.err


def test_unknown_flag_is_a_usage_error(net2brain):
    result = net2brain("extract", "--bogus")
    assert result.code == 2 and "No such option" in result.err


def test_unexpected_failure_is_exit_1_and_debug_shows_traceback(net2brain, tmp_path, images, monkeypatch):
    import net2brain_fovex.extraction.activations

    def broken(*args, **kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(net2brain_fovex.extraction.activations, "extract_to_file", broken)
    args = ["extract", "--model", factory("tiny_cnn"), "--stimuli", images, "--out", tmp_path / "out.h5", "--image-size", 16]
    result = net2brain(*args)
    assert result.code == 1 and "unexpected error: ZeroDivisionError: boom" in result.err and "Traceback" not in result.err
    result = net2brain("--debug", *args)
    assert result.code == 1 and "Traceback" in result.err
