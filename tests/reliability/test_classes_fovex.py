"""The input classes of the reliability issue, through every `fovex` command they apply to.

The tables and their contract are those of tests/reliability/test_classes_net2brain.py:
one table per class (A, data is never lost; B, no exit 1 on input a user can give; C, no
silent wrong numbers; D, messages that say what happened), a row per (case, command), the
command's workspace from its bad-input table (tests/reliability/test_bad_input_fovex.py).
"""
from __future__ import annotations

import csv
import os
import shutil

import h5py
import numpy as np
import pytest
from PIL import Image

from tests.reliability.bad_input import (
    FAILING_FACTORIES,
    Accepted,
    Held,
    command_table,
    config,
    fifo,
    hard_link,
    held_lock,
    held_open,
    link,
    link_loop,
    the_config_is_the_sidecar,
)
from tests.reliability.test_bad_input_fovex import (  # noqa: F401  (the workspaces are fixtures)
    BOXES,
    FOVEX_OPTIONS,
    MODEL,
    SHARD_0,
    SHARD_1,
    Work,
    check_refused,
    demo_work,
    evaluate_work,
    explain_work,
    explained,
    info_work,
    merge_args,
    merge_work,
    shards,
    write_rows,
)


def run_case(request, fovex, command: str, brk, expected) -> None:
    work = request.getfixturevalue(f"{command}_work")
    brk(work)
    check_refused(fovex, work, expected)


def gradcam(w: Work) -> None:
    """Grad-CAM instead of FovEx: deterministic maps, quick."""
    w.drop(*FOVEX_OPTIONS)
    w.set("--method", "gradcam")


def model_file(w: Work, source: str) -> None:
    w.set("--model", f"{w.file('nets.py', source)}:build")


# ================================================================== A. data is never lost

A = [
    # case id                          command     how the workspace is broken                                         expected
    ("out-is-a-link-to-an-image",      "explain",  lambda w: (link(w.out / "maps.h5", w.images / "img_1.png"), w.add("--overwrite")),
     ["--out {out}/maps.h5 is an input of this run (--images)", "!--overwrite to"]),
    ("out-is-a-hard-link-of-the-factory", "explain", lambda w: (hard_link(w.out / "maps.h5", w.file("nets.py", "")), w.set("--model", f"{w.inputs}/nets.py:build"), w.add("--overwrite")),
     ["--out {out}/maps.h5 is an input of this run (--model)"]),
    ("overlays-over-the-images",       "explain",  lambda w: (w.set("--png-dir", w.images), w.add("--overwrite")),
     ["--png-dir {inputs}/images/img_1.png is an input of this run (--images)", "!--overwrite to"]),
    ("sidecar-is-the-config",          "explain",  lambda w: (the_config_is_the_sidecar(w, "maps.config.yaml"), w.add("--overwrite")),
     ["{out}/maps.config.yaml is an input of this run (--config)"]),
    ("sidecar-exists",                 "explain",  lambda w: (w.out / "maps.config.yaml").write_text("old\n"),
     ["{out}/maps.config.yaml exists already", "--overwrite"]),
    ("out-is-a-fifo",                  "explain",  lambda w: (fifo(w.out / "maps.h5"), w.add("--overwrite")),
     ["--out {out}/maps.h5 is not a regular file"]),
    ("out-is-the-boxes",               "evaluate", lambda w: (w.set("--out", w.boxes), w.add("--overwrite")),
     ["--out {inputs}/boxes.csv is an input of this run (--boxes)", "!--overwrite to"]),
    ("curves-file-is-the-maps",        "evaluate", lambda w: (shutil.copy(w.maps, w.inputs / "ev.curves.h5"), w.set("--maps", w.inputs / "ev.curves.h5"), w.set("--out", w.inputs / "ev.csv"), w.add("--overwrite")),
     ["{inputs}/ev.curves.h5 is an input of this run (--maps)"]),
    ("summary-exists",                 "evaluate", lambda w: (w.out / "metrics.summary.csv").write_text("old"),
     ["{out}/metrics.summary.csv exists already", "--overwrite"]),
    ("plot-is-the-out",                "evaluate", lambda w: w.set("--plot", w.out / "metrics.csv"),
     ["--plot {out}/metrics.csv"]),
    ("plot-among-the-images",          "evaluate", lambda w: w.set("--plot", w.images / "curves.png"),
     ["--plot {inputs}/images/curves.png would add a .png file to {inputs}/images, a folder of inputs (--images)"]),
    ("out-is-a-shard",                 "merge",    lambda w: (merge_args(w, SHARD_0, SHARD_1), w.set("--out", w.inputs / SHARD_0), w.add("--overwrite")),
     [f"--out {{inputs}}/{SHARD_0} is an input of this run (--shards)"]),
]


@pytest.mark.parametrize(("command", "brk", "expected"), command_table(A))
def test_class_a_data_is_never_lost(request, fovex, command, brk, expected):
    run_case(request, fovex, command, brk, expected)


@pytest.mark.parametrize(("command", "out"), [("explain", "maps.h5"), ("evaluate", "metrics.csv")])
def test_a_second_run_is_refused_while_the_first_writes(request, fovex, command, out):
    """Two real processes on one output: the second is told that another run holds it."""
    work = request.getfixturevalue(f"{command}_work")
    held = "metrics.curves.h5" if command == "evaluate" else out  # evaluate's resumable file is locked first
    with held_lock(work.out / held):
        check_refused(fovex, work, [f"another run holds {{out}}/{held}", "!--resume"])


# ================================================================== B. no exit 1 on input a user can give


def image_named(w: Work, raw_name: bytes) -> None:
    folder = os.fsencode(w.images)
    Image.fromarray(np.zeros((36, 36, 3), np.uint8)).save(os.fsdecode(folder + b"/" + raw_name), format="PNG")


def more_shards_than_images(w: Work) -> None:
    gradcam(w)
    w.drop("--png-dir")
    w.add("--shard", "2/5")  # 3 images in 5 shards: shards 0 and 2 hold none


def empty_shard_written(w: Work) -> None:
    with h5py.File(w.out / "maps.shard-002-of-005.h5") as file:
        assert file["stimuli"].shape == (0,) and file["maps"].shape[0] == 0


B = [
    # case id                          command     how the workspace is broken                                         expected
    ("seed-beyond-32-bits",            "explain",  lambda w: w.add("--seed", 2**64),                                    ["--seed", "at most 4294967295"]),
    ("seed-negative",                  "explain",  lambda w: w.add("--seed", -1),                                       ["--seed", "0 or more"]),
    ("target-beyond-range",            "explain",  lambda w: w.set("--target", 2**40),                                  ["--target", "at most 2147483647"]),
    ("batch-size-beyond-range",        "explain",  lambda w: w.set("--batch-size", 10**9),                              ["--batch-size", "at most 100000"]),
    ("image-size-beyond-range",        "explain",  lambda w: w.set("--image-size", 10**5),                              ["--image-size", "at most 4096 pixels"]),
    ("crop-pct-beyond-range",          "explain",  lambda w: w.add("--crop-pct", 1.5),                                  ["--crop-pct", "between 0 and 1", "got 1.5"]),
    ("seed-beyond-32-bits",            "evaluate", lambda w: w.add("--seed", 2**33),                                    ["--seed", "at most 4294967295"]),
    ("step-beyond-range",              "evaluate", lambda w: w.set("--step", 2**40),                                    ["--step", "at most 2147483647 pixel"]),
    ("gaze-sigma-beyond-range",        "evaluate", lambda w: w.add("--gaze-sigma", 1e9),                                ["--gaze-sigma", "at most 10000 number of pixels"]),
    ("batch-beyond-memory",            "explain",  lambda w: (w.set("--image-size", 2048), w.set("--batch-size", 100_000)),
     ["fovex on 100000 image(s) of 2048 x 2048 at a time needs about", "lower --batch-size"]),
    ("mask-batch-beyond-memory",       "explain",  lambda w: (w.set("--image-size", 2048), w.drop(*FOVEX_OPTIONS), w.set("--method", "rise"), w.add("--mask-batch", 100_000)),
     ["rise on 100000 image(s) of 2048 x 2048 at a time needs about", "lower --mask-batch"]),
    ("image-name-not-utf-8",           "explain",  lambda w: image_named(w, b"caf\xe9.png"),                            ["b'caf\\xe9.png' is not valid UTF-8", "rename the file"]),
    ("image-name-not-utf-8",           "evaluate", lambda w: image_named(w, b"\xff.png"),                               ["b'\\xff.png' is not valid UTF-8"]),
    ("more-shards-than-images",        "explain",  more_shards_than_images,                                             Accepted([], empty_shard_written)),
    *[(f"factory-{kind}", command, lambda w, kind=kind: model_file(w, FAILING_FACTORIES[kind][0]), FAILING_FACTORIES[kind][1])
      for kind in FAILING_FACTORIES for command in ("explain", "evaluate")],
]


@pytest.mark.parametrize(("command", "brk", "expected"), command_table(B))
def test_class_b_no_exit_1(request, fovex, command, brk, expected):
    run_case(request, fovex, command, brk, expected)


def test_merge_takes_an_empty_shard(fovex, tmp_path):
    """B5: more shards than images; the empty shards are merged like the others."""
    from tests.conftest import write_images

    images = write_images(tmp_path / "images", 2, size=36)
    args = ["explain", *MODEL, "--images", images, "--method", "gradcam"]
    for index in range(4):
        assert fovex(*args, "--out", tmp_path / "maps.h5", "--shard", f"{index}/4").code == 0
    assert fovex("merge", "--out", tmp_path / "maps.h5").code == 0
    assert fovex(*args, "--out", tmp_path / "whole.h5").code == 0
    with h5py.File(tmp_path / "maps.h5") as merged, h5py.File(tmp_path / "whole.h5") as single:
        assert list(merged["stimuli"].asstr()) == list(single["stimuli"].asstr())
        np.testing.assert_allclose(merged["maps"][()], single["maps"][()], atol=1e-6)


# ================================================================== C. no silent wrong numbers

GREY = np.random.default_rng(5).integers(0, 256, (36, 36), dtype=np.uint8)


def deep_image(w: Work, kind: str) -> None:
    """img_2 as a 16-bit PNG or a float TIFF in [0, 1] of the grey image `GREY`."""
    gradcam(w)
    w.drop("--png-dir")
    (w.images / "img_2.png").unlink()
    if kind == "16-bit":
        Image.fromarray(GREY.astype(np.uint16) * 257).save(w.images / "img_2.png")
    else:
        Image.fromarray(GREY.astype(np.float32) / 255).save(w.images / "img_2.tif")


def maps_as_for_8_bits(w: Work) -> None:
    from net2brain_fovex.explain.attributions import explain_to_file

    twin = w.inputs / "twin"
    twin.mkdir()
    for path in sorted(w.images.iterdir()):
        pixels = GREY if path.stem == "img_2" else np.asarray(Image.open(path).convert("RGB"))
        Image.fromarray(pixels).save(twin / f"{path.stem}.png")
    explain_to_file(MODEL[1], twin, w.tmp / "twin.h5", weights="random", image_size=32, method="gradcam")
    with h5py.File(w.out / "maps.h5") as got, h5py.File(w.tmp / "twin.h5") as expected:
        np.testing.assert_allclose(got["maps"][()], expected["maps"][()], atol=1e-5)


def fixation_maps(w: Work, kind: str) -> None:
    """Fixation maps (fixated where non-zero) as 16-bit or float images with faint values
    that an 8-bit conversion would round to 0, beside the same fixations as a CSV."""
    folder = w.inputs / "fixmaps"
    folder.mkdir()
    points = {"img_1.png": [(10, 12), (20, 5)], "img_2.png": [(3, 30)], "img_3.png": [(30, 30), (1, 1)]}
    for name, fixated in points.items():
        width, height = Image.open(w.images / name).size
        values = np.zeros((height, width), np.uint16 if kind == "16-bit" else np.float32)
        for row, col in fixated:
            values[row, col] = 40 if kind == "16-bit" else 0.001  # 40 / 65535 and 0.001 round to 0 in 8 bits
        Image.fromarray(values).save(folder / (name.replace(".png", ".png" if kind == "16-bit" else ".tif")))
    write_rows(w.fixations, "image,row,col", *(f"{n},{r},{c}" for n, fixated in points.items() for r, c in fixated))
    w.folder_maps = folder
    w.set("--metrics", "nss,auc_judd")
    w.drop("--boxes", "--fixations", "--plot")
    w.add("--fixations", folder)


def gaze_scores_as_from_the_csv(w: Work) -> None:
    from net2brain_fovex.evaluate.evaluation import evaluate_to_file

    evaluate_to_file(MODEL[1], w.images, [w.maps], w.tmp / "csv.csv", weights="random", image_size=32,
                     fixations=w.fixations, metrics="nss,auc_judd", step=256)
    got = list(csv.DictReader(open(w.out / "metrics.csv")))
    expected = list(csv.DictReader(open(w.tmp / "csv.csv")))
    assert [(r["image"], float(r["nss"]), float(r["auc_judd"])) for r in got] == \
        [(r["image"], float(r["nss"]), float(r["auc_judd"])) for r in expected]


C = [
    # case id                          command     how the workspace is broken                                         expected
    ("png-16-bit",                     "explain",  lambda w: deep_image(w, "16-bit"),                                   Accepted([], maps_as_for_8_bits)),
    ("tiff-float-in-0-1",              "explain",  lambda w: deep_image(w, "float"),                                    Accepted([], maps_as_for_8_bits)),
    ("tiff-float-negative",            "explain",  lambda w: Image.fromarray(np.full((8, 8), -2, np.float32)).save(w.images / "img_0.tif"),
     ["img_0.tif has floating-point pixels from -2 to -2", "save it with 8 or 16 bits", "!cannot decode"]),
    ("fixation-maps-16-bit",           "evaluate", lambda w: fixation_maps(w, "16-bit"),                                Accepted([], gaze_scores_as_from_the_csv)),
    ("fixation-maps-float",            "evaluate", lambda w: fixation_maps(w, "float"),                                 Accepted([], gaze_scores_as_from_the_csv)),
    ("gaze-sigma-nan",                 "evaluate", lambda w: w.add("--gaze-sigma", "nan"),                              ["--gaze-sigma", "finite number"]),
    ("crop-pct-nan",                   "evaluate", lambda w: w.add("--crop-pct", "nan"),                                ["--crop-pct", "finite number", "got nan"]),
    ("dangling-link-among-images",     "explain",  lambda w: link(w.images / "img_9.png", w.inputs / "moved.png"),      ["img_9.png is a broken link", "remove it"]),
    ("list-names-an-image-twice",      "explain",  lambda w: w.set("--images", w.file("list.txt", "images/img_1.png\nimages/../images/img_1.png\n")),
     ["list.txt, line 2", "is the file of line 1", "list each stimulus once"]),
    ("config-key-twice",               "explain",  lambda w: config(w, "batch-size: 2\nseed: 1\nbatch-size: 3\n"),     ["{inputs}/options.yaml", "key 'batch-size' is given twice, on lines 1 and 3"]),
    ("config-key-twice",               "evaluate", lambda w: config(w, "step: 64\nstep: 128\n"),                        ["key 'step' is given twice, on lines 1 and 2"]),
    ("config-dash-and-underscore",     "evaluate", lambda w: config(w, "gaze-sigma: 2\ngaze_sigma: 3\n"),               ["option 'gaze_sigma' (line 2) is given twice, also as 'gaze-sigma' (line 1)"]),
    ("config-key-twice",               "merge",    lambda w: (merge_args(w, SHARD_0, SHARD_1), config(w, "overwrite: true\noverwrite: true\n")), ["key 'overwrite' is given twice"]),
    ("config-key-twice",               "demo",     lambda w: config(w, "device: cpu\ndevice: cpu\n"),                   ["key 'device' is given twice"]),
    ("config-value-out-of-range",      "explain",  lambda w: config(w, "seed: -1\n"),                                   ["--seed", "(--seed is set in config file {inputs}/options.yaml)"]),
    ("config-value-out-of-range",      "evaluate", lambda w: config(w, "gaze-sigma: 0\n"),                              ["--gaze-sigma", "set in config file {inputs}/options.yaml"]),
]


@pytest.mark.parametrize(("command", "brk", "expected"), command_table(C))
def test_class_c_no_silent_wrong_numbers(request, fovex, command, brk, expected):
    run_case(request, fovex, command, brk, expected)


# ================================================================== D. messages that say what happened


def boxes_with_a_byte_order_mark(w: Work) -> None:
    """Boxes saved by Excel: UTF-8 with a byte-order mark."""
    w.boxes.write_bytes(b"\xef\xbb\xbf" + w.boxes.read_bytes())
    w.set("--metrics", "ebpg")
    w.drop("--fixations", "--plot")


def boxes_scores_as_without_the_mark(w: Work) -> None:
    from net2brain_fovex.evaluate.evaluation import evaluate_to_file

    plain = w.tmp / "plain.csv"
    plain.write_bytes(w.boxes.read_bytes()[3:])
    evaluate_to_file(MODEL[1], w.images, [w.maps], w.tmp / "plain_metrics.csv", weights="random", image_size=32,
                     boxes=plain, metrics="ebpg", step=256)
    assert [r["ebpg"] for r in csv.DictReader(open(w.out / "metrics.csv"))] == \
        [r["ebpg"] for r in csv.DictReader(open(w.tmp / "plain_metrics.csv"))]


def maps_named_like_curves(w: Work) -> None:
    """The user's own maps file where the curves of --out go (not given as an input)."""
    shutil.copy(w.maps, w.out / "metrics.curves.h5")


D = [
    # case id                          command     how the workspace is broken                                         expected
    ("boxes-with-a-byte-order-mark",   "evaluate", boxes_with_a_byte_order_mark,                                        Accepted([], boxes_scores_as_without_the_mark)),
    ("maps-named-like-curves",         "evaluate", maps_named_like_curves,
     ["{out}/metrics.curves.h5 exists already and is not an evaluation's curves file", "give another --out", "!interrupted"]),
    ("maps-a-fifo",                    "evaluate", lambda w: w.set("--maps", fifo(w.inputs / "pipe.h5")),               ["{inputs}/pipe.h5 is a FIFO"]),
    ("maps-a-link-loop",               "evaluate", lambda w: w.set("--maps", link_loop(w.inputs / "loop.h5")),          ["{inputs}/loop.h5 is a loop of links"]),
    ("boxes-a-folder",                 "evaluate", lambda w: w.set("--boxes", w.folder("boxes")),                       ["{inputs}/boxes is a folder", "give a CSV file"]),
    ("images-a-fifo",                  "explain",  lambda w: w.set("--images", fifo(w.inputs / "list.txt")),            ["{inputs}/list.txt is a FIFO"]),
    ("image-a-fifo",                   "explain",  lambda w: fifo(w.images / "img_9.png"),                              ["img_9.png is a FIFO"]),
    ("weights-a-broken-link",          "explain",  lambda w: w.set("--weights", link(w.inputs / "w.pth", w.inputs / "old.pth")), ["{inputs}/w.pth is a broken link"]),
    ("shard-a-fifo",                   "merge",    lambda w: merge_args(w, SHARD_0, fifo(w.inputs / "pipe.h5").name),   ["{inputs}/pipe.h5 is a FIFO"]),
    ("file-a-link-loop",               "info",     lambda w: w.args.insert(1, str(link_loop(w.inputs / "loop.h5"))),   ["{inputs}/loop.h5 is a loop of links"]),
]


@pytest.mark.parametrize(("command", "brk", "expected"), command_table(D))
def test_class_d_messages_say_what_happened(request, fovex, command, brk, expected):
    run_case(request, fovex, command, brk, expected)


HELD = [
    ("maps-being-written",             "evaluate", Held(held_open, lambda w: w.maps, ["{inputs}/maps.h5 is open for writing in another program"])),
    ("shard-being-written",            "merge",    Held(held_open, lambda w: w.inputs / SHARD_1, [f"{SHARD_1} is open for writing in another program"])),
    ("out-held-by-another-run",        "merge",    Held(held_lock, lambda w: w.out / "maps.h5", ["another run holds {out}/maps.h5"])),
]


@pytest.mark.parametrize(("command", "held"), [pytest.param(command, held, id=f"{command}-{case}") for case, command, held in HELD])
def test_class_d_files_held_by_another_process(request, fovex, command, held):
    work = request.getfixturevalue(f"{command}_work")
    if command == "merge":
        merge_args(work, SHARD_0, SHARD_1)
    with held.holder(held.path(work)):
        check_refused(fovex, work, held.expected)
