"""What lies at a path that should be a regular file."""
from __future__ import annotations

import os
import socket

from net2brain_fovex.io.paths import what_is_there


def test_each_kind_of_path_is_named(tmp_path):
    (tmp_path / "file.h5").write_text("x")
    (tmp_path / "folder").mkdir()
    (tmp_path / "broken").symlink_to(tmp_path / "moved.h5")
    (tmp_path / "loop").symlink_to(tmp_path / "loop.other")
    (tmp_path / "loop.other").symlink_to(tmp_path / "loop")
    os.mkfifo(tmp_path / "pipe")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "sock"))
    try:
        assert what_is_there(tmp_path / "file.h5") == "is a file"
        assert what_is_there(tmp_path / "gone.h5") == "does not exist"
        assert what_is_there(tmp_path / "file.h5" / "inside") == "does not exist"
        assert what_is_there(tmp_path / "folder") == "is a folder"
        assert what_is_there(tmp_path / "broken") == f"is a broken link (to {tmp_path / 'moved.h5'})"
        assert what_is_there(tmp_path / "loop") == "is a loop of links"
        assert what_is_there(tmp_path / "pipe") == "is a FIFO (a named pipe)"
        assert what_is_there(tmp_path / "sock") == "is a socket"
        assert what_is_there("/dev/null") == "is a device"
    finally:
        server.close()
