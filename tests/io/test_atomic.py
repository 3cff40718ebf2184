"""Atomic outputs: the final file appears only when the block succeeds, nothing is left
on failure, permissions follow the umask; and the checks of output files and folders
made before any work."""
from __future__ import annotations

import errno
import os
import re
import stat

import pytest

from net2brain_fovex.errors import OutputError
from net2brain_fovex.io.atomic import atomic_output, check_new_output, check_output_dir, make_output_dir

AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def files(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it afterwards."""
    saved = os.umask(0o022)
    yield os.umask
    os.umask(saved)


# ------------------------------------------------------------------ atomic_output


def test_file_appears_only_on_success(tmp_path):
    out = tmp_path / "result.txt"
    with atomic_output(out) as tmp:
        assert tmp.parent == tmp_path and tmp != out
        assert tmp.name.startswith(".result.txt.") and tmp.name.endswith(".txt")
        tmp.write_text("done")
        assert not out.exists()
    assert out.read_text() == "done"
    assert files(tmp_path) == ["result.txt"]


def test_temporary_name_keeps_suffixes(tmp_path):
    with atomic_output(tmp_path / "map.nii.gz") as tmp:
        assert tmp.name.startswith(".map.nii.gz.") and tmp.name.endswith(".nii.gz")
        tmp.write_bytes(b"x")
    with atomic_output(tmp_path / "README") as tmp:
        assert tmp.name.endswith(".tmp")
        tmp.write_bytes(b"x")
    assert files(tmp_path) == ["README", "map.nii.gz"]


def test_replaces_existing_file(tmp_path):
    out = tmp_path / "result.txt"
    out.write_text("old")
    with atomic_output(out) as tmp:
        tmp.write_text("new")
    assert out.read_text() == "new" and files(tmp_path) == ["result.txt"]


@pytest.mark.parametrize("error", [ValueError("bad input"), KeyboardInterrupt()], ids=["ValueError", "Ctrl-C"])
def test_nothing_left_on_exception(tmp_path, error):
    out = tmp_path / "result.txt"
    with pytest.raises(type(error)):
        with atomic_output(out) as tmp:
            tmp.write_text("half")
            raise error
    assert files(tmp_path) == []  # not even the hidden temporary file


def test_existing_file_untouched_on_exception(tmp_path):
    out = tmp_path / "result.txt"
    out.write_text("old")
    with pytest.raises(RuntimeError, match="crashed"):
        with atomic_output(out) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crashed")
    assert out.read_text() == "old" and files(tmp_path) == ["result.txt"]


def test_temporary_file_removed_by_the_block_is_fine(tmp_path):
    out = tmp_path / "result.txt"
    with pytest.raises(ValueError, match="gave up"):
        with atomic_output(out) as tmp:
            tmp.unlink()
            raise ValueError("gave up")
    assert files(tmp_path) == []


def test_failed_write_becomes_output_error(tmp_path):
    out = tmp_path / "result.txt"
    with pytest.raises(OutputError, match=rf"^no space left on the device while writing {re.escape(str(out))}; free "
                                          "some space$"):
        with atomic_output(out):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert files(tmp_path) == []
    with pytest.raises(OutputError, match=rf"cannot write {re.escape(str(out))}: file too large"):
        with atomic_output(out):
            raise OSError(errno.EFBIG, "File too large")
    with pytest.raises(OutputError, match="no space left on the device"):  # HDF5's way of saying it
        with atomic_output(out):
            raise RuntimeError("Can't write data (file write failed: errno = 28, error message = 'No space')")
    assert files(tmp_path) == []


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_permissions_follow_umask(tmp_path, umask, mask, mode):
    umask(mask)
    out = tmp_path / "result.txt"
    with atomic_output(out) as tmp:
        tmp.write_text("done")
    assert stat.S_IMODE(out.stat().st_mode) == mode


def test_missing_folders_created_when_writing(tmp_path):
    out = tmp_path / "a" / "b" / "result.txt"
    check_new_output(out, overwrite=False)
    assert files(tmp_path) == []  # the checks create nothing
    with atomic_output(out) as tmp:
        tmp.write_text("done")
    assert out.read_text() == "done" and files(out.parent) == ["result.txt"]


def test_folders_made_for_a_failed_write_removed(tmp_path):
    with pytest.raises(RuntimeError, match="writer crashed"):
        with atomic_output(tmp_path / "a" / "b" / "result.txt"):
            raise RuntimeError("writer crashed")
    assert files(tmp_path) == []


def test_file_in_the_folder_path_refused(tmp_path):
    (tmp_path / "plain").write_text("a file")
    with pytest.raises(OutputError, match=r"output folder .*plain is a file, not a folder; choose another output path"):
        with atomic_output(tmp_path / "plain" / "result.txt"):
            pytest.fail("the block must not run")
    with pytest.raises(OutputError, match=r"output folder .*plain/sub cannot be created: .*plain is a file, not a "
                                          "folder; choose another output path"):
        with atomic_output(tmp_path / "plain" / "sub" / "result.txt"):
            pytest.fail("the block must not run")
    assert files(tmp_path) == ["plain"]


@pytest.mark.skipif(AS_ROOT, reason="root may write anywhere")
@pytest.mark.parametrize("below, message", [
    ("result.txt", r"output folder .*locked is not writable; choose another output folder"),
    ("sub/result.txt", r"output folder .*locked/sub cannot be created: .*locked is not writable"),
])
def test_read_only_folder_refused(tmp_path, below, message):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(OutputError, match=message):
            with atomic_output(folder / below):
                pytest.fail("the block must not run")
    finally:
        folder.chmod(0o755)


# ------------------------------------------------------------------ check_new_output


def test_check_new_output(tmp_path):
    out = tmp_path / "acts.h5"
    assert check_new_output(str(out), overwrite=False) == out
    out.write_bytes(b"earlier")
    with pytest.raises(OutputError, match=rf"^output {re.escape(str(out))} exists already; add `overwrite=True` to "
                                          "replace it$"):
        check_new_output(out, overwrite=False)
    assert check_new_output(out, overwrite=True) == out
    assert out.read_bytes() == b"earlier"  # checked, not touched


def test_check_new_output_refuses_folders(tmp_path):
    (tmp_path / "acts.h5").mkdir()
    for overwrite in (False, True):
        with pytest.raises(OutputError, match=r"output .*acts.h5 is a folder; give a file name"):
            check_new_output(tmp_path / "acts.h5", overwrite=overwrite)
    assert check_new_output(tmp_path / "missing" / "acts.h5", overwrite=True) == tmp_path / "missing" / "acts.h5"
    assert files(tmp_path) == ["acts.h5"]  # the checks leave no file behind


# ------------------------------------------------------------------ output folders


def test_check_output_dir(tmp_path):
    target = tmp_path / "a" / "b"
    assert check_output_dir(str(target), "out_dir") == target
    assert not (tmp_path / "a").exists()  # checked, not made
    assert check_output_dir(tmp_path, "out_dir") == tmp_path


def test_check_output_dir_refuses_files(tmp_path):
    blocker = tmp_path / "maps"
    blocker.write_text("a file")
    for check in (check_output_dir, make_output_dir):
        with pytest.raises(OutputError, match=rf"^`out_dir` {re.escape(str(blocker))} is a file, not a folder; give a "
                                              "folder$"):
            check(blocker, "out_dir")
        with pytest.raises(OutputError, match=rf"`out` {re.escape(str(blocker / 'sub' / 'deeper'))} cannot be created: "
                                              rf"{re.escape(str(blocker))} is a file, not a folder; give another folder"):
            check(blocker / "sub" / "deeper", "out")
    assert files(tmp_path) == ["maps"]


def test_make_output_dir(tmp_path):
    target = tmp_path / "a" / "b" / "c"
    assert make_output_dir(target, "out_dir") == target
    assert target.is_dir()
    assert make_output_dir(target, "out_dir") == target  # exists already: fine


@pytest.mark.skipif(AS_ROOT, reason="root may write anywhere")
def test_check_output_dir_refuses_read_only_parent(tmp_path):
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        with pytest.raises(OutputError, match=r"cannot be created: .*locked is not writable; give another folder"):
            check_output_dir(parent / "maps", "out_dir")
    finally:
        parent.chmod(0o755)
