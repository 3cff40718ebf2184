"""One run at a time per output: the lock beside it."""
from __future__ import annotations

import pytest

from net2brain_fovex.errors import OutputError
from net2brain_fovex.io.atomic import make_output_folder
from net2brain_fovex.io.locks import holds_outputs, lock_output, lock_path
from tests.reliability.bad_input import held_lock


def test_a_run_holds_its_output_until_it_ends(tmp_path):
    out = tmp_path / "acts.h5"
    seen = []

    @holds_outputs
    def run():
        lock_output(out)
        lock_output(out)  # checked twice in one run: taken once
        seen.append(lock_path(out).exists())

    run()
    assert seen == [True] and not lock_path(out).exists()  # removed when the run ends


def test_a_run_that_fails_releases_its_lock(tmp_path):
    out = tmp_path / "acts.h5"

    @holds_outputs
    def run():
        lock_output(out)
        raise OutputError("the disk is full")

    with pytest.raises(OutputError):
        run()
    assert not lock_path(out).exists()
    holds_outputs(lambda: lock_output(out))()  # free again


def test_nested_entry_points_share_the_lock(tmp_path):
    out = tmp_path / "demo"

    @holds_outputs
    def inner():
        lock_output(out)

    @holds_outputs
    def outer():
        lock_output(out)
        inner()
        assert lock_path(out).exists()

    outer()
    assert not lock_path(out).exists()


def test_another_process_holding_the_output_is_refused(tmp_path):
    out = tmp_path / "rsa.csv"
    with held_lock(out):
        with pytest.raises(OutputError, match=r"another run holds .*rsa.csv: it is writing it now \(its lock "
                                              r"\.rsa\.csv\.lock is taken\); wait for that run to finish"):
            holds_outputs(lambda: lock_output(out))()
    holds_outputs(lambda: lock_output(out))()  # the holder was killed: its lock went with it


def test_a_lock_file_left_by_a_killed_run_is_taken(tmp_path):
    out = tmp_path / "acts.h5"
    lock_path(out).write_text("")  # no process holds it
    holds_outputs(lambda: lock_output(out))()
    assert not lock_path(out).exists()


def test_outside_an_entry_point_nothing_is_locked(tmp_path):
    lock_output(tmp_path / "acts.h5")
    assert not lock_path(tmp_path / "acts.h5").exists()


def test_a_missing_folder_is_locked_when_the_run_makes_it(tmp_path):
    out = tmp_path / "missing" / "acts.h5"
    holds_outputs(lambda: lock_output(out))()
    assert not (tmp_path / "missing").exists()  # locking creates no folder

    @holds_outputs
    def run():
        lock_output(out)
        make_output_folder(out)  # the run's first write
        assert lock_path(out).exists()

    run()
    assert out.parent.is_dir() and not lock_path(out).exists()


def test_a_folder_made_while_another_run_holds_the_output(tmp_path):
    out = tmp_path / "new" / "acts.h5"

    @holds_outputs
    def run():
        lock_output(out)
        out.parent.mkdir()  # the other run made the folder and took the lock meanwhile
        with held_lock(out):
            with pytest.raises(OutputError, match=r"another run holds .*acts.h5"):
                make_output_folder(out)

    run()
