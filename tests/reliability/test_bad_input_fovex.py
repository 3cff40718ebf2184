"""Bad input to every `fovex` command: exit 2, one line on stderr, nothing written.

One parametrised test per command (explain, evaluate, merge, info, report, demo). Its cases are
the table at the top of the command's section: the case id, how the input is broken (a
function of the workspace `w`: `w.set(option, value)`, `w.drop(option)`, `w.add(...)`
or a helper defined above the table), and fragments the one-line message must hold
(`{name}` is filled in from the workspace: `{tmp}`, `{images}`, `{out}`, ...). Every case
checks the command contract (README, "The command contract"):

* exit code 2;
* stderr is exactly one non-empty line, starting with "fovex: error:", holding the
  fragments, without a traceback;
* nothing is written: the workspace (inputs and the output folder: names, sizes,
  folders, hidden files) is the same after the run as before, with no `.partial` file
  and no hidden temporary file left.
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from tests.conftest import factory, write_images
from tests.reliability import bad_input
from tests.reliability.bad_input import NOT_AS_ROOT, check_case, config, cut_tail, file_at, table

FAST = ["--scanpath-length", 2, "--optimization-steps", 3, "--blur-filter-size", 5, "--blur-sigma", 2]
FOVEX_OPTIONS = ("--scanpath-length", "--optimization-steps", "--blur-filter-size", "--blur-sigma")
MODEL = ["--model", factory("tiny_cnn"), "--weights", "random", "--image-size", 32]
IDS = ["img_1.png", "img_2.png", "img_3.png"]


# ------------------------------------------------------------------ the workspace


class Work(bad_input.Work):
    """The workspace, with the images folder the cases break."""

    def __init__(self, tmp: Path, args: list) -> None:
        super().__init__(tmp, args)
        self.images = self.inputs / "images"


def check_refused(run, w: Work, fragments: list[str]) -> None:
    check_case(run, w, fragments, "fovex")


# ------------------------------------------------------------------ fovex explain


def list_file(w: Work, *lines: str) -> None:
    w.set("--images", w.file("list.txt", "\n".join(lines) + "\n"))


def replace_image(w: Work, name: str, data: bytes) -> None:
    (w.images / name).write_bytes(data)


def state_dict_of_another_model(w: Work) -> None:
    torch.save({"conv.weight": torch.zeros(2, 3, 3, 3)}, w.inputs / "other.pth")
    w.set("--weights", w.inputs / "other.pth")


def existing_overlay(w: Work) -> None:
    (w.out / "png").mkdir()
    (w.out / "png" / "img_2.png").write_bytes(b"an overlay of an earlier run")


def unreadable_image(w: Work) -> None:
    os.chmod(w.images / "img_2.png", 0)


def method(w: Work, name: str, *extra) -> None:
    """Another --method, without the FovEx options of the base command."""
    w.drop(*FOVEX_OPTIONS)
    w.set("--method", name)
    w.add(*extra)


def without_cam_library(w: Work) -> None:
    """pytorch-grad-cam not importable (the `cam` extra not installed); the command runs in
    this process, and the workspace's monkeypatch undoes it."""
    w.monkeypatch.setitem(sys.modules, "pytorch_grad_cam", None)



EXPLAIN = [
    # case id                      how the input is broken                                          the message says
    ("images-missing",             lambda w: w.set("--images", w.inputs / "nowhere"),                ["{inputs}/nowhere", "does not exist", "give a folder"]),
    ("images-folder-empty",        lambda w: w.set("--images", w.file("empty/.keep", "").parent),     ["{inputs}/empty", "holds no images"]),
    ("list-empty",                 lambda w: list_file(w, "# nothing here"),                         ["{inputs}/list.txt", "lists no files"]),
    ("list-names-an-image-twice",  lambda w: list_file(w, "images/img_1.png", "images/img_1.png"),    ["list.txt, line 2", "listed twice", "unique"]),
    ("list-names-a-missing-file",  lambda w: list_file(w, "images/img_1.png", "images/gone.png"),     ["list.txt, line 2", "gone.png does not exist"]),
    ("images-is-an-hdf5-file",     lambda w: w.set("--images", w.file("maps.h5", b"\x89HDF\r\n\x1a\n" + bytes(64))), ["{inputs}/maps.h5", "give a folder"]),
    ("image-corrupt",              lambda w: replace_image(w, "img_2.png", b"not an image"),          ["img_2.png", "cannot decode image", "replace or remove"]),
    ("image-truncated-png",        lambda w: cut_tail(w.images / "img_2.png"),                      ["img_2.png", "cannot decode image", "replace or remove"]),
    ("image-unreadable",           unreadable_image,                                                ["img_2.png", "replace or remove"], NOT_AS_ROOT),
    ("video-among-images",         lambda w: replace_image(w, "clip.mp4", b"\x00\x00\x00\x18ftypmp42"), ["clip.mp4", "is a video", "images only"]),
    ("model-unknown",              lambda w: w.set("--model", "resnet_19"),                         ["unknown model 'resnet_19'", "resnet18"]),
    ("model-factory-file-missing", lambda w: w.set("--model", f"{w.inputs}/nets.py:build"),        ["{inputs}/nets.py", "does not exist"]),
    ("weights-missing",            lambda w: w.set("--weights", w.inputs / "gone.pth"),             ["{inputs}/gone.pth", "does not exist"]),
    ("weights-a-folder",           lambda w: w.set("--weights", w.file("w.pth/.keep", "").parent),  ["{inputs}/w.pth", "is a folder"]),
    ("weights-corrupt",            lambda w: w.set("--weights", w.file("w.pth", b"PK\x03\x04 junk")), ["{inputs}/w.pth", "cannot load weights", "state dict"]),
    ("weights-of-another-model",   state_dict_of_another_model,                                     ["{inputs}/other.pth", "do not fit the model", "missing"]),
    ("method-unknown",             lambda w: method(w, "lime"),                                     ["--method", "'lime'", "fovex explain --help"]),
    ("layer-unknown-gradcam",      lambda w: method(w, "gradcam", "--layer", "features.9"),         ["unknown layer 'features.9'", "closest"]),
    ("target-beyond-the-classes",  lambda w: w.set("--target", 9),                                  ["--target 9", "5 classes (0-4)"]),
    ("target-not-a-class",         lambda w: w.set("--target", "best"),                             ["--target 'best'", "give --target pred or a whole number"]),
    ("masks-negative",             lambda w: method(w, "rise", "--masks", -5),                      ["masks = -5", ">= 1", "--masks"]),
    ("p-keep-outside-0-1",         lambda w: method(w, "rise", "--p-keep", 1.5),                    ["p_keep = 1.5", "(0, 1]", "--p-keep"]),
    ("centre-sigma-zero",          lambda w: method(w, "centre", "--centre-sigma", 0),              ["centre_sigma = 0", "> 0", "--centre-sigma"]),
    ("centre-option-with-gradcam", lambda w: method(w, "gradcam", "--centre-sigma", 0.3),           ["--centre-sigma", "--method centre, not gradcam"]),
    ("perturbation-l1-negative",   lambda w: method(w, "perturbation", "--perturbation-l1", -0.5),  ["perturbation_l1 = -0.5", ">= 0", "--perturbation-l1"]),
    ("perturbation-tv-beta-below-1", lambda w: method(w, "perturbation", "--perturbation-tv-beta", 0.5), ["perturbation_tv_beta = 0.5", "from 1 to 10", "--perturbation-tv-beta"]),
    ("perturbation-iterations-zero", lambda w: method(w, "perturbation", "--perturbation-iterations", 0), ["perturbation_iterations = 0", "from 1 to 100000", "--perturbation-iterations"]),
    ("perturbation-option-with-gradcam", lambda w: method(w, "gradcam", "--perturbation-lr", 0.05), ["--perturbation-lr", "--method perturbation, not gradcam"]),
    ("cam-unknown",                lambda w: method(w, "cam:foo"),                                  ["--method", "'cam:foo'", "'cam:scorecam'", "'cam:fullgrad'", "fovex explain --help"]),
    ("cam-library-missing",        lambda w: (without_cam_library(w), method(w, "cam:xgradcam")),   ["method cam:xgradcam needs the pytorch_grad_cam library", "pip install 'net2brain-fovex[cam]'"]),
    ("layer-unknown-cam",          lambda w: method(w, "cam:layercam", "--layer", "features.9"),    ["unknown layer 'features.9'", "closest"]),
    ("cam-batch-zero",             lambda w: method(w, "cam:scorecam", "--cam-batch", 0),           ["cam_batch = 0", "from 1 to 100000", "--cam-batch"]),
    ("cam-batch-with-gradcam",     lambda w: method(w, "gradcam", "--cam-batch", 4),                ["--cam-batch", "--method cam:scorecam, not gradcam"]),
    ("layer-with-fullgrad",        lambda w: method(w, "cam:fullgrad", "--layer", "features"),      ["--layer", "not cam:fullgrad"]),
    ("gae-with-a-cnn",             lambda w: method(w, "gae"),                                      ["--method gae explains vision transformers", "TinyCNN has no self-attention", "choose another method"]),
    ("rollout-with-a-cnn",         lambda w: method(w, "rollout"),                                  ["--method rollout explains vision transformers", "TinyCNN has no self-attention"]),
    ("discard-ratio-one",          lambda w: method(w, "rollout", "--discard-ratio", 1),            ["discard_ratio = 1.0", "[0, 1)", "--discard-ratio"]),
    ("rollout-option-with-gradcam", lambda w: method(w, "gradcam", "--discard-ratio", 0.5),         ["--discard-ratio", "--method rollout, not gradcam"]),
    ("converge-negative",          lambda w: w.add("--converge", -1),                               ["converge = -1", "from 0 to 100000", "--converge"]),
    ("converge-ratio-above-1",     lambda w: w.add("--converge-ratio", 1.5),                        ["converge_ratio = 1.5", "(0, 1]", "--converge-ratio"]),
    ("converge-with-gradcam",      lambda w: method(w, "gradcam", "--converge", 3),                 ["--converge", "--method fovex, not gradcam"]),
    ("precision-unknown",          lambda w: w.add("--precision", "fp64"),                          ["--precision", "'fp64'", "'bf16'"]),
    ("precision-fp16-on-a-cpu",    lambda w: w.add("--precision", "fp16", "--device", "cpu"),       ["--precision fp16 is for GPUs", "use --precision bf16"]),
    ("precision-with-gradcam",     lambda w: method(w, "gradcam", "--precision", "bf16"),           ["--precision", "--method fovex, not gradcam (also to rise)"]),
    ("blur-filter-size-even",      lambda w: w.set("--blur-filter-size", 4),                        ["--blur-filter-size", "odd"]),
    ("batch-size-zero",            lambda w: w.set("--batch-size", 0),                              ["--batch-size", "at least 1"]),
    ("image-size-too-small",       lambda w: w.set("--image-size", 2),                              ["--image-size", "at least 8"]),
    ("mean-two-numbers",           lambda w: w.add("--mean", "0.5,0.5"),                             ["--mean", "three numbers R,G,B"]),
    ("fovex-option-with-gradcam",  lambda w: w.set("--method", "gradcam"),                          ["--scanpath-length", "--method fovex, not gradcam"]),
    ("shard-invalid-spec",         lambda w: w.add("--shard", "3/2"),                               ["3/2", "0 <= I < N"]),
    ("shard-not-a-spec",           lambda w: w.add("--shard", "half"),                              ["--shard 'half'", "I/N"]),
    ("resume-with-overwrite",      lambda w: w.add("--resume", "--overwrite"),                      ["--resume", "--overwrite", "one of them"]),
    ("out-folder-a-file",          lambda w: w.set("--out", file_at(w.out / "sub") / "maps.h5"),    ["{out}/sub", "is a file, not a folder"]),
    ("out-exists",                 lambda w: (w.out / "maps.h5").write_bytes(b"old"),                ["{out}/maps.h5", "exists already", "--overwrite"]),
    ("overlay-exists",             existing_overlay,                                                ["{out}/png/img_2.png", "exists already", "--overwrite"]),
    ("png-dir-is-a-file",          lambda w: (w.out / "png").write_bytes(b"x"),                      ["--png-dir {out}/png", "not a folder"]),
    ("device-unknown",             lambda w: w.add("--device", "tpu"),                               ["'tpu'", "use auto, cpu"]),
    ("config-missing",             lambda w: w.add("--config", w.inputs / "gone.yaml"),              ["{inputs}/gone.yaml", "does not exist"]),
    ("config-unknown-key",         lambda w: config(w, "batch-sise: 4\n"),                           ["options.yaml", "'batch-sise'", "closest: batch-size"]),
    ("config-wrong-type",          lambda w: config(w, "masks: many\n"),                             ["options.yaml", "'masks'", "whole number"]),
    ("config-invalid-yaml",        lambda w: config(w, "batch-size: [4\n"),                          ["options.yaml", "not valid YAML", "line"]),
    ("config-a-list",              lambda w: config(w, "- batch-size\n- 4\n"),                       ["options.yaml", "must be a mapping", "not a list"]),
    ("model-without-class-scores-taskonomy", lambda w: w.set("--model", "taskonomy_normal"),         ["model taskonomy_normal is a taskonomy model (image input, output not class scores)", "fovex explains image classifiers"]),
    ("model-without-class-scores-video", lambda w: w.set("--model", "r3d_18"),                       ["model r3d_18 is a video model (video input, output not class scores)", "fovex explains image classifiers"]),
    ("model-without-class-scores-segmentation", lambda w: w.set("--model", "lraspp_mobilenet_v3_large"), ["lraspp_mobilenet_v3_large is a segmentation model", "fovex explains image classifiers"]),
    ("crop-pct-zero",              lambda w: w.add("--crop-pct", 0),                                 ["--crop-pct", "between 0 and 1", "got 0.0"]),
    ("interpolation-unknown",      lambda w: w.add("--interpolation", "lanczos"),                    ["'--interpolation'", "'lanczos'", "fovex explain --help"]),
    ("resize-mode-unknown",        lambda w: w.add("--resize-mode", "longest"),                      ["'--resize-mode'", "'longest'", "fovex explain --help"]),
    ("pretrained-tag-with-a-factory", lambda w: w.add("--pretrained-tag", "openai"),                 ["toy_models.py:tiny_cnn' is a factory (file.py:function)", "leave out --pretrained-tag"]),
]


@pytest.fixture
def explain_work(tmp_path, monkeypatch) -> Work:
    images = write_images(tmp_path / "in" / "images", 3, size=36)
    (tmp_path / "out").mkdir()
    w = Work(tmp_path, ["explain", *MODEL, "--images", images, "--out", tmp_path / "out" / "maps.h5",
                        "--batch-size", 2, "--png-dir", tmp_path / "out" / "png", *FAST])
    w.monkeypatch = monkeypatch
    return w


@pytest.mark.parametrize(("brk", "fragments"), table(EXPLAIN))
def test_explain_refuses_bad_input(fovex, explain_work, brk, fragments):
    brk(explain_work)
    check_refused(fovex, explain_work, fragments)


# ------------------------------------------------------------------ fovex evaluate


@pytest.fixture(scope="module")
def explained(tmp_path_factory) -> Path:
    """Three images and their Grad-CAM maps, made once (cases copy them)."""
    from fovex_cli.app import main

    folder = tmp_path_factory.mktemp("explained")
    images = write_images(folder / "images", 3, size=36)
    code = main([str(a) for a in ["explain", *MODEL, "--images", images, "--out", folder / "maps.h5", "--method", "gradcam"]])
    assert code == 0
    (folder / "maps.config.yaml").unlink()
    return folder


def write_rows(path: Path, header: str, *rows: str) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def edit_maps(w: Work, change) -> None:
    """Change the maps file in place with `change(h5py.File)`."""
    with h5py.File(w.maps, "r+") as file:
        change(file)


def replace_dataset(name: str, make):
    """A change that replaces dataset `name` by `make(old values)`."""
    def change(file):
        data = make(file[name][()])
        del file[name]
        file.create_dataset(name, data=data)
    return change


def activations_file(w: Work) -> None:
    path = w.inputs / "acts.h5"
    with h5py.File(path, "w") as file:
        file.attrs["kind"] = "activations"
        file.create_dataset("stimuli", data=np.array(IDS, dtype=h5py.string_dtype()))
        file.create_dataset("layers/features", data=np.zeros((3, 8, 16, 16), dtype=np.float32))
    w.set("--maps", path)


def rename_image(w: Work) -> None:
    (w.images / "img_3.png").rename(w.images / "img_4.png")


def fixation_map_of_another_size(w: Work) -> None:
    from PIL import Image

    (w.inputs / "fixmaps").mkdir()
    Image.fromarray(np.zeros((10, 10), dtype=np.uint8)).save(w.inputs / "fixmaps" / "img_1.png")
    w.set("--fixations", w.inputs / "fixmaps")


def mit1003_folder(broken: str):
    """An MIT1003 folder (ALLFIXATIONMAPS/<name>_fixPts.jpg, <name>_fixMap.jpg) as --fixations, broken."""
    def brk(w: Work) -> None:
        from PIL import Image

        maps = w.inputs / "mit1003" / "ALLFIXATIONMAPS"
        maps.mkdir(parents=True)
        for name in IDS:
            width, height = Image.open(w.images / name).size
            fixated = np.zeros((height, width), dtype=np.uint8)
            fixated[10, 12] = 255
            for suffix in ("_fixPts", "_fixMap"):
                Image.fromarray(fixated).save(maps / f"{name.removesuffix('.png')}{suffix}.jpg")
        if broken == "points missing":
            (maps / "img_2_fixPts.jpg").unlink()
        elif broken == "density missing":
            (maps / "img_3_fixMap.jpg").unlink()
        else:
            Image.fromarray(np.zeros((10, 12), dtype=np.uint8)).save(maps / "img_1_fixMap.jpg")
        w.set("--fixations", maps.parent)
    return brk


BOXES = "image,x0,y0,x1,y1"

EVALUATE = [
    # case id                      how the input is broken                                          the message says
    ("maps-missing",               lambda w: w.set("--maps", w.inputs / "gone.h5"),                 ["{inputs}/gone.h5", "does not exist"]),
    ("maps-a-folder",              lambda w: w.set("--maps", w.file("dir.h5/.keep", "").parent),     ["{inputs}/dir.h5", "is a folder"]),
    ("maps-truncated-hdf5",        lambda w: cut_tail(w.maps, 0.5),                                 ["{inputs}/maps.h5", "not a readable HDF5 file"]),
    ("maps-not-hdf5",              lambda w: w.set("--maps", w.file("text.h5", "image,x\n")),        ["{inputs}/text.h5", "not a readable HDF5 file"]),
    ("maps-are-activations",       activations_file,                                                ["{inputs}/acts.h5", "holds activations, expected attributions", "fovex explain"]),
    ("maps-of-another-size",       lambda w: w.set("--image-size", 24),                             ["{inputs}/maps.h5", "32 x 32", "--image-size"]),
    ("maps-2d",                    lambda w: edit_maps(w, replace_dataset("maps", lambda m: m[:, 0])), ["{inputs}/maps.h5", "(n, H, W)"]),
    ("maps-strings",               lambda w: edit_maps(w, replace_dataset("maps", lambda m: m.astype("S8"))), ["{inputs}/maps.h5", "numbers"]),
    ("maps-rows-missing",          lambda w: edit_maps(w, replace_dataset("maps", lambda m: m[:2])),   ["{inputs}/maps.h5", "rows"]),
    ("targets-missing",            lambda w: edit_maps(w, lambda f: f.__delitem__("targets")),       ["{inputs}/maps.h5", "/targets"]),
    ("targets-beyond-the-classes", lambda w: edit_maps(w, replace_dataset("targets", lambda t: t + 9)), ["{inputs}/maps.h5", "target", "5 classes"]),
    ("maps-nan",                   lambda w: edit_maps(w, lambda f: f["maps"].__setitem__((1, 3, 3), np.nan)), ["{inputs}/maps.h5", "NaN"]),
    ("maps-inf",                   lambda w: edit_maps(w, lambda f: f["maps"].__setitem__((2, 0, 0), np.inf)), ["{inputs}/maps.h5", "infinite"]),
    ("maps-list-an-id-twice",      lambda w: edit_maps(w, replace_dataset("stimuli", lambda s: s[[0, 0, 2]])), ["{inputs}/maps.h5", "twice"]),
    ("ids-mismatched",             rename_image,                                                    ["{inputs}/maps.h5", "img_4.png", "same stimuli"]),
    ("same-maps-twice",            lambda w: w.add("--maps", w.maps),                               ["{inputs}/maps.h5", "is given twice", "once"]),
    ("images-folder-empty",        lambda w: w.set("--images", w.file("empty/.keep", "").parent),     ["{inputs}/empty", "holds no images"]),
    ("boxes-missing-columns",      lambda w: write_rows(w.boxes, "image,x0,y0", "img_1.png,1,2"),    ["boxes.csv", "lacks the column(s) x1, y1"]),
    ("boxes-outside-the-image",    lambda w: write_rows(w.boxes, BOXES, "img_1.png,0,0,99,5"),       ["boxes.csv, line 2", "outside img_1.png", "0 <= x0 < x1 <= width"]),
    ("boxes-unknown-image",        lambda w: write_rows(w.boxes, BOXES, "cat.png,0,0,9,5"),          ["boxes.csv, line 2", "'cat.png'", "stimulus ids"]),
    ("boxes-not-numbers",          lambda w: write_rows(w.boxes, BOXES, "img_1.png,0,0,ten,5"),      ["boxes.csv, line 2", "x1", "whole number"]),
    ("boxes-empty-file",           lambda w: w.boxes.write_text(""),                                ["boxes.csv is empty", "header line naming image, x0"]),
    ("fixations-not-numbers",      lambda w: write_rows(w.fixations, "image,row,col", "img_1.png,a,3"), ["gaze.csv, line 2", "must be numbers"]),
    ("fixations-missing",          lambda w: w.set("--fixations", w.inputs / "gone.csv"),           ["{inputs}/gone.csv", "does not exist"]),
    ("fixation-map-another-size",  fixation_map_of_another_size,                                    ["fixmaps/img_1.png", "10 x 10", "its image's size"]),
    ("mit1003-points-missing",     mit1003_folder("points missing"),                                ["MIT1003 folder {inputs}/mit1003", "img_2_fixPts.jpg", "stimulus img_2.png"]),
    ("mit1003-density-missing",    mit1003_folder("density missing"),                               ["MIT1003 folder {inputs}/mit1003", "img_3_fixMap.jpg", "stimulus img_3.png"]),
    ("mit1003-map-another-size",   mit1003_folder("density of another size"),                       ["img_1_fixMap.jpg is 12 x 10 px", "img_1.png is 36 x 36 px", "its image's size"]),
    ("metric-unknown",             lambda w: w.add("--metrics", "deletion,insertoin"),              ["unknown metric 'insertoin'", "insertion"]),
    ("metric-needs-boxes",         lambda w: (w.drop("--boxes"), w.add("--metrics", "ebpg")),       ["ebpg", "add --boxes"]),
    ("step-zero",                  lambda w: w.set("--step", 0),                                    ["--step", "at least 1"]),
    ("gaze-sigma-zero",            lambda w: w.add("--gaze-sigma", 0),                              ["--gaze-sigma", "positive"]),
    ("batch-size-zero",            lambda w: w.add("--batch-size", 0),                              ["--batch-size", "at least 1"]),
    ("precision-unknown",          lambda w: w.add("--precision", "half"),                          ["--precision", "'half'", "'bf16'"]),
    ("precision-fp16-on-a-cpu",    lambda w: w.add("--precision", "fp16", "--device", "cpu"),       ["--precision fp16 is for GPUs", "use --precision bf16"]),
    ("plot-exists",                lambda w: (w.out / "curves.png").write_bytes(b"old"),              ["{out}/curves.png", "exists already", "--overwrite"]),
    ("config-wrong-type",          lambda w: config(w, "gaze-sigma: wide\n"),                        ["options.yaml", "'gaze-sigma'", "expects a number"]),
    ("config-wrong-type-overruled", lambda w: config(w, "step: 2.5\n"),                              ["options.yaml", "'step'", "whole number"]),
    ("model-without-class-scores-taskonomy", lambda w: w.set("--model", "taskonomy_normal"),         ["model taskonomy_normal is a taskonomy model (image input, output not class scores)", "fovex explains image classifiers"]),
    ("model-without-class-scores-video", lambda w: w.set("--model", "r3d_18"),                       ["model r3d_18 is a video model (video input, output not class scores)", "fovex explains image classifiers"]),
    ("model-without-class-scores-segmentation", lambda w: w.set("--model", "lraspp_mobilenet_v3_large"), ["lraspp_mobilenet_v3_large is a segmentation model", "fovex explains image classifiers"]),
    ("crop-pct-zero",              lambda w: w.add("--crop-pct", 0),                                 ["--crop-pct", "between 0 and 1", "got 0.0"]),
    ("interpolation-unknown",      lambda w: w.add("--interpolation", "lanczos"),                    ["'--interpolation'", "'lanczos'", "fovex evaluate --help"]),
    ("resize-mode-unknown",        lambda w: w.add("--resize-mode", "longest"),                      ["'--resize-mode'", "'longest'", "fovex evaluate --help"]),
    ("pretrained-tag-with-a-tag",  lambda w: (w.set("--model", "ViT-B-32:openai"), w.add("--pretrained-tag", "openai")), ["--model 'ViT-B-32:openai' names a tag already", "leave out --pretrained-tag 'openai'"]),
]


@pytest.fixture
def evaluate_work(tmp_path, explained) -> Work:
    inputs = tmp_path / "in"
    shutil.copytree(explained, inputs)
    (tmp_path / "out").mkdir()
    w = Work(tmp_path, ["evaluate", *MODEL, "--images", inputs / "images", "--maps", inputs / "maps.h5",
                        "--out", tmp_path / "out" / "metrics.csv", "--step", 256, "--plot", tmp_path / "out" / "curves.png"])
    w.maps = inputs / "maps.h5"
    w.boxes = write_rows(inputs / "boxes.csv", BOXES, *(f"{i},4,6,20,24" for i in IDS))
    w.fixations = write_rows(inputs / "gaze.csv", "image,row,col", *(f"{i},10,12" for i in IDS))
    w.add("--boxes", w.boxes, "--fixations", w.fixations)
    return w


@pytest.mark.parametrize(("brk", "fragments"), table(EVALUATE))
def test_evaluate_refuses_bad_input(fovex, evaluate_work, brk, fragments):
    brk(evaluate_work)
    check_refused(fovex, evaluate_work, fragments)


# ------------------------------------------------------------------ fovex merge


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """The two shards of one Grad-CAM run (maps.shard-000-of-002.h5, ...-001-...) and a
    shard 1 of another run (other/maps.shard-001-of-002.h5), made once."""
    from fovex_cli.app import main

    folder = tmp_path_factory.mktemp("shards")
    images = write_images(folder / "images", 3, size=36)
    for out, seed, part in ((folder / "maps.h5", 42, "0/2"), (folder / "maps.h5", 42, "1/2"), (folder / "other" / "maps.h5", 1, "1/2")):
        out.parent.mkdir(exist_ok=True)
        args = ["explain", *MODEL, "--images", images, "--out", out, "--method", "gradcam", "--seed", seed, "--shard", part]
        assert main([str(a) for a in args]) == 0
    for sidecar in folder.rglob("*.config.yaml"):
        sidecar.unlink()
    return folder


SHARD_0, SHARD_1 = "maps.shard-000-of-002.h5", "maps.shard-001-of-002.h5"


def merge_args(w: Work, *names: str) -> None:
    w.args[1:1] = [str(w.inputs / name) for name in names]


MERGE = [
    # case id                      how the input is broken                                          the message says
    ("no-shards-beside-out",       lambda w: None,                                                  ["{out}/maps.h5", "no shard files", "as arguments"]),
    ("shard-missing-file",         lambda w: merge_args(w, SHARD_0, "gone.shard-001-of-002.h5"),     ["gone.shard-001-of-002.h5", "does not exist"]),
    ("shard-truncated",            lambda w: (cut_tail(w.inputs / SHARD_1, 0.5), merge_args(w, SHARD_0, SHARD_1)), [SHARD_1, "not a readable HDF5 file", "rerun that shard"]),
    ("not-a-shard",                lambda w: merge_args(w, SHARD_0, "whole.h5"),                     ["whole.h5", "is not a shard", "--shard outputs"]),
    ("shards-of-activations",      lambda w: merge_args(w, "acts.shard-000-of-001.h5"),             ["acts.shard-000-of-001.h5", "not attributions"]),
    ("a-shard-is-missing",         lambda w: merge_args(w, SHARD_0),                                ["shard(s) 1 of 2 are missing", "run them"]),
    ("a-shard-given-twice",        lambda w: merge_args(w, SHARD_0, SHARD_0, SHARD_1),              ["shard 0/2 is given twice"]),
    ("shards-of-two-runs",         lambda w: merge_args(w, SHARD_0, "other/" + SHARD_1),            ["come from different runs", "same options and inputs"]),
    ("out-exists",                 lambda w: (merge_args(w, SHARD_0, SHARD_1), (w.out / "maps.h5").write_bytes(b"old")), ["{out}/maps.h5", "exists already", "--overwrite"]),
]


@pytest.fixture
def merge_work(tmp_path, shards) -> Work:
    inputs = tmp_path / "in"
    shutil.copytree(shards, inputs)
    shutil.copy(inputs / SHARD_0, inputs / "whole.h5")
    with h5py.File(inputs / "whole.h5", "r+") as file:
        for key in ("shard_index", "shard_count", "items_total", "job_sha256"):
            del file.attrs[key]
    with h5py.File(inputs / "acts.shard-000-of-001.h5", "w") as file:
        file.attrs.update({"kind": "activations", "shard_index": 0, "shard_count": 1, "items_total": 3, "job_sha256": "x"})
        file.create_dataset("stimuli", data=np.array(IDS, dtype=h5py.string_dtype()))
    (tmp_path / "out").mkdir()
    return Work(tmp_path, ["merge", "--out", tmp_path / "out" / "maps.h5"])


@pytest.mark.parametrize(("brk", "fragments"), table(MERGE))
def test_merge_refuses_bad_input(fovex, merge_work, brk, fragments):
    brk(merge_work)
    check_refused(fovex, merge_work, fragments)


# ------------------------------------------------------------------ fovex info


def info_of(w: Work, path: Path) -> None:
    w.args.append(str(path))


def damaged_png(w: Work) -> None:
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(w.inputs / "plot.png")
    cut_tail(w.inputs / "plot.png", 0.3)
    info_of(w, w.inputs / "plot.png")


INFO = [
    # case id                      how the input is broken                                          the message says
    ("file-missing",               lambda w: info_of(w, w.inputs / "gone.h5"),                      ["{inputs}/gone.h5", "does not exist", "give one of our files"]),
    ("a-folder",                   lambda w: info_of(w, w.inputs),                                  ["{inputs}", "is a folder", "give one of its files"]),
    ("unknown-format",             lambda w: info_of(w, w.file("notes.txt", "hello")),               ["notes.txt", "unknown format", "info reads HDF5"]),
    ("hdf5-truncated",             lambda w: (cut_tail(w.inputs / "maps.h5", 0.5), info_of(w, w.inputs / "maps.h5")), ["{inputs}/maps.h5", "not a readable HDF5 file"]),
    ("not-hdf5-with-h5-suffix",    lambda w: info_of(w, w.file("text.h5", "image,x\n")),             ["{inputs}/text.h5", "not a readable HDF5 file"]),
    ("png-damaged",                damaged_png,                                                     ["plot.png"]),
    ("yaml-invalid",               lambda w: info_of(w, w.file("maps.config.yaml", "model: [x\n")),  ["maps.config.yaml", "not valid YAML"]),
]


@pytest.fixture
def info_work(tmp_path, explained) -> Work:
    shutil.copytree(explained, tmp_path / "in")
    (tmp_path / "out").mkdir()
    return Work(tmp_path, ["info"])


@pytest.mark.parametrize(("brk", "fragments"), table(INFO))
def test_info_refuses_bad_input(fovex, info_work, brk, fragments):
    brk(info_work)
    check_refused(fovex, info_work, fragments)


# ------------------------------------------------------------------ fovex report (the net2brain table has every case)


REPORT = [
    # case id                      how the input is broken                                          the message says
    ("folder-missing",             lambda w: w.argument(w.inputs / "gone"),                       ["{inputs}/gone does not exist", "give the output folder of a run"]),
    ("nothing-to-report",          lambda w: w.argument(w.file("notes/notes.txt", "hi").parent),  ["{inputs}/notes holds nothing to report"]),
    ("report-exists",              lambda w: w.file("report.html", "<html></html>"),                ["{inputs}/report.html exists already", "--overwrite"]),
    ("out-not-html",               lambda w: w.set("--out", w.out / "report.png"),                  ["--out {out}/report.png ends in .png", ".html"]),
]


@pytest.fixture
def report_work(tmp_path, explained) -> Work:
    shutil.copytree(explained, tmp_path / "in")
    (tmp_path / "out").mkdir()
    return Work(tmp_path, ["report", tmp_path / "in"])


@pytest.mark.parametrize(("brk", "fragments"), table(REPORT))
def test_report_refuses_bad_input(fovex, report_work, brk, fragments):
    brk(report_work)
    check_refused(fovex, report_work, fragments)


# ------------------------------------------------------------------ fovex demo


def earlier_demo_output(w: Work) -> None:
    (w.out / "demo").mkdir()
    (w.out / "demo" / "fovex.h5").write_bytes(b"an earlier demo's maps")


DEMO = [
    # case id                      how the input is broken                                          the message says
    ("out-is-a-file",              lambda w: (w.out / "demo").write_text("a file"),                 ["{out}/demo", "not a folder"]),
    ("earlier-output",             earlier_demo_output,                                             ["{out}/demo/fovex.h5", "exists already", "--overwrite"]),
    ("device-unknown",             lambda w: w.add("--device", "gpu0"),                              ["'gpu0'", "use auto, cpu"]),
    ("config-unknown-key",         lambda w: config(w, "epochs: 3\n"),                               ["options.yaml", "unknown option 'epochs'", "fovex demo --help"]),
    ("unknown-flag",               lambda w: w.add("--fast"),                                       ["--fast", "fovex demo --help"]),
]


@pytest.fixture
def demo_work(tmp_path) -> Work:
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    return Work(tmp_path, ["demo", "--out", tmp_path / "out" / "demo", "--device", "cpu"])


@pytest.mark.parametrize(("brk", "fragments"), table(DEMO))
def test_demo_refuses_bad_input(fovex, demo_work, brk, fragments):
    brk(demo_work)
    check_refused(fovex, demo_work, fragments)
