"""Logs on stderr: `--quiet` (and NET2BRAIN_QUIET / FOVEX_QUIET), progress as plain log
lines at a bounded rate when stderr is not a terminal, the rich bar on a terminal."""
from __future__ import annotations

import logging
import re
import sys

import pytest

from cli_common import progress
from cli_common.progress import format_duration, progress_bar
from cli_common.runner import make_app, run
from tests.conftest import factory, write_images

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
NOW = [0.0]  # the fake clock's time, set by the toy command: one second per step


def toy_app():
    """A tool with one command that logs at two levels and reports 100 steps of progress."""
    app = make_app("toolx", "A test tool.")
    log = logging.getLogger("toolx")

    @app.command("count")
    def count(steps: int = 100, unit: str = "items") -> None:
        log.info("starting to count")
        NOW[0] = 0.0
        with progress_bar("count", unit=unit or None) as update:
            update(0, steps)
            for done in range(1, steps + 1):
                NOW[0] = float(done)
                update(done, steps)
        log.warning("counted with a warning")

    @app.command("other")
    def other() -> None:
        """A second command, so that `count` is not the default."""

    return app


@pytest.fixture
def toolx(capsys):
    app = toy_app()

    def call(*args):
        capsys.readouterr()
        code = run(app, "toolx", [str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call


@pytest.fixture
def clock(monkeypatch):
    """A fake clock: the toy command's step number in seconds."""
    NOW[0] = 0.0
    monkeypatch.setattr(progress, "_clock", lambda: NOW[0])


def progress_lines(err: str, name: str) -> list[str]:
    return [line for line in err.splitlines() if re.search(rf"{name}.*: \d+/\d+ ", line)]


def test_quiet_keeps_warnings_only(toolx):
    code, _, err = toolx("count")
    assert code == 0 and "starting to count" in err and "counted with a warning" in err and progress_lines(err, "count")
    code, _, err = toolx("--quiet", "count")
    assert code == 0 and "counted with a warning" in err
    assert "starting to count" not in err and not progress_lines(err, "count")
    code, _, err = toolx("-q", "count")
    assert code == 0 and "starting to count" not in err


@pytest.mark.parametrize("value, quiet", [("1", True), ("true", True), ("0", False), ("", False)])
def test_quiet_from_the_environment(toolx, monkeypatch, value, quiet):
    monkeypatch.setenv("TOOLX_QUIET", value)
    code, _, err = toolx("count")
    assert code == 0 and "counted with a warning" in err
    assert ("starting to count" not in err) == quiet
    monkeypatch.delenv("TOOLX_QUIET")
    assert "starting to count" in toolx("count")[2]  # nothing stays quiet after the run


def test_batch_log_lines_every_tenth_of_the_work(toolx, clock):
    code, _, err = toolx("count")
    lines = progress_lines(err, "count")
    # one step per second: 10% steps come every 10 s, before the 30 s interval
    assert [int(re.search(r": (\d+)/", line)[1]) for line in lines] == list(range(10, 101, 10))
    assert lines[2].endswith("count: 30/100 items (30%), 30s elapsed, about 1m10s left")
    assert lines[-1].endswith("count: 100/100 items (100%), 1m40s elapsed")
    assert "\x1b" not in err and "\r" not in err
    assert all(re.match(rf"{STAMP} toolx: ", line) for line in err.splitlines())


def test_batch_log_interval_is_configurable(toolx, clock, monkeypatch):
    monkeypatch.setattr(progress, "LOG_FRACTION", 0)  # time only
    monkeypatch.setattr(progress, "LOG_INTERVAL", 25)
    lines = progress_lines(toolx("count", "--unit", "")[2], "count")
    assert [int(re.search(r": (\d+)/", line)[1]) for line in lines] == [25, 50, 75, 100]
    assert lines[0].endswith("count: 25/100 (25%), 25s elapsed, about 1m15s left")


def test_extract_logs_progress_lines_in_a_batch_log(net2brain, tmp_path, monkeypatch):
    images = write_images(tmp_path / "images", 20, size=20)
    args = ["extract", "--model", factory("tiny_cnn"), "--weights", "random", "--stimuli", images, "--image-size", 16,
            "--batch-size", 2, "--layers", "head"]
    result = net2brain(*args, "--out", tmp_path / "a.h5")
    assert result.code == 0, result
    lines = progress_lines(result.err, "extract")
    assert [int(re.search(r": (\d+)/20", line)[1]) for line in lines] == list(range(2, 21, 2))
    assert re.search(r"extract \S+tiny_cnn: 20/20 \(100%\), \d+s elapsed$", lines[-1])
    assert "\x1b" not in result.err and re.search(rf"^{STAMP} net2brain: wrote ", result.err, re.M)
    monkeypatch.setattr(progress, "LOG_FRACTION", 0.5)
    result = net2brain(*args, "--out", tmp_path / "b.h5")
    assert [int(re.search(r": (\d+)/20", line)[1]) for line in progress_lines(result.err, "extract")] == [10, 20]
    quiet = net2brain("--quiet", *args, "--out", tmp_path / "c.h5")
    assert quiet.code == 0 and quiet.err == "", quiet


def test_a_terminal_gets_the_rich_bar(net2brain, tmp_path, monkeypatch):
    images = write_images(tmp_path / "images", 7, size=20)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    args = ["extract", "--model", factory("tiny_cnn"), "--weights", "random", "--stimuli", images, "--image-size", 16]
    result = net2brain(*args, "--out", tmp_path / "a.h5")
    assert result.code == 0, result
    assert "7/7" in result.err and not progress_lines(result.err, "extract")  # the bar, not log lines
    assert "net2brain: wrote " in result.err and not re.search(STAMP, result.err)  # no time stamps on a terminal
    quiet = net2brain("--quiet", *args, "--out", tmp_path / "b.h5")
    assert quiet.code == 0 and "7/7" not in quiet.err and "wrote" not in quiet.err


def test_fovex_quiet_variable(fovex, tmp_path, monkeypatch):
    monkeypatch.setenv("FOVEX_QUIET", "1")
    pictures = write_images(tmp_path / "pictures", 2, size=20)
    result = fovex("explain", "--model", factory("tiny_cnn"), "--weights", "random", "--image-size", 16,
                   "--images", pictures, "--out", tmp_path / "maps.h5", "--method", "gradcam")
    assert result.code == 0 and result.err == "", result


def test_format_duration():
    assert [format_duration(s) for s in (0, 4.6, 59, 60, 72, 3599, 3600, 7380)] == \
        ["0s", "5s", "59s", "1m00s", "1m12s", "59m59s", "1h00m", "2h03m"]
