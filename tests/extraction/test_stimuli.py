"""Stimulus discovery, ordering and decoding."""
from __future__ import annotations

import numpy as np
import pytest

from net2brain_fovex.errors import InputError
from net2brain_fovex.extraction.stimuli import (
    discover_stimuli,
    fingerprint,
    load_image,
    natural_key,
    video_frame_indices,
)
from tests.conftest import write_images


def test_natural_sort():
    names = ["img_10.png", "img_2.png", "IMG_3.png", "img_1.png", "a.png", "img_1b.png"]
    assert sorted(names, key=natural_key) == ["a.png", "img_1.png", "img_1b.png", "img_2.png", "IMG_3.png", "img_10.png"]


def test_folder_skips_hidden_and_other_files(tmp_path):
    folder = write_images(tmp_path / "s", 0, names=["b.png", ".hidden.png", "a.JPG"])
    (folder / "sub").mkdir()
    (folder / "labels.csv").write_text("x")
    assert [s.id for s in discover_stimuli(folder)] == ["a.JPG", "b.png"]


def test_list_file_errors(tmp_path):
    write_images(tmp_path, 0, names=["x.png"])
    listing = tmp_path / "list.txt"
    listing.write_text("x.png\nx.png\n")
    with pytest.raises(InputError, match=r"line 2: 'x.png' is listed twice"):
        discover_stimuli(listing)
    listing.write_text("notes.txt\n")
    with pytest.raises(InputError, match="line 1: 'notes.txt' is not an image or video"):
        discover_stimuli(listing)
    listing.write_text("# nothing\n\n")
    with pytest.raises(InputError, match="lists no files"):
        discover_stimuli(listing)


def test_fingerprint_changes_with_content(tmp_path):
    folder = write_images(tmp_path / "s", 2)
    first = fingerprint(discover_stimuli(folder))
    assert first == fingerprint(discover_stimuli(folder))
    (folder / "img_1.png").write_bytes((folder / "img_2.png").read_bytes() + b"\0")
    assert fingerprint(discover_stimuli(folder)) != first


def test_images_become_rgb(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((5, 6), dtype=np.uint8)).save(tmp_path / "grey.png")
    assert load_image(tmp_path / "grey.png").mode == "RGB"
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(InputError, match="cannot decode image .*bad.jpg"):
        load_image(tmp_path / "bad.jpg")


@pytest.mark.parametrize(("total", "count", "expected"), [(10, 4, [0, 3, 6, 9]), (5, 1, [0]), (3, 5, [0, 0, 1, 2, 2]), (1, 3, [0, 0, 0])])
def test_video_frame_indices(total, count, expected):
    assert video_frame_indices(total, count).tolist() == expected


def test_corrupt_video(tmp_path):
    from net2brain_fovex.extraction.stimuli import load_video_frames

    (tmp_path / "v.mp4").write_bytes(b"\0" * 100)
    with pytest.raises(InputError, match="cannot decode video .*v.mp4"):
        load_video_frames(tmp_path / "v.mp4", 4)
