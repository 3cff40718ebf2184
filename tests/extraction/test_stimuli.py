"""Stimulus discovery, ordering and decoding."""
from __future__ import annotations

import os
import re

import numpy as np
import pytest
from PIL import Image

from net2brain_fovex.errors import InputError
from net2brain_fovex.extraction.stimuli import (
    discover_stimuli,
    fingerprint,
    load_image,
    natural_key,
    pixel_values,
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


def test_the_same_file_twice_in_a_list_is_refused(tmp_path):
    write_images(tmp_path / "s", 0, names=["x.png", "y.png"])
    (tmp_path / "s" / "alias.png").symlink_to(tmp_path / "s" / "x.png")
    listing = tmp_path / "list.txt"
    for second in ("./s/x.png", "s/../s/x.png", str(tmp_path / "s" / "x.png"), "s/alias.png"):
        listing.write_text(f"s/x.png\ns/y.png\n{second}\n")
        with pytest.raises(InputError, match=rf"line 3: '{re.escape(second)}' is the file of line 1 \('s/x.png'\) again"):
            discover_stimuli(listing)


def test_a_list_with_a_byte_order_mark(tmp_path):
    write_images(tmp_path / "s", 0, names=["x.png"])
    (tmp_path / "list.txt").write_bytes("\ufeffs/x.png\n".encode())
    assert [s.id for s in discover_stimuli(tmp_path / "list.txt")] == ["s/x.png"]


def test_folder_entries_that_are_no_regular_files_are_refused(tmp_path):
    folder = write_images(tmp_path / "s", 1)
    (folder / "gone.png").symlink_to(tmp_path / "nowhere.png")
    with pytest.raises(InputError, match=r"stimulus folder .*/s: gone.png is a broken link \(to .*nowhere.png\); "
                                         "remove it"):
        discover_stimuli(folder)
    (folder / "gone.png").unlink()
    os.mkfifo(folder / "pipe.png")
    with pytest.raises(InputError, match=r"pipe.png is a FIFO \(a named pipe\)"):
        discover_stimuli(folder)
    (folder / "pipe.png").unlink()
    (folder / "sub.png").mkdir()  # a folder named like an image is not a stimulus: skipped
    assert [s.id for s in discover_stimuli(folder)] == ["img_1.png"]


def test_a_file_name_that_is_not_utf_8_is_refused(tmp_path):
    folder = write_images(tmp_path / "s", 1)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(os.fsdecode(os.fsencode(folder) + b"/caf\xe9.png"), format="PNG")
    with pytest.raises(InputError, match=r"the file name b'caf\\xe9.png' is not valid UTF-8; rename the file"):
        discover_stimuli(folder)


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


GREY = np.random.default_rng(3).integers(0, 256, (6, 7), dtype=np.uint8)


@pytest.mark.parametrize(("name", "pixels"), [
    ("i16.png", GREY.astype(np.uint16) * 257),  # Pillow mode I;16: x * 65535 / 255
    ("i16.tif", GREY.astype(np.uint16) * 257),
    ("i32.tif", GREY.astype(np.int32) * 257),  # mode I within 16 bits
    ("f01.tif", GREY.astype(np.float32) / 255),  # mode F in [0, 1]
    ("f255.tif", GREY.astype(np.float32)),  # mode F in [0, 255]
    ("l.png", GREY),
])
def test_every_depth_decodes_as_the_8_bit_image(tmp_path, name, pixels):
    Image.fromarray(pixels).save(tmp_path / name)
    np.testing.assert_array_equal(np.asarray(load_image(tmp_path / name)), np.repeat(GREY[..., None], 3, axis=-1))
    np.testing.assert_allclose(pixel_values(tmp_path / name)[..., 0], GREY, atol=1e-3)


@pytest.mark.parametrize(("mode", "pixels"), [("RGBA", (10, 20, 30, 0)), ("LA", (40, 7)), ("CMYK", (0, 255, 0, 0)),
                                              ("P", 3), ("1", 1)])
def test_eight_bit_modes_as_pillow_converts_them(tmp_path, mode, pixels):
    image = Image.new(mode, (3, 2), pixels)
    image.save(tmp_path / ("x.tif" if mode == "CMYK" else "x.png"))
    saved = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    expected = np.asarray(Image.open(saved).convert("RGB"))
    np.testing.assert_array_equal(np.asarray(load_image(saved)), expected)


@pytest.mark.parametrize(("pixels", "message"), [
    (np.full((4, 4), -0.5, np.float32), r"floating-point pixels from -0.5 to -0.5, outside \[0, 1\] or \[0, 255\]"),
    (np.full((4, 4), 300.0, np.float32), r"floating-point pixels from 300 to 300"),
    (np.full((4, 4), np.nan, np.float32), r"NaN or infinite pixels"),
    (np.full((4, 4), 70_000, np.int32), r"integer pixels from 70000 to 70000, outside \[0, 65535\] \(16-bit data\)"),
])
def test_pixels_outside_their_kind_are_refused(tmp_path, pixels, message):
    Image.fromarray(pixels).save(tmp_path / "x.tif")
    with pytest.raises(InputError, match=message):
        load_image(tmp_path / "x.tif")


def test_an_animated_image_gives_its_first_frame_with_a_warning(tmp_path):
    frames = [Image.new("RGB", (4, 4), (i * 100, 0, 0)) for i in range(3)]
    frames[0].save(tmp_path / "x.gif", save_all=True, append_images=frames[1:])
    with pytest.warns(RuntimeWarning, match="holds 3 frames; the first is used"):
        image = load_image(tmp_path / "x.gif")
    np.testing.assert_array_equal(np.asarray(image), np.asarray(Image.open(tmp_path / "x.gif").convert("RGB")))


@pytest.mark.parametrize(("total", "count", "expected"), [(10, 4, [0, 3, 6, 9]), (5, 1, [0]), (3, 5, [0, 0, 1, 2, 2]), (1, 3, [0, 0, 0])])
def test_video_frame_indices(total, count, expected):
    assert video_frame_indices(total, count).tolist() == expected


def test_video_frames_count_is_checked_first(tmp_path):
    from net2brain_fovex.errors import ConfigError
    from net2brain_fovex.extraction.stimuli import load_video_frames

    with pytest.raises(ConfigError, match="`frames` must be at least 1"):
        load_video_frames(tmp_path / "clip.mp4", 0)


def test_corrupt_video(tmp_path):
    from net2brain_fovex.extraction.stimuli import load_video_frames

    (tmp_path / "v.mp4").write_bytes(b"\0" * 100)
    with pytest.raises(InputError, match="cannot decode video .*v.mp4"):
        load_video_frames(tmp_path / "v.mp4", 4)
