"""Interrupted extraction: SIGKILL or Ctrl-C mid-run, then --resume gives the very file an
uninterrupted run gives; a killed run never leaves a file under the final name."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from tests.conftest import factory, write_images

ROWS_DONE = "_rows_done"


def start(images, out, *extra):
    args = [sys.executable, "-m", "net2brain_cli", "extract", "--model", factory("slow_cnn"), "--weights", "random",
            "--stimuli", images, "--out", out, "--image-size", 16, "--batch-size", 2, *extra]
    return subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def rows_done(partial) -> int:
    try:
        with h5py.File(partial, "r", locking=False) as file:
            return int(file[ROWS_DONE][()])
    except (OSError, KeyError):
        return 0


def wait_for_rows(process, partial, at_least: int, timeout: float = 60.0) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline:
        done = rows_done(partial)
        if done >= at_least:
            return done
        if process.poll() is not None:
            pytest.fail(f"extract ended early: {process.stderr.read()}")
        time.sleep(0.02)
    pytest.fail("extract made no progress")


def assert_same_file(a, b):
    with h5py.File(a) as x, h5py.File(b) as y:
        assert list(x["stimuli"][()]) == list(y["stimuli"][()])
        assert list(x["layers"]) == list(y["layers"])
        for name in x["layers"]:
            assert np.array_equal(x["layers"][name][()], y["layers"][name][()]), name
        assert ROWS_DONE not in y


@pytest.fixture
def stimuli(tmp_path):
    return write_images(tmp_path / "stim", 16)


@pytest.fixture
def reference(net2brain, tmp_path, stimuli):
    out = tmp_path / "reference.h5"
    result = net2brain("extract", "--model", factory("slow_cnn"), "--weights", "random", "--stimuli", stimuli,
                       "--out", out, "--image-size", 16, "--batch-size", 2)
    assert result.code == 0, result
    return out


@pytest.mark.parametrize("at_least", [2, 10])
def test_sigkill_then_resume(net2brain, tmp_path, stimuli, reference, at_least):
    out = tmp_path / "acts.h5"
    partial = tmp_path / "acts.h5.partial"
    process = start(stimuli, out)
    done = wait_for_rows(process, partial, at_least)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not out.exists() and partial.exists()
    assert done < 16
    # without --resume the partial file is not silently thrown away
    result = net2brain("extract", "--model", factory("slow_cnn"), "--weights", "random", "--stimuli", stimuli,
                       "--out", out, "--image-size", 16, "--batch-size", 2)
    assert result.code == 2 and "add --resume to continue it" in result.err
    result = net2brain("extract", "--model", factory("slow_cnn"), "--weights", "random", "--stimuli", stimuli,
                       "--out", out, "--image-size", 16, "--batch-size", 2, "--resume")
    assert result.code == 0, result
    resumed_at = int(result.err.split("at stimulus ")[1].split()[0])
    assert resumed_at > done  # it continued rather than starting over
    assert not partial.exists()
    assert_same_file(reference, out)


def test_ctrl_c_then_resume(tmp_path, stimuli, reference):
    out = tmp_path / "acts.h5"
    process = start(stimuli, out)
    wait_for_rows(process, tmp_path / "acts.h5.partial", 4)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not out.exists()
    process = start(stimuli, out, "--resume")
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert_same_file(reference, out)


def test_resume_refuses_other_options(net2brain, tmp_path, stimuli):
    out = tmp_path / "acts.h5"
    process = start(stimuli, out)
    wait_for_rows(process, tmp_path / "acts.h5.partial", 2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    result = net2brain("extract", "--model", factory("slow_cnn"), "--weights", "random", "--stimuli", stimuli,
                       "--out", out, "--image-size", 16, "--batch-size", 2, "--resume", "--dtype", "float16")
    assert result.code == 2 and "was written with other options or stimuli" in result.err
    # --overwrite starts again from scratch
    result = net2brain("extract", "--model", factory("tiny_cnn"), "--weights", "random", "--stimuli", stimuli,
                       "--out", out, "--image-size", 16, "--overwrite")
    assert result.code == 0, result


def test_resume_of_a_complete_file_does_nothing(net2brain, tmp_path, stimuli, reference):
    before = reference.stat().st_mtime_ns
    result = net2brain("extract", "--model", factory("slow_cnn"), "--weights", "random", "--stimuli", stimuli,
                       "--out", reference, "--image-size", 16, "--batch-size", 2, "--resume")
    assert result.code == 0 and "complete already" in result.err
    assert reference.stat().st_mtime_ns == before


def test_damaged_partial_file_starts_over(net2brain, tmp_path, stimuli, reference):
    out = tmp_path / "acts.h5"
    (tmp_path / "acts.h5.partial").write_bytes(b"\x89HDF\r\n\x1a\n garbage")
    result = net2brain("extract", "--model", factory("slow_cnn"), "--weights", "random", "--stimuli", stimuli,
                       "--out", out, "--image-size", 16, "--batch-size", 2, "--resume")
    assert result.code == 0, result
    assert_same_file(reference, out)


def test_partial_file_in_use_is_left_alone(net2brain, tmp_path, stimuli):
    """A second run on the same output (a duplicated array task) must not delete the first's file."""
    out = tmp_path / "acts.h5"
    process = start(stimuli, out)
    wait_for_rows(process, tmp_path / "acts.h5.partial", 2)
    try:
        result = net2brain("extract", "--model", factory("slow_cnn"), "--weights", "random", "--stimuli", stimuli,
                           "--out", out, "--image-size", 16, "--batch-size", 2, "--resume")
        assert result.code == 2 and "another run holds" in result.err and "--resume" not in result.err.split("holds")[1]
    finally:
        process.kill()
        process.wait()
    assert (tmp_path / "acts.h5.partial").exists()
