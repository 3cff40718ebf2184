"""Bad input to every `net2brain` command: exit 2, one line on stderr, nothing written.

One parametrised test per command (models, layers, extract, rdm, rsa, cka, searchlight, encode, merge,
merge of encode shards, info, report, convert, demo). Its cases are the table at the top of the command's section: the case id,
how the input is broken (a function of the workspace `w`: `w.set(option, value)`,
`w.drop(option)`, `w.add(...)` or a helper defined above the table), and fragments the
one-line message must hold (`{tmp}`, `{inputs}`, `{out}` are filled in from the
workspace). Every case checks the command contract (README, "The command contract"):

* exit code 2;
* stderr is exactly one non-empty line, starting with "net2brain: error:", holding the
  fragments (what was wrong, where: the file or option, and how to fix it), without a
  traceback;
* nothing is written: the workspace (inputs and the output folder: names, sizes,
  folders, hidden files) is the same after the run as before, with no `.partial` file
  and no hidden temporary file left.

A few inputs look bad but are documented as accepted (README): NaN voxels in the volumes
of `rdm --betas` are left out of their ROI (logged), NaN voxels in searchlight volumes get
NaN at their centres, and a constant activation pattern gives NaN dissimilarities with a
warning. Their rows say `Accepted(...)` and check that documented behaviour instead
(exit 0, the log line or warning, and the NaN where the README puts it).

Data are checked as they are streamed: NaN in the activations of a later layer (or a
damaged image later in the stimulus list) is found when it is reached, after the
progress lines of the earlier work, so those cases break the first layer / an early
stimulus. Everything that headers and metadata tell (kinds, shapes, dtypes, row counts,
stimulus ids, grids, volume counts) is checked for every input before any work.

Cases marked NOT_AS_ROOT need file modes to be enforced: they are skipped as root, and
run as root without CAP_DAC_OVERRIDE (`setpriv --bounding-set=-all -- python -m pytest ...`).
"""
from __future__ import annotations

import importlib.util
import pickle
import shutil
import sys
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest

from net2brain_fovex.brain.rdm import compute_rdm
from net2brain_fovex.brain.rdm_files import write_rdms
from tests.conftest import factory, write_images
from tests.extraction.test_activations import write_video
from tests.reliability.bad_input import NOT_AS_ROOT, Accepted, Work, config, cut_tail, file_at, link, table, unreadable
from tests.reliability.bad_input import check_case as _check

MODEL = ["--model", factory("tiny_cnn"), "--weights", "random", "--image-size", 16]


RNG = np.random.default_rng(17)
N = 6  # stimuli of the RDM, volume and activation inputs
IDS = [f"img_{i}.png" for i in range(1, N + 1)]
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])


# ------------------------------------------------------------------ the workspace


def check_case(run, w: Work, expected) -> None:
    _check(run, w, expected, "net2brain")


def edit_h5(path: Path, change) -> Path:
    """Change an HDF5 file in place with `change(h5py.File)`."""
    with h5py.File(path, "r+") as file:
        change(file)
    return path


def replace_dataset(name: str, make):
    """A change that replaces dataset `name` by `make(old values)`."""
    def change(file):
        data = make(file[name][()])
        del file[name]
        file.create_dataset(name, data=data)
    return change


def set_value(name: str, index, value):
    """A change that sets one entry (and, for a square RDM, its mirror) of dataset `name`."""
    def change(file):
        data = file[name][()]
        data[index] = value
        if data.ndim >= 2 and data.shape[-1] == data.shape[-2]:
            data[(*index[:-2], index[-1], index[-2])] = value
        file[name][...] = data
    return change


def write_activations(path: Path, layers: dict[str, np.ndarray] | None = None, stimuli=IDS) -> Path:
    """An activations file as `net2brain extract` lays it out."""
    if layers is None:
        layers = {"conv": RNG.normal(size=(N, 2, 3, 3)).astype(np.float32), "fc": RNG.normal(size=(N, 5)).astype(np.float32)}
    with h5py.File(path, "w") as file:
        file.attrs["kind"] = "activations"
        file.attrs["model"] = "toy"
        file.create_dataset("stimuli", data=np.array(stimuli, dtype=h5py.string_dtype()))
        group = file.create_group("layers", track_order=True)
        for name, values in layers.items():
            group.create_dataset(name, data=values)
    return path


def model_rdms(path: Path, stimuli=IDS, layers=("a", "b"), n=N) -> Path:
    return write_rdms(path, stimuli, {name: compute_rdm(RNG.normal(size=(n, 4)), precision="double") for name in layers},
                      metric="correlation")


def brain_rdms(path: Path, stimuli=IDS, rois=("V1",), subjects=3, n=N) -> Path:
    stacks = {roi: np.stack([compute_rdm(RNG.normal(size=(n, 4)), precision="double") for _ in range(subjects)]) for roi in rois}
    return write_rdms(path, stimuli, stacks, metric="correlation")


def nifti(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    nib.save(nib.Nifti1Image(np.asarray(data), affine), str(path))
    return path


def volume(path: Path, shape=(4, 4, 3), n=N, seed=0) -> Path:
    """A 4D response volume, one random volume per stimulus."""
    return nifti(path, np.random.default_rng(seed).normal(size=(*shape, n)).astype(np.float32))


def mask(path: Path, shape=(4, 4, 3), box=(slice(0, 2), slice(0, 2), slice(0, 2)), affine=AFFINE) -> Path:
    data = np.zeros(shape, dtype=np.uint8)
    data[box] = 1
    return nifti(path, data, affine)


def npz(path: Path, *arrays, **named) -> Path:
    np.savez(path, *arrays, **named)
    return path


def without_library(w: Work, library: str) -> None:
    """The optional `library` not installed, as the model sources ask `importlib.util.find_spec`
    (the commands run in this process: the workspace's monkeypatch undoes it)."""
    find_spec = importlib.util.find_spec
    w.monkeypatch.setattr(importlib.util, "find_spec",
                          lambda name, *args, **kwargs: None if name == library else find_spec(name, *args, **kwargs))


# ------------------------------------------------------------------ net2brain models


MODELS = [
    # case id                      how the input is broken                                          the message says
    ("source-unknown",             lambda w: w.add("--source", "keras"),                             ["--source", "'keras'", "net2brain models --help"]),
    ("unknown-flag",               lambda w: w.add("--sort"),                                       ["--sort", "net2brain models --help"]),
    ("config-missing",             lambda w: w.add("--config", w.inputs / "gone.yaml"),              ["{inputs}/gone.yaml", "does not exist", "YAML file"]),
    ("config-a-folder",            lambda w: w.add("--config", w.folder("options.yaml")),            ["{inputs}/options.yaml", "is a folder", "YAML file"]),
    ("config-unreadable",          lambda w: w.add("--config", unreadable(w.file("options.yaml", "filter: vit\n"))), ["{inputs}/options.yaml", "not readable"], NOT_AS_ROOT),
    ("config-unknown-key",         lambda w: config(w, "filtre: vit\n"),                             ["{inputs}/options.yaml", "unknown option 'filtre'", "closest: filter"]),
    ("config-wrong-type",          lambda w: config(w, "source: 3\n"),                               ["{inputs}/options.yaml", "'source'", "one of torchvision, timm"]),
    ("config-invalid-yaml",        lambda w: config(w, "filter: [vit\n"),                            ["{inputs}/options.yaml", "not valid YAML", "line"]),
    ("config-a-list",              lambda w: config(w, "- vit\n"),                                   ["{inputs}/options.yaml", "must be a mapping", "not a list"]),
    ("config-binary",              lambda w: w.add("--config", w.file("options.yaml", b"\xff\xfe\x00bad")), ["{inputs}/options.yaml", "cannot read", "UTF-8"]),
    ("task-unknown",               lambda w: w.add("--task", "cooking"),                             ["--task", "'cooking'", "net2brain models --help"]),
    ("source-library-missing",     lambda w: (without_library(w, "transformers"), w.add("--source", "hf")), ["model source hf needs the transformers library", "pip install 'net2brain-fovex[hf]'"]),
]


@pytest.fixture
def models_work(tmp_path, monkeypatch) -> Work:
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    w = Work(tmp_path, ["models", "--filter", "resnet1"])
    w.monkeypatch = monkeypatch
    return w


@pytest.mark.parametrize(("brk", "expected"), table(MODELS))
def test_models_refuses_bad_input(net2brain, models_work, brk, expected):
    brk(models_work)
    check_case(net2brain, models_work, expected)


# ------------------------------------------------------------------ net2brain layers


def model_spec(w: Work, spec) -> None:
    w.args[1] = str(spec)


def factory_file(w: Work, source: str) -> None:
    model_spec(w, f"{w.file('nets.py', source)}:build")


LAYERS = [
    # case id                      how the input is broken                                          the message says
    ("model-unknown",              lambda w: model_spec(w, "resnet_19"),                            ["unknown model 'resnet_19'", "closest: resnet18", "net2brain models"]),
    ("model-unknown-in-source",    lambda w: (model_spec(w, "resnet18x"), w.set("--source", "timm")),                    ["unknown model 'resnet18x'", "net2brain models"]),
    ("source-unknown",             lambda w: w.set("--source", "keras"),                             ["--source", "'keras'", "net2brain layers --help"]),
    ("torchscript-missing",        lambda w: model_spec(w, w.inputs / "net.pt"),                    ["{inputs}/net.pt", "does not exist"]),
    ("torchscript-a-folder",       lambda w: model_spec(w, w.folder("net.pt")),                     ["{inputs}/net.pt", "is a folder"]),
    ("torchscript-corrupt",        lambda w: model_spec(w, w.file("net.pt", b"PK\x03\x04 not a model")), ["{inputs}/net.pt", "is not a TorchScript model", "--weights"]),
    ("factory-file-missing",       lambda w: model_spec(w, f"{w.inputs}/nets.py:build"),            ["{inputs}/nets.py", "does not exist"]),
    ("factory-function-missing",   lambda w: model_spec(w, factory("nope")),                        ["has no function 'nope'", "toy_models.py:nope"]),
    ("factory-syntax-error",       lambda w: factory_file(w, "def build(:\n"),                       ["{inputs}/nets.py", "cannot import", "line 1"]),
    ("factory-not-a-module",       lambda w: factory_file(w, "def build():\n    return 3\n"),         ["nets.py:build", "returned int", "torch.nn.Module"]),
    ("image-size-too-small",       lambda w: w.set("--image-size", 2),                              ["--image-size", "at least 8"]),
    ("image-size-not-a-number",    lambda w: w.set("--image-size", "big"),                          ["--image-size", "'big'", "net2brain layers --help"]),
    ("device-unknown",             lambda w: w.add("--device", "tpu"),                               ["'tpu'", "use auto, cpu"]),
    ("config-unknown-key",         lambda w: config(w, "image_sise: 16\n"),                          ["{inputs}/options.yaml", "unknown option 'image-sise'", "closest: image-size"]),
    ("config-wrong-type",          lambda w: config(w, "image-size: 16.5\n"),                        ["{inputs}/options.yaml", "'image-size'", "whole number"]),
    ("config-invalid-yaml",        lambda w: config(w, "image-size: : 16\n"),                        ["{inputs}/options.yaml", "not valid YAML", "line 1"]),
    ("config-a-string",            lambda w: config(w, "resnet18\n"),                                ["{inputs}/options.yaml", "must be a mapping", "not a str"]),
    ("hub-id-not-cached",          lambda w: model_spec(w, "nobody/not-cached"),                    ["the config of nobody/not-cached is not available", "AutoModel.from_pretrained('nobody/not-cached')", "save_pretrained"]),
    ("source-library-missing",     lambda w: (without_library(w, "transformers"), model_spec(w, "nobody/not-cached"), w.add("--source", "hf")),
     ["model source hf needs the transformers library", "pip install 'net2brain-fovex[hf]'"]),
    ("hub-id-library-missing",     lambda w: (without_library(w, "transformers"), model_spec(w, "nobody/not-cached")),
     ["unknown model 'nobody/not-cached'", "sources not installed, so not searched: hf (pip install 'net2brain-fovex[hf]')"]),
    ("pretrained-tag-with-a-tag",  lambda w: (model_spec(w, "RN50:openai"), w.add("--pretrained-tag", "yfcc15m")), ["--model 'RN50:openai' names a tag already", "leave out --pretrained-tag 'yfcc15m'"]),
]


@pytest.fixture
def layers_work(tmp_path, monkeypatch) -> Work:
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    w = Work(tmp_path, ["layers", factory("tiny_cnn"), "--image-size", 16])
    w.monkeypatch = monkeypatch
    return w


@pytest.mark.parametrize(("brk", "expected"), table(LAYERS))
def test_layers_refuses_bad_input(net2brain, layers_work, brk, expected):
    brk(layers_work)
    check_case(net2brain, layers_work, expected)


# ------------------------------------------------------------------ net2brain extract


def list_file(w: Work, *lines: str) -> None:
    w.set("--stimuli", w.file("list.txt", "\n".join(lines) + "\n"))


def stimulus(w: Work, name: str, data: bytes) -> None:
    (w.inputs / "stim" / name).write_bytes(data)


def video_model(w: Work, *extra) -> None:
    """r3d_18 (random weights, 32 px, its fc layer) on two videos of 10 and 12 frames."""
    folder = w.inputs / "videos"
    folder.mkdir()
    write_video(folder / "a.mp4", 10)
    write_video(folder / "b.mp4", 12)
    w.set("--model", "r3d_18")
    w.set("--image-size", 32)
    w.set("--stimuli", folder)
    w.add("--layers", "fc", *extra)


def zoo_model(w: Work, name: str, *extra) -> None:
    """A model of a source with its pretrained weights (none are in the tests' caches)."""
    w.set("--model", name)
    w.set("--weights", "pretrained")
    w.add(*extra)


def text_model_folder(w: Work) -> None:
    """A transformers folder (save_pretrained) of a tiny BERT: a text model."""
    import transformers

    config = transformers.BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                     vocab_size=64)
    transformers.BertModel(config).save_pretrained(w.inputs / "bert")
    w.set("--model", w.inputs / "bert")


EXTRACT = [
    # case id                      how the input is broken                                          the message says
    ("stimuli-missing",            lambda w: w.set("--stimuli", w.inputs / "nowhere"),              ["{inputs}/nowhere", "does not exist", "give a folder"]),
    ("stimuli-folder-empty",       lambda w: w.set("--stimuli", w.folder("empty")),                 ["{inputs}/empty", "holds no images or videos"]),
    ("stimuli-folder-unreadable",  lambda w: unreadable(w.inputs / "stim"),                         ["{inputs}/stim", "not readable"], NOT_AS_ROOT),
    ("stimuli-a-single-image",     lambda w: w.set("--stimuli", w.inputs / "stim" / "img_1.png"),   ["img_1.png", "single stimulus", "give its folder"]),
    ("list-empty",                 lambda w: list_file(w, "# nothing here", ""),                    ["{inputs}/list.txt", "lists no files"]),
    ("list-names-an-image-twice",  lambda w: list_file(w, "stim/img_1.png", "stim/img_1.png"),      ["list.txt, line 2", "listed twice", "unique"]),
    ("list-names-a-missing-file",  lambda w: list_file(w, "stim/img_1.png", "stim/gone.png"),       ["list.txt, line 2", "gone.png does not exist"]),
    ("list-names-a-text-file",     lambda w: list_file(w, "notes.txt"),                             ["list.txt, line 1", "'notes.txt' is not an image or video"]),
    ("list-not-text",              lambda w: w.set("--stimuli", w.file("list.txt", b"\xff\xfe\x00\x81")), ["{inputs}/list.txt", "cannot read stimulus list", "UTF-8"]),
    ("list-unreadable",            lambda w: (list_file(w, "stim/img_1.png"), unreadable(w.inputs / "list.txt")), ["{inputs}/list.txt", "not readable"], NOT_AS_ROOT),
    ("image-corrupt",              lambda w: stimulus(w, "img_2.png", b"not an image"),              ["img_2.png", "cannot decode image", "replace or remove"]),
    ("image-truncated-png",        lambda w: cut_tail(w.inputs / "stim" / "img_2.png", 0.6),        ["img_2.png", "cannot decode image", "replace or remove"]),
    ("image-unreadable",           lambda w: unreadable(w.inputs / "stim" / "img_2.png"),           ["img_2.png", "replace or remove"], NOT_AS_ROOT),
    ("video-corrupt",              lambda w: stimulus(w, "clip.mp4", b"\x00\x00\x00\x18ftypmp42 junk"), ["clip.mp4", "cannot decode video", "replace or remove"]),
    ("model-unknown",              lambda w: w.set("--model", "resnet_19"),                         ["unknown model 'resnet_19'", "resnet18"]),
    ("layer-unknown",              lambda w: w.add("--layers", "features.0,heads"),                  ["unknown layer 'heads'", "closest: head", "net2brain layers"]),
    ("weights-missing",            lambda w: w.set("--weights", w.inputs / "gone.pth"),             ["{inputs}/gone.pth", "does not exist"]),
    ("weights-a-folder",           lambda w: w.set("--weights", w.folder("w.pth")),                 ["{inputs}/w.pth", "is a folder"]),
    ("weights-corrupt",            lambda w: w.set("--weights", w.file("w.pth", b"PK\x03\x04 junk")), ["{inputs}/w.pth", "cannot load weights", "state dict"]),
    ("tokens-cls-without-token",   lambda w: w.add("--tokens", "cls"),                               ["--tokens", "no class token", "use --tokens mean"]),
    ("reduce-not-understood",      lambda w: w.add("--reduce", "pca:4"),                             ["--reduce 'pca:4'", "use srp:N"]),
    ("frames-zero",                lambda w: w.add("--frames", 0),                                   ["--frames", "at least 1"]),
    ("batch-size-zero",            lambda w: w.set("--batch-size", 0),                              ["--batch-size", "at least 1"]),
    ("dtype-unknown",              lambda w: w.add("--dtype", "float64"),                            ["--dtype", "'float64'", "net2brain extract --help"]),
    ("per-frame-with-images",      lambda w: w.add("--per-frame"),                                  ["--per-frame needs videos", "img_1.png"]),
    ("shard-invalid",              lambda w: w.add("--shard", "3/2"),                               ["3/2", "0 <= I < N"]),
    ("resume-with-overwrite",      lambda w: w.add("--resume", "--overwrite"),                      ["--resume", "--overwrite", "one of them"]),
    ("partial-left-over",          lambda w: (w.out / "acts.h5.partial").write_bytes(b"rows"),      ["{out}/acts.h5.partial", "--resume", "--overwrite"]),
    ("out-folder-a-file",          lambda w: (file_at(w.out / "sub"), w.set("--out", w.out / "sub" / "acts.h5")), ["{out}/sub", "is a file, not a folder"]),
    ("out-is-a-folder",            lambda w: (w.out / "acts.h5").mkdir(),                            ["{out}/acts.h5", "is a folder", "give a file name"]),
    ("out-exists",                 lambda w: (w.out / "acts.h5").write_bytes(b"old"),                ["{out}/acts.h5", "exists already", "--overwrite"]),
    ("device-unknown",             lambda w: w.add("--device", "tpu"),                               ["'tpu'", "use auto, cpu"]),
    ("config-unknown-key",         lambda w: config(w, "batch-sise: 4\n"),                           ["{inputs}/options.yaml", "'batch-sise'", "closest: batch-size"]),
    ("config-wrong-type",          lambda w: config(w, "frames: eight\n"),                           ["{inputs}/options.yaml", "'frames'", "whole number"]),
    ("config-invalid-yaml",        lambda w: config(w, "layers: [fc\n"),                             ["{inputs}/options.yaml", "not valid YAML", "line"]),
    ("config-a-list",              lambda w: config(w, "- batch-size\n- 4\n"),                       ["{inputs}/options.yaml", "must be a mapping", "not a list"]),
    ("clips-zero",                 lambda w: w.add("--clips", 0),                                    ["--clips", "at least 1"]),
    ("clips-not-a-number",         lambda w: w.add("--clips", "x"),                                  ["'--clips'", "(got 'x')", "net2brain extract --help"]),
    ("time-unknown",               lambda w: w.add("--time", "sometimes"),                           ["'--time'", "'sometimes'", "net2brain extract --help"]),
    ("per-clip-with-an-image-model", lambda w: w.add("--per-clip"),                                  ["--per-clip applies to video models", "is an image model", "--frames, --per-frame"]),
    ("clips-with-an-image-model",  lambda w: w.add("--clips", 2),                                    ["--clips applies to video models", "is an image model"]),
    ("per-frame-with-a-video-model", lambda w: video_model(w, "--per-frame"),                        ["model r3d_18 is a video model", "clips, not frames", "use --per-clip"]),
    ("clip-longer-than-a-video",   lambda w: video_model(w, "--frames", 11),                        ["{inputs}/videos/a.mp4 has 10 frames", "1 clip(s) of 11 frames need 11 frames", "lower --frames or --clips"]),
    ("model-clip-longer-than-a-video", lambda w: video_model(w),                                    ["{inputs}/videos/a.mp4 has 10 frames", "of 16 frames need 16 frames", "lower --frames"]),
    ("crop-pct-zero",              lambda w: w.add("--crop-pct", 0),                                 ["--crop-pct", "between 0 and 1", "got 0.0"]),
    ("interpolation-unknown",      lambda w: w.add("--interpolation", "lanczos"),                    ["'--interpolation'", "'lanczos'", "net2brain extract --help"]),
    ("resize-mode-unknown",        lambda w: w.add("--resize-mode", "longest"),                      ["'--resize-mode'", "'longest'", "net2brain extract --help"]),
    ("pretrained-tag-with-a-tag",  lambda w: (w.set("--model", "ViT-B-32:openai"), w.add("--pretrained-tag", "openai")), ["--model 'ViT-B-32:openai' names a tag already", "leave out --pretrained-tag 'openai'"]),
    ("pretrained-tag-with-a-factory", lambda w: w.add("--pretrained-tag", "openai"),                 ["toy_models.py:tiny_cnn' is a factory (file.py:function)", "leave out --pretrained-tag"]),
    ("pretrained-tag-of-a-torchvision-model", lambda w: (w.set("--model", "resnet18"), w.add("--pretrained-tag", "openai")), ["unknown model 'resnet18:openai'", "closest: resnet18", "!cannot import"]),
    ("pretrained-tag-with-a-file", lambda w: (w.set("--model", w.file("net.pt", b"PK\x03\x04 a model")), w.add("--pretrained-tag", "openai")),
     ["--model '{inputs}/net.pt' is a file or folder, not an open_clip model name", "leave out --pretrained-tag", "!cannot import"]),
    ("open-clip-tag-unknown",      lambda w: w.set("--model", "ViT-B-32:opena"),                    ["unknown model 'ViT-B-32:opena'", "closest: ViT-B-32:openai", "!cannot import"]),
    ("hf-hub-id-not-cached",       lambda w: zoo_model(w, "nobody/not-cached", "--source", "hf"),   ["the config of nobody/not-cached is not available", "AutoModel.from_pretrained('nobody/not-cached')", "pass the folder as --model"]),
    ("hf-folder-of-a-text-model",  text_model_folder,                                               ["{inputs}/bert (model type bert) is not a vision model", "it takes image classification"]),
    ("open-clip-weights-missing",  lambda w: zoo_model(w, "ViT-B-32:openai", "--source", "open_clip"), ["open_clip model ViT-B-32:openai are not in the Hugging Face cache", "open_clip_pytorch_model.bin", "--weights PATH"]),
    ("cornet-weights-missing",     lambda w: zoo_model(w, "cornet_z", "--source", "cornet"),        ["hub/checkpoints/cornet_z-5c427c9c.pth is missing", "https://s3.amazonaws.com/cornet-models/cornet_z-5c427c9c.pth", "--weights PATH"]),
    ("taskonomy-weights-missing",  lambda w: zoo_model(w, "taskonomy_normal", "--source", "taskonomy"), ["hub/checkpoints/normal_encoder-", "is missing", "visual-prior/raw/networks/assets/pytorch/normal_encoder-", "--weights PATH"]),
    ("detector-layer-not-per-stimulus", lambda w: (w.set("--model", "ssdlite320_mobilenet_v3_large"), w.set("--image-size", 64), w.add("--layers", "anchor_generator")),
     ["unknown layer 'anchor_generator'", "(3234, 4) for one stimulus, is not one row per stimulus", "net2brain layers MODEL", "!does not run"]),
]


@pytest.fixture
def extract_work(tmp_path) -> Work:
    stimuli = write_images(tmp_path / "in" / "stim", 3, size=20)
    (tmp_path / "in" / "notes.txt").write_text("not a stimulus")
    (tmp_path / "out").mkdir()
    return Work(tmp_path, ["extract", *MODEL, "--stimuli", stimuli, "--out", tmp_path / "out" / "acts.h5", "--batch-size", 2])


@pytest.mark.parametrize(("brk", "expected"), table(EXTRACT))
def test_extract_refuses_bad_input(net2brain, extract_work, brk, expected):
    brk(extract_work)
    check_case(net2brain, extract_work, expected)


# ------------------------------------------------------------------ net2brain rdm


def activations(w: Work, path: Path) -> None:
    w.set("--activations", path)


def acts_edit(change):
    return lambda w: edit_h5(w.inputs / "acts.h5", change)


def from_betas(w: Work, betas=("sub-1.nii.gz",), masks=("V1.nii.gz",), *extra) -> None:
    """The brain-data form: rdm --betas ... --mask ..."""
    w.drop("--activations")
    w.add(*[a for name in betas for a in ("--betas", w.inputs / name)], *[a for name in masks for a in ("--mask", w.inputs / name)], *extra)


def nan_voxel(w: Work) -> None:
    data = nib.load(w.inputs / "sub-1.nii.gz").get_fdata(dtype=np.float32)
    data[0, 0, 0, 2] = np.nan
    nifti(w.inputs / "sub-1.nii.gz", data)
    from_betas(w)


def nan_roi(w: Work) -> None:
    data = nib.load(w.inputs / "sub-1.nii.gz").get_fdata(dtype=np.float32)
    data[0:2, 0:2, 0:2, 4] = np.nan
    nifti(w.inputs / "sub-1.nii.gz", data)
    from_betas(w)


def responses(w: Work, array) -> None:
    np.save(w.inputs / "sub-1.npy", array)
    w.drop("--activations")
    w.add("--responses", w.inputs / "sub-1.npy")


def rdm_written(w: Work) -> None:
    from net2brain_fovex.brain.rdm_files import read_rdm_file

    assert read_rdm_file(w.out / "rdms.h5").rdms["V1"].shape == (1, N, N)


def nan_row_of_the_constant_stimulus(w: Work) -> None:
    """README (`net2brain rdm`): a correlation with a constant pattern is NaN, with a warning."""
    with h5py.File(w.out / "rdms.h5") as file:
        fc = file["rdms/fc"][()]
    assert np.isnan(fc[2, [0, 1, 3, 4, 5]]).all() and np.isfinite(np.delete(np.delete(fc, 2, 0), 2, 1)).all()


RDM = [
    # case id                      how the input is broken                                          the message says
    ("activations-missing",        lambda w: activations(w, w.inputs / "gone.h5"),                  ["{inputs}/gone.h5", "does not exist", "net2brain extract"]),
    ("activations-a-folder",       lambda w: activations(w, w.folder("dir.h5")),                    ["{inputs}/dir.h5", "is a folder"]),
    ("activations-unreadable",     lambda w: unreadable(w.inputs / "acts.h5"),                      ["{inputs}/acts.h5", "not readable"], NOT_AS_ROOT),
    ("activations-truncated",      lambda w: cut_tail(w.inputs / "acts.h5"),                        ["{inputs}/acts.h5", "not a readable HDF5 file"]),
    ("activations-not-hdf5",       lambda w: activations(w, w.file("text.h5", "image,x\n")),        ["{inputs}/text.h5", "not a readable HDF5 file"]),
    ("activations-are-rdms",       lambda w: activations(w, model_rdms(w.inputs / "rdms.h5")),      ["{inputs}/rdms.h5", "holds rdms, expected activations", "net2brain extract"]),
    ("activations-two-layouts",    acts_edit(lambda f: (f.attrs.__delitem__("kind"), f.create_group("rdms"))), ["{inputs}/acts.h5", "layouts of activations and rdms", "kind='activations'"]),
    ("activations-no-kind-nor-layout", acts_edit(lambda f: (f.attrs.__delitem__("kind"), f.__delitem__("layers"))), ["{inputs}/acts.h5", "holds unknown data, expected activations", "f.attrs['kind'] = 'activations'"]),
    ("activations-no-layers",      acts_edit(lambda f: [f["layers"].__delitem__(n) for n in list(f["layers"])]), ["{inputs}/acts.h5", "no layers", "net2brain extract"]),
    ("activations-no-rows",        lambda w: activations(w, write_activations(w.inputs / "zero.h5", {"fc": np.zeros((0, 5), np.float32)}, [])), ["{inputs}/zero.h5", "0 stimuli", "at least 2"]),
    ("activations-rows-mismatch",  acts_edit(replace_dataset("layers/fc", lambda a: a[:4])),          ["{inputs}/acts.h5", "'fc'", "4 rows", "6 stimuli"]),
    ("activations-strings",        acts_edit(replace_dataset("layers/fc", lambda a: a.astype("S8"))), ["{inputs}/acts.h5", "'fc'", "numbers"]),
    ("activations-nan",            acts_edit(set_value("layers/conv", (2, 1, 0, 0), np.nan)),        ["{inputs}/acts.h5", "'conv'", "NaN", "remove or impute"]),
    ("activations-inf",            acts_edit(set_value("layers/conv", (0, 0, 1, 2), np.inf)),         ["{inputs}/acts.h5", "'conv'", "infinite", "remove or impute"]),
    ("activations-id-twice",       acts_edit(replace_dataset("stimuli", lambda s: s[[0, 1, 2, 3, 4, 0]])), ["{inputs}/acts.h5", "'img_1.png'", "twice"]),
    ("layer-unknown",              lambda w: w.add("--layers", "fc,pool"),                           ["unknown layer 'pool'", "{inputs}/acts.h5 holds 2 layers"]),
    ("metric-unknown",             lambda w: w.add("--metric", "mahalanobis"),                       ["--metric", "'mahalanobis'", "net2brain rdm --help"]),
    ("format-unknown",             lambda w: w.add("--format", "matlab"),                            ["--format", "'matlab'", "net2brain rdm --help"]),
    ("rsatoolbox-out-not-h5",      lambda w: (w.set("--out", w.out / "rdms.rdm"), w.add("--format", "rsatoolbox")), ["--out", "{out}/rdms.rdm", ".h5 or .hdf5", "rsatoolbox"]),
    ("memory-zero",                lambda w: w.add("--memory", 0),                                   ["--memory", "at least 1 MB"]),
    ("plot-folder-a-file",         lambda w: w.add("--plot", file_at(w.out / "plots")),              ["--plot", "{out}/plots", "is a file, not a folder"]),
    ("labels-without-plot",        lambda w: w.add("--labels", w.file("labels.csv", LABELS)),       ["--labels", "give --plot"]),
    ("thumbnails-without-plot",    lambda w: w.add("--thumbnails", write_images(w.inputs / "six", N, size=8, names=IDS)), ["--thumbnails", "give --plot"]),
    ("labels-missing",             lambda w: labelled(w, None),                                     ["{inputs}/labels.csv does not exist", "header line naming stimulus, category"]),
    ("labels-no-category-column",  lambda w: labelled(w, LABELS.replace("category", "kind")),       ["{inputs}/labels.csv lacks the column(s) category", "header must name stimulus, category"]),
    ("labels-stimulus-twice",      lambda w: labelled(w, LABELS + "img_1.png,b\n"),                 ["lists stimulus 'img_1.png' twice (line 8)"]),
    ("labels-unknown-stimulus",    lambda w: labelled(w, LABELS + "img_9.png,b\n"),                 ["lists 'img_9.png', not a stimulus of the RDMs", "use the RDM file's stimulus ids"]),
    ("labels-stimulus-missing",    lambda w: labelled(w, LABELS.replace("img_6.png,b\n", "")),      ["no category for stimulus 'img_6.png'", "give every stimulus a row"]),
    ("thumbnails-folder-missing",  lambda w: w.add("--plot", w.out / "plots", "--thumbnails", w.inputs / "gone"), ["--thumbnails {inputs}/gone does not exist", "folder of the stimulus images"]),
    ("thumbnails-image-missing",   lambda w: thumbnails(w, drop="img_4.png"),                       ["--thumbnails image {inputs}/six/img_4.png does not exist"]),
    ("thumbnails-image-damaged",   lambda w: thumbnails(w, damage="img_2.png"),                     ["--thumbnails image {inputs}/six/img_2.png is not a readable image"]),
    ("out-exists",                 lambda w: (w.out / "rdms.h5").write_bytes(b"old"),                ["{out}/rdms.h5", "exists already", "--overwrite"]),
    ("activations-and-responses",  lambda w: w.add("--responses", w.inputs / "sub-1.npy"),          ["--activations", "--responses", "exactly one"]),
    ("mask-without-betas",         lambda w: w.add("--mask", w.inputs / "V1.nii.gz"),               ["--mask", "--betas"]),
    ("betas-without-mask",         lambda w: from_betas(w, masks=()),                               ["--betas", "--mask"]),
    ("betas-missing",              lambda w: from_betas(w, betas=("gone.nii.gz",)),                 ["{inputs}/gone.nii.gz", "does not exist"]),
    ("betas-truncated-nifti",      lambda w: (cut_tail(w.inputs / "sub-1.nii.gz"), from_betas(w)),  ["{inputs}/sub-1.nii.gz", "cannot read", "NIfTI"]),
    ("betas-not-nifti",            lambda w: (w.file("sub-1.nii.gz", b"\x1f\x8b garbage"), from_betas(w)), ["{inputs}/sub-1.nii.gz", "cannot read", "NIfTI"]),
    ("betas-3d",                   lambda w: from_betas(w, betas=("V1.nii.gz",)),                   ["{inputs}/V1.nii.gz", "3 dimensions", "4D volume"]),
    ("mask-of-another-grid",       lambda w: from_betas(w, masks=("small.nii.gz",)),                ["{inputs}/small.nii.gz", "(3, 3, 3)", "resample"]),
    ("mask-selects-only-nan",      nan_roi,                                                         ["{inputs}/V1.nii.gz", "no usable voxel", "{inputs}/sub-1.nii.gz"]),
    ("activations-constant-row",   acts_edit(set_value("layers/fc", np.s_[2], 0.5)),                 Accepted(["warning", "constant", "NaN"], nan_row_of_the_constant_stimulus)),
    ("betas-nan-voxel-left-out",   nan_voxel,                                                       Accepted(["1 voxel(s) of V1 hold NaN"], rdm_written)),
    ("betas-subjects-differ",      lambda w: from_betas(w, ("sub-1.nii.gz", "sub-5.nii.gz")),       ["{inputs}/sub-5.nii.gz", "5 volumes", "one volume per stimulus"]),
    ("betas-stimuli-count",        lambda w: from_betas(w, ("sub-1.nii.gz",), ("V1.nii.gz",), "--stimuli", w.inputs / "four"), ["--stimuli", "{inputs}/four", "4 stimuli", "6"]),
    ("responses-nan",              lambda w: responses(w, np.where(np.eye(N, 4) > 0, np.nan, 1.0)), ["{inputs}/sub-1.npy", "NaN", "remove or impute"]),
    ("responses-strings",          lambda w: responses(w, np.array([["a"] * 4] * N)),               ["{inputs}/sub-1.npy", "must be numbers"]),
    ("config-unknown-key",         lambda w: config(w, "metrik: euclidean\n"),                       ["{inputs}/options.yaml", "unknown option 'metrik'", "closest: metric"]),
    ("config-wrong-type",          lambda w: config(w, "memory: lots\n"),                            ["{inputs}/options.yaml", "'memory'", "whole number"]),
    ("config-invalid-yaml",        lambda w: config(w, "metric: 'euclidean\n"),                      ["{inputs}/options.yaml", "not valid YAML"]),
    ("config-a-number",            lambda w: config(w, "42\n"),                                      ["{inputs}/options.yaml", "must be a mapping", "not a int"]),
]


LABELS = "stimulus,category\n" + "".join(f"{s},{'a' if i < N // 2 else 'b'}\n" for i, s in enumerate(IDS))


def labelled(w: Work, text: str | None) -> None:
    """--plot with --labels holding `text` (None: a file that does not exist)."""
    path = w.file("labels.csv", text) if text is not None else w.inputs / "labels.csv"
    w.add("--plot", w.out / "plots", "--labels", path)


def thumbnails(w: Work, drop: str | None = None, damage: str | None = None) -> None:
    """--plot with --thumbnails of the stimulus images, one left out or damaged."""
    folder = write_images(w.inputs / "six", N, size=8, names=IDS)
    if drop:
        (folder / drop).unlink()
    if damage:
        cut_tail(folder / damage, 0.5)
    w.add("--plot", w.out / "plots", "--thumbnails", folder)


@pytest.fixture
def rdm_work(tmp_path) -> Work:
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_activations(inputs / "acts.h5")
    volume(inputs / "sub-1.nii.gz")
    volume(inputs / "sub-5.nii.gz", n=5, seed=5)
    mask(inputs / "V1.nii.gz")
    mask(inputs / "small.nii.gz", shape=(3, 3, 3))
    np.save(inputs / "sub-1.npy", RNG.normal(size=(N, 4)))
    write_images(inputs / "four", 4, size=8)
    (tmp_path / "out").mkdir()
    return Work(tmp_path, ["rdm", "--activations", inputs / "acts.h5", "--out", tmp_path / "out" / "rdms.h5"])


@pytest.mark.parametrize(("brk", "expected"), table(RDM))
def test_rdm_refuses_bad_input(net2brain, rdm_work, brk, expected):
    brk(rdm_work)
    check_case(net2brain, rdm_work, expected)


# ------------------------------------------------------------------ net2brain rsa


def model_edit(change):
    return lambda w: edit_h5(w.inputs / "model.h5", change)


def brain_edit(change):
    return lambda w: edit_h5(w.inputs / "brain.h5", change)


def rsatoolbox_pickle(path: Path) -> Path:
    """A file as rsatoolbox's `RDMs.save(path, file_type='pkl')` writes it (a pickled dict)."""
    path.write_bytes(pickle.dumps({"dissimilarities": np.ones((1, N * (N - 1) // 2)), "descriptors": {},
                                   "rdm_descriptors": {}, "pattern_descriptors": {}, "dissimilarity_measure": None}))
    return path


def brain_file(w: Work, path: Path) -> None:
    w.set("--brain-rdms", path)


def model_file(w: Work, path: Path) -> None:
    w.set("--model-rdms", path)


RSA = [
    # case id                      how the input is broken                                          the message says
    ("model-rdms-missing",         lambda w: model_file(w, w.inputs / "gone.h5"),                   ["{inputs}/gone.h5", "does not exist", "net2brain rdm"]),
    ("model-rdms-a-folder",        lambda w: model_file(w, w.folder("dir.h5")),                     ["{inputs}/dir.h5", "is a folder"]),
    ("model-rdms-unreadable",      lambda w: unreadable(w.inputs / "model.h5"),                     ["{inputs}/model.h5", "not readable"], NOT_AS_ROOT),
    ("model-rdms-truncated",       lambda w: cut_tail(w.inputs / "model.h5"),                       ["{inputs}/model.h5", "not a readable HDF5 file"]),
    ("model-rdms-not-hdf5",        lambda w: model_file(w, w.file("text.h5", "a,b\n")),             ["{inputs}/text.h5", "not a readable HDF5 file"]),
    ("model-rdms-are-activations", lambda w: model_file(w, write_activations(w.inputs / "acts.h5")), ["{inputs}/acts.h5", "holds activations, expected rdms", "net2brain rdm"]),
    ("model-rdms-none",            model_edit(lambda f: [f["rdms"].__delitem__(n) for n in list(f["rdms"])]), ["{inputs}/model.h5", "holds no RDMs", "net2brain rdm"]),
    ("model-rdm-not-square",       model_edit(replace_dataset("rdms/a", lambda m: m[:, :5])),         ["{inputs}/model.h5", "'a'", "not square"]),
    ("model-rdm-3d",               model_edit(replace_dataset("rdms/a", lambda m: np.stack([m, m]))), ["{inputs}/model.h5", "'a'", "(2, 6, 6)", "(stimuli, stimuli)"]),
    ("model-rdm-strings",          model_edit(replace_dataset("rdms/a", lambda m: m.astype("S8"))),   ["{inputs}/model.h5", "'a'", "numbers"]),
    ("model-rdm-nan",              model_edit(set_value("rdms/b", (1, 4), np.nan)),                  ["{inputs}/model.h5", "'b'", "NaN", "(1, 4)"]),
    ("model-rdm-one-stimulus-short", lambda w: model_file(w, model_rdms(w.inputs / "five.h5", IDS[:5], n=5)), ["has 6 stimuli", "{inputs}/five.h5 have 5"]),
    ("model-id-twice",             model_edit(replace_dataset("stimuli", lambda s: s[[0, 1, 2, 3, 4, 4]])), ["{inputs}/model.h5", "'img_5.png'", "twice"]),
    ("brain-rdms-missing",         lambda w: brain_file(w, w.inputs / "gone.npz"),                  ["{inputs}/gone.npz", "does not exist", "folder of files"]),
    ("brain-rdms-folder-empty",    lambda w: brain_file(w, w.folder("brain_data")),                 ["{inputs}/brain_data", "holds no"]),
    ("brain-rdms-unknown-type",    lambda w: brain_file(w, w.file("brain.csv", "1,2\n")),           ["{inputs}/brain.csv", "unsupported file type", ".npz"]),
    ("brain-rdms-are-activations", lambda w: brain_file(w, write_activations(w.inputs / "acts.h5")), ["{inputs}/acts.h5", "holds activations, expected rdms"]),
    ("brain-rdms-no-rois",         brain_edit(lambda f: f["rdms"].__delitem__("V1")),                ["{inputs}/brain.h5", "holds no RDMs"]),
    ("brain-rdm-inf",              brain_edit(set_value("rdms/V1", (2, 0, 3), np.inf)),              ["{inputs}/brain.h5", "'V1'", "infinite", "(2, 0, 3)"]),
    ("brain-rdm-asymmetric",       brain_edit(replace_dataset("rdms/V1", lambda m: m + np.triu(np.ones((N, N)), 1))), ["{inputs}/brain.h5", "'V1'", "not symmetric"]),
    ("brain-ids-mismatch",         lambda w: brain_file(w, brain_rdms(w.inputs / "other.h5", [f"x{i}" for i in range(N)])), ["{inputs}/other.h5", "stimulus ids differ", "x0"]),
    ("brain-id-twice",             brain_edit(replace_dataset("stimuli", lambda s: s[[0, 1, 2, 3, 4, 0]])), ["{inputs}/brain.h5", "'img_1.png'", "twice"]),
    ("brain-npz-corrupt",          lambda w: brain_file(w, cut_tail(npz(w.inputs / "IT.npz", np.zeros((2, N, N))), 0.6)), ["{inputs}/IT.npz", "cannot read", "npz"]),
    ("brain-npz-2d",               lambda w: brain_file(w, npz(w.inputs / "IT.npz", np.zeros((N, N)))), ["{inputs}/IT.npz", "'IT'", "(subjects, n, n)"]),
    ("brain-npz-strings",          lambda w: brain_file(w, npz(w.inputs / "IT.npz", np.full((2, N, N), "a"))), ["{inputs}/IT.npz", "numbers"]),
    ("model-rdms-rsatoolbox-pickle", lambda w: model_file(w, rsatoolbox_pickle(w.inputs / "rdms.pkl")), ["{inputs}/rdms.pkl", "is a pickle", "can run code", "file_type='hdf5'"]),
    ("brain-rdms-rsatoolbox-pickle", lambda w: brain_file(w, rsatoolbox_pickle(w.inputs / "brain.pkl")), ["{inputs}/brain.pkl", "is a pickle", "can run code", "file_type='hdf5'"]),
    ("layer-unknown",              lambda w: w.add("--layers", "a,c"),                              ["unknown layer 'c'", "{inputs}/model.h5 holds 2 RDMs"]),
    ("compare-unknown",            lambda w: w.add("--compare", "cosine"),                           ["--compare", "'cosine'", "net2brain rsa --help"]),
    ("folds-one",                  lambda w: w.add("--weighted", "--folds", 1),                      ["--folds", "at least 2"]),
    ("bootstrap-negative",         lambda w: w.add("--bootstrap", -1),                               ["--bootstrap", "-1", "0 or more"]),
    ("out-exists",                 lambda w: (w.out / "rsa.csv").write_text("old"),                 ["{out}/rsa.csv", "exists already", "--overwrite"]),
    ("plot-folder-a-file",         lambda w: w.add("--plot", file_at(w.out / "figs") / "rsa.png"),   ["{out}/figs", "is a file, not a folder"]),
    ("config-unknown-key",         lambda w: config(w, "comparison: pearson\n"),                     ["{inputs}/options.yaml", "unknown option 'comparison'", "closest: compare"]),
    ("config-wrong-type",          lambda w: config(w, "squared: sometimes\n"),                      ["{inputs}/options.yaml", "'squared'", "true or false"]),
    ("config-invalid-yaml",        lambda w: config(w, "compare: pearson\n  folds: 3\n"),            ["{inputs}/options.yaml", "not valid YAML", "line 2"]),
    ("config-a-list",              lambda w: config(w, "[compare, pearson]\n"),                      ["{inputs}/options.yaml", "must be a mapping", "not a list"]),
]


@pytest.fixture
def rsa_work(tmp_path) -> Work:
    inputs = tmp_path / "in"
    inputs.mkdir()
    model_rdms(inputs / "model.h5")
    brain_rdms(inputs / "brain.h5")
    (tmp_path / "out").mkdir()
    return Work(tmp_path, ["rsa", "--model-rdms", inputs / "model.h5", "--brain-rdms", inputs / "brain.h5",
                           "--out", tmp_path / "out" / "rsa.csv"])


@pytest.mark.parametrize(("brk", "expected"), table(RSA))
def test_rsa_refuses_bad_input(net2brain, rsa_work, brk, expected):
    brk(rsa_work)
    check_case(net2brain, rsa_work, expected)


# ------------------------------------------------------------------ net2brain cka


def against_file(w: Work, path: Path) -> None:
    w.set("--against", path)


def against_brain(w: Work, *args) -> None:
    """Model vs brain: --betas / --mask / --responses ... instead of --against."""
    w.drop("--against")
    w.add(*[w.inputs / a if isinstance(a, str) and not a.startswith("--") else a for a in args])


CKA = [
    # case id                      how the input is broken                                          the message says
    ("against-ids-mismatch",       lambda w: against_file(w, write_activations(w.inputs / "other.h5", stimuli=[f"x{i}" for i in range(N)])),
     ["stimulus ids differ", "{inputs}/other.h5", "missing from the --against file: img_1.png", "x0"]),
    ("against-other-count",        lambda w: against_file(w, write_activations(w.inputs / "five.h5", {"fc": RNG.normal(size=(5, 5))}, IDS[:5])),
     ["stimulus ids differ", "{inputs}/five.h5", "img_6.png"]),
    ("debiased-three-stimuli",     lambda w: activations(w, write_activations(w.inputs / "three.h5", {"fc": RNG.normal(size=(3, 5))}, IDS[:3])),
     ["{inputs}/three.h5", "3 stimuli", "at least 4", "--estimator biased"]),
    ("activations-nan",            acts_edit(set_value("layers/conv", (2, 1, 0, 0), np.nan)),        ["{inputs}/acts.h5", "'conv'", "NaN", "remove or impute"]),
    ("against-inf",                lambda w: edit_h5(w.inputs / "b.h5", set_value("layers/fc", (1, 3), np.inf)), ["{inputs}/b.h5", "'fc'", "infinite"]),
    ("layer-unknown",              lambda w: w.add("--layers", "fc,pool"),                           ["unknown layer 'pool'", "{inputs}/acts.h5 holds 2 layers"]),
    ("against-layer-unknown",      lambda w: w.add("--against-layers", "head,pool"),                 ["unknown layer 'pool'", "{inputs}/b.h5 holds 2 layers"]),
    ("activations-missing",        lambda w: activations(w, w.inputs / "gone.h5"),                  ["{inputs}/gone.h5", "does not exist", "net2brain extract"]),
    ("against-are-rdms",           lambda w: against_file(w, model_rdms(w.inputs / "rdms.h5")),     ["{inputs}/rdms.h5", "holds rdms, expected activations"]),
    ("estimator-unknown",          lambda w: w.add("--estimator", "unbiased"),                       ["--estimator", "'unbiased'", "net2brain cka --help"]),
    ("permutations-negative",      lambda w: w.add("--permutations", -1),                            ["--permutations", "-1", "0 or more"]),
    ("permutations-beyond-range",  lambda w: w.add("--permutations", 10**7),                         ["--permutations", "at most 1000000"]),
    ("seed-negative",              lambda w: w.add("--seed", -2),                                    ["--seed", "0 or more"]),
    ("no-second-side",             lambda w: w.drop("--against"),                                   ["exactly one of --against", "--betas", "--responses"]),
    ("against-and-responses",      lambda w: w.add("--responses", w.inputs / "sub-1.npy"),          ["exactly one of --against"]),
    ("responses-other-count",      lambda w: against_brain(w, "--responses", "sub-1.npy", "--responses", "sub-5.npy"), ["{inputs}/sub-5.npy", "5 stimuli", "{inputs}/acts.h5 6"]),
    ("responses-nan",              lambda w: (np.save(w.inputs / "nan.npy", np.where(np.eye(N, 4) > 0, np.nan, 1.0)), against_brain(w, "--responses", "nan.npy")),
     ["{inputs}/nan.npy", "NaN", "remove or impute"]),
    ("betas-other-count",          lambda w: against_brain(w, "--betas", "sub-5.nii.gz", "--mask", "V1.nii.gz"), ["{inputs}/sub-5.nii.gz", "5 stimuli", "6"]),
    ("betas-without-mask",         lambda w: against_brain(w, "--betas", "sub-1.nii.gz"),           ["--betas", "--mask"]),
    ("stimuli-ids-mismatch",       lambda w: against_brain(w, "--betas", "sub-1.nii.gz", "--mask", "V1.nii.gz", "--stimuli", "other_stim"),
     ["stimulus ids differ", "{inputs}/other_stim", "pic_1.png"]),
    ("out-exists",                 lambda w: (w.out / "cka.csv").write_text("old"),                 ["{out}/cka.csv", "exists already", "--overwrite"]),
    ("out-is-the-activations",     lambda w: (w.set("--out", link(w.out / "cka.csv", w.inputs / "acts.h5")), w.add("--overwrite")),
     ["--out {out}/cka.csv is an input of this run (--activations)"]),
    ("plot-folder-a-file",         lambda w: w.add("--plot", file_at(w.out / "figs") / "cka.png"),   ["{out}/figs", "is a file, not a folder"]),
    ("config-unknown-key",         lambda w: config(w, "estimater: biased\n"),                      ["{inputs}/options.yaml", "unknown option 'estimater'", "closest: estimator"]),
    ("config-wrong-type",          lambda w: config(w, "permutations: many\n"),                     ["{inputs}/options.yaml", "'permutations'", "whole number"]),
]


@pytest.fixture
def cka_work(tmp_path) -> Work:
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_activations(inputs / "acts.h5")
    write_activations(inputs / "b.h5", {"fc": RNG.normal(size=(N, 5)), "head": RNG.normal(size=(N, 3))},
                      stimuli=IDS[::-1])
    volume(inputs / "sub-1.nii.gz")
    volume(inputs / "sub-5.nii.gz", n=5, seed=5)
    mask(inputs / "V1.nii.gz")
    np.save(inputs / "sub-1.npy", RNG.normal(size=(N, 4)))
    np.save(inputs / "sub-5.npy", RNG.normal(size=(5, 4)))
    write_images(inputs / "other_stim", N, size=8, names=[f"pic_{i}.png" for i in range(1, N + 1)])
    (tmp_path / "out").mkdir()
    return Work(tmp_path, ["cka", "--activations", inputs / "acts.h5", "--against", inputs / "b.h5",
                           "--out", tmp_path / "out" / "cka.csv"])


@pytest.mark.parametrize(("brk", "expected"), table(CKA))
def test_cka_refuses_bad_input(net2brain, cka_work, brk, expected):
    brk(cka_work)
    check_case(net2brain, cka_work, expected)


# ------------------------------------------------------------------ net2brain searchlight

GRID = (5, 5, 4)


def betas(w: Work, *names: str) -> None:
    """Replace the --betas volumes by these input files."""
    w.drop("--betas")
    w.args[1:1] = [a for name in names for a in ("--betas", str(w.inputs / name))]


def precomputed(w: Work, path: Path, *extra) -> None:
    """The precomputed form: --searchlight-rdms FILE instead of --betas, --mask, --radius."""
    w.drop("--betas", "--mask", "--radius")
    w.add("--searchlight-rdms", path, "--reference", w.inputs / "mask.nii.gz", *extra)


def searchlight_rdms(w: Work, shape=(4, 2, N, N)) -> Path:
    rdms = np.broadcast_to(compute_rdm(RNG.normal(size=(N, 3)), precision="double"), shape).copy()
    return npz(w.inputs / "sl.npz", rdms, centres=np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2], [3, 3, 3]]))


def nan_in_volume(w: Work, box) -> None:
    data = nib.load(w.inputs / "sub-2.nii.gz").get_fdata(dtype=np.float32)
    data[box] = np.nan
    nifti(w.inputs / "sub-2.nii.gz", data)


def nan_at_the_voxel(w: Work) -> None:
    """README: voxels whose responses are unusable in a subject get NaN (there only)."""
    assert np.isnan(nib.load(w.out / "sl" / "sub-2_a.nii.gz").get_fdata()[1, 2, 3])
    assert np.isfinite(nib.load(w.out / "sl" / "sub-1_a.nii.gz").get_fdata()[1, 2, 3])


SEARCHLIGHT = [
    # case id                      how the input is broken                                          the message says
    ("betas-missing",              lambda w: betas(w, "sub-1.nii.gz", "gone.nii.gz"),              ["{inputs}/gone.nii.gz", "does not exist"]),
    ("betas-a-folder",             lambda w: (w.folder("dir.nii.gz"), betas(w, "dir.nii.gz")),      ["{inputs}/dir.nii.gz", "is a folder"]),
    ("betas-unreadable",           lambda w: unreadable(w.inputs / "sub-2.nii.gz"),                 ["{inputs}/sub-2.nii.gz", "not readable"], NOT_AS_ROOT),
    ("betas-truncated-nifti",      lambda w: cut_tail(w.inputs / "sub-2.nii.gz"),                   ["{inputs}/sub-2.nii.gz", "cannot read", "NIfTI"]),
    ("betas-not-nifti",            lambda w: w.file("sub-2.nii.gz", "subject 2\n"),                 ["{inputs}/sub-2.nii.gz", "cannot read", "NIfTI"]),
    ("betas-3d",                   lambda w: betas(w, "mask.nii.gz"),                               ["{inputs}/mask.nii.gz", "3 dimensions", "4D volume"]),
    ("betas-other-stimulus-count", lambda w: betas(w, "sub-1.nii.gz", "five.nii.gz"),               ["{inputs}/five.nii.gz", "5 volumes", "6 stimuli"]),
    ("betas-other-grid",           lambda w: betas(w, "sub-1.nii.gz", "small.nii.gz"),              ["{inputs}/small.nii.gz", "(3, 3, 3)", "one grid"]),
    ("betas-same-name-twice",      lambda w: betas(w, "sub-1.nii.gz", "sub-1.nii.gz"),              ["--betas", "same name", "rename one"]),
    ("betas-all-nan",              lambda w: nan_in_volume(w, np.s_[...]),                          ["{inputs}/sub-2.nii.gz", "no voxel of the mask has usable responses"]),
    ("betas-nan-voxel-gets-nan",   lambda w: nan_in_volume(w, np.s_[1, 2, 3, 0]),                   Accepted([], nan_at_the_voxel)),
    ("mask-missing",               lambda w: w.set("--mask", w.inputs / "gone.nii.gz"),             ["{inputs}/gone.nii.gz", "does not exist"]),
    ("mask-of-another-grid",       lambda w: w.set("--mask", w.inputs / "small_mask.nii.gz"),       ["{inputs}/small_mask.nii.gz", "(3, 3, 3)", "one grid"]),
    ("mask-4d",                    lambda w: w.set("--mask", w.inputs / "sub-1.nii.gz"),            ["{inputs}/sub-1.nii.gz", "4 dimensions", "3D volume"]),
    ("mask-empty",                 lambda w: w.set("--mask", mask(w.inputs / "none.nii.gz", GRID, np.s_[0:0])), ["{inputs}/none.nii.gz", "empty"]),
    ("model-rdms-missing",         lambda w: w.set("--model-rdms", w.inputs / "gone.h5"),           ["{inputs}/gone.h5", "does not exist"]),
    ("model-rdms-are-activations", lambda w: w.set("--model-rdms", write_activations(w.inputs / "acts.h5")), ["{inputs}/acts.h5", "holds activations, expected rdms", "net2brain rdm"]),
    ("model-rdm-nan",              lambda w: edit_h5(w.inputs / "model.h5", set_value("rdms/a", (0, 5), np.nan)), ["{inputs}/model.h5", "'a'", "NaN"]),
    ("layer-unknown",              lambda w: w.add("--layers", "c"),                                 ["unknown layer 'c'", "{inputs}/model.h5 holds 2 RDMs"]),
    ("metric-unknown",             lambda w: w.add("--metric", "manhattan"),                         ["--metric", "'manhattan'", "net2brain searchlight --help"]),
    ("radius-missing",             lambda w: w.drop("--radius"),                                    ["--radius", "give it on the command line"]),
    ("radius-zero",                lambda w: w.set("--radius", 0),                                  ["--radius", "positive number of millimetres"]),
    ("stimuli-list-names-twice",   lambda w: w.add("--stimuli", w.file("order.txt", "stim/img_1.png\nstim/img_1.png\n")), ["order.txt, line 2", "listed twice"]),
    ("stimuli-ids-mismatch",       lambda w: w.add("--stimuli", w.inputs / "other_stim"),           ["{inputs}/other_stim", "stimulus ids differ", "pic_1.png"]),
    ("betas-and-searchlight-rdms", lambda w: w.add("--searchlight-rdms", searchlight_rdms(w)),      ["--betas", "--searchlight-rdms", "not both"]),
    ("centres-with-betas",         lambda w: w.add("--centres", w.file("c.npy", b"")),               ["--centres", "--searchlight-rdms"]),
    ("shard-with-searchlight-rdms", lambda w: precomputed(w, searchlight_rdms(w), "--shard", "0/2"), ["--shard", "--searchlight-rdms", "without --shard"]),
    ("searchlight-rdms-corrupt",   lambda w: precomputed(w, w.file("sl.npz", b"PK\x03\x04 junk")),   ["{inputs}/sl.npz", "cannot read"]),
    ("searchlight-rdms-3d",        lambda w: precomputed(w, searchlight_rdms(w, (4, N, N))),         ["{inputs}/sl.npz", "(4, 6, 6)", "(searchlights, subjects, n, n)"]),
    ("searchlight-rdms-no-reference", lambda w: (precomputed(w, searchlight_rdms(w)), w.drop("--reference")), ["--searchlight-rdms", "needs --reference"]),
    ("fdr-out-of-range",           lambda w: w.add("--fdr", 2),                                      ["--fdr", "between 0 and 1"]),
    ("plot-without-nilearn",       lambda w: (without_nilearn(w), w.add("--plot")),                  ["--plot (brain pictures) needs the nilearn library", "pip install 'net2brain-fovex[plots]'"]),
    ("plot-shard-background-gone", lambda w: w.add("--plot", "--shard", "0/2", "--background", w.inputs / "gone.nii.gz"), ["{inputs}/gone.nii.gz", "does not exist"]),
    ("background-without-plot",    lambda w: w.add("--background", w.inputs / "mask.nii.gz"),        ["--background", "add --plot"]),
    ("background-missing",         lambda w: w.add("--plot", "--background", w.inputs / "gone.nii.gz"), ["{inputs}/gone.nii.gz", "does not exist"]),
    ("background-not-nifti",       lambda w: w.add("--plot", "--background", w.file("bg.nii.gz", "brain\n")), ["{inputs}/bg.nii.gz", "cannot read", "NIfTI"]),
    ("background-4d",              lambda w: w.add("--plot", "--background", w.inputs / "sub-1.nii.gz"), ["{inputs}/sub-1.nii.gz", "4 dimensions", "3D volume"]),
    ("out-dir-is-a-file",          lambda w: w.set("--out-dir", w.file("maps", "a file")),          ["{inputs}/maps", "is a file", "give a folder"]),
    ("summary-exists",             lambda w: ((w.out / "sl").mkdir(), (w.out / "sl" / "summary.csv").write_text("old")), ["{out}/sl/", "exists already", "--overwrite"]),
    ("config-unknown-key",         lambda w: config(w, "radius-mm: 4\n"),                            ["{inputs}/options.yaml", "unknown option 'radius-mm'", "closest: radius"]),
    ("config-wrong-type",          lambda w: config(w, "min-voxels: [3]\n"),                         ["{inputs}/options.yaml", "'min-voxels'", "whole number"]),
    ("config-invalid-yaml",        lambda w: config(w, "radius: 4\nradius 5\n"),                     ["{inputs}/options.yaml", "not valid YAML"]),
    ("config-a-list",              lambda w: config(w, "- radius: 4\n"),                             ["{inputs}/options.yaml", "must be a mapping", "not a list"]),
]


def without_nilearn(w: Work) -> None:
    """nilearn not importable (the `plots` extra not installed); the monkeypatch undoes it."""
    w.monkeypatch.setitem(sys.modules, "nilearn", None)


@pytest.fixture
def searchlight_work(tmp_path, monkeypatch) -> Work:
    inputs = tmp_path / "in"
    inputs.mkdir()
    volume(inputs / "sub-1.nii.gz", GRID, seed=1)
    volume(inputs / "sub-2.nii.gz", GRID, seed=2)
    volume(inputs / "five.nii.gz", GRID, n=5, seed=3)
    volume(inputs / "small.nii.gz", (3, 3, 3), seed=4)
    mask(inputs / "mask.nii.gz", GRID, np.s_[:, :, :])
    mask(inputs / "small_mask.nii.gz", (3, 3, 3), np.s_[:, :, :])
    model_rdms(inputs / "model.h5")
    write_images(inputs / "stim", N, size=8)
    write_images(inputs / "other_stim", N, size=8, names=[f"pic_{i}.png" for i in range(1, N + 1)])
    (tmp_path / "out").mkdir()
    w = Work(tmp_path, ["searchlight", "--betas", inputs / "sub-1.nii.gz", "--betas", inputs / "sub-2.nii.gz",
                        "--mask", inputs / "mask.nii.gz", "--model-rdms", inputs / "model.h5", "--radius", 4,
                        "--min-voxels", 3, "--out-dir", tmp_path / "out" / "sl"])
    w.monkeypatch = monkeypatch
    return w


@pytest.mark.parametrize(("brk", "expected"), table(SEARCHLIGHT))
def test_searchlight_refuses_bad_input(net2brain, searchlight_work, brk, expected):
    brk(searchlight_work)
    check_case(net2brain, searchlight_work, expected)


# ------------------------------------------------------------------ net2brain encode

NE = 16  # stimuli of the encoding inputs: 3 folds leave 10 to train, as the inner folds need
IDS_E = [f"img_{i}.png" for i in range(1, NE + 1)]
GRID_E = (4, 4, 3)


def encode_from_responses(w: Work, array) -> None:
    """--responses FILE instead of --betas and --mask."""
    w.drop("--betas", "--mask")
    np.save(w.inputs / "meg.npy", np.asarray(array))
    w.add("--responses", w.inputs / "meg.npy")


def voxel_of_sub_2(w: Work, value) -> None:
    """Voxel (1, 2, 0) of sub-2: `value` for every stimulus, or NaN for the first."""
    data = nib.load(w.inputs / "sub-2.nii.gz").get_fdata(dtype=np.float32)
    if np.isnan(value):
        data[1, 2, 0, 0] = value
    else:
        data[1, 2, 0] = value
    nifti(w.inputs / "sub-2.nii.gz", data)


def encode_layers(w: Work, **layers) -> None:
    """Activations with these layers, and `--layers` naming them."""
    write_activations(w.inputs / "acts.h5", layers, stimuli=IDS_E)
    w.set("--layers", ",".join(layers))


def encoded(w: Work) -> None:
    assert (w.out / "enc" / "summary.csv").is_file() and (w.out / "enc" / "sub-1_one_r.nii.gz").is_file()


ENCODE = [
    # case id                      how the input is broken                                          the message says
    ("activations-missing",        lambda w: w.set("--activations", w.inputs / "gone.h5"),          ["{inputs}/gone.h5", "does not exist"]),
    ("activations-are-rdms",       lambda w: w.set("--activations", model_rdms(w.inputs / "model.h5")), ["{inputs}/model.h5", "holds rdms, expected activations"]),
    ("layer-unknown",              lambda w: w.add("--layers", "c"),                                 ["unknown layer 'c'", "{inputs}/acts.h5 holds 2 layers"]),
    ("layer-nan",                  lambda w: encode_layers(w, conv=np.full((NE, 3), np.nan, np.float32)), ["{inputs}/acts.h5", "'conv'", "NaN activations"]),
    ("layer-constant",             lambda w: encode_layers(w, flat=np.ones((NE, 4), np.float32)),   ["{inputs}/acts.h5", "'flat'", "does not vary", "--layers"]),
    ("layer-of-one-feature",       lambda w: encode_layers(w, one=RNG.normal(size=(NE, 1)).astype(np.float32)), Accepted(["best layer for mask: one"], encoded)),
    ("stimuli-ids-mismatch",       lambda w: w.add("--stimuli", w.inputs / "other_stim"),           ["{inputs}/other_stim", "stimulus ids differ", "pic_1.png"]),
    ("stimuli-other-count",        lambda w: w.add("--stimuli", w.inputs / "six_stim"),             ["{inputs}/six_stim", "lists 6 stimuli", "holds 16"]),
    ("too-few-stimuli-for-folds",  lambda w: w.set("--folds", 20),                                  ["16 stimuli are too few for --folds 20", "fewer folds"]),
    ("too-few-to-train-the-alphas", lambda w: w.set("--test-stimuli", w.file("test.txt", "\n".join(IDS_E[:14]) + "\n")),
     ["2 training stimuli of 16", "--inner gcv needs 3", "--folds"]),
    ("test-stimuli-unknown-id",    lambda w: w.add("--test-stimuli", w.file("test.txt", "img_1.png\nnope.png\n")), ["nope.png"]),
    ("test-stimuli-missing",       lambda w: w.add("--test-stimuli", w.inputs / "gone.txt"),        ["--test-stimuli", "{inputs}/gone.txt", "does not exist"]),
    ("betas-other-stimulus-count", lambda w: betas(w, "sub-1.nii.gz", "five.nii.gz"),               ["{inputs}/five.nii.gz", "holds 5 stimuli", "{inputs}/acts.h5 16"]),
    ("betas-other-grid",           lambda w: betas(w, "sub-1.nii.gz", "small.nii.gz"),              ["{inputs}/small.nii.gz", "(3, 3, 3)", "one grid"]),
    ("betas-same-name-twice",      lambda w: betas(w, "sub-1.nii.gz", "sub-1.nii.gz"),              ["--betas", "same name", "rename one"]),
    ("voxel-constant",             lambda w: voxel_of_sub_2(w, 3.0),                                 ["{inputs}/sub-2.nii.gz", "voxel (1, 2, 0)", "constant", "--mask"]),
    ("voxel-nan",                  lambda w: voxel_of_sub_2(w, np.nan),                              ["{inputs}/sub-2.nii.gz", "voxel (1, 2, 0)", "NaN or infinite"]),
    ("mask-of-another-grid",       lambda w: w.set("--mask", w.inputs / "small_mask.nii.gz"),       ["{inputs}/small_mask.nii.gz", "(3, 3, 3)", "one grid"]),
    ("mask-empty",                 lambda w: w.set("--mask", mask(w.inputs / "none.nii.gz", GRID_E, np.s_[0:0])), ["{inputs}/none.nii.gz", "empty"]),
    ("roi-outside-the-mask",       lambda w: (w.set("--mask", w.inputs / "corner.nii.gz"), w.add("--rois", w.inputs / "V1.nii.gz")), ["ROI 'V1'", "no voxel of the mask"]),
    ("roi-named-mask",             lambda w: w.add("--rois", w.inputs / "mask.nii.gz"),             ["--rois", "{inputs}/mask.nii.gz", "rename it"]),
    ("responses-nan",              lambda w: encode_from_responses(w, np.full((NE, 3), np.nan)),    ["{inputs}/meg.npy", "NaN"]),
    ("responses-constant-channel", lambda w: encode_from_responses(w, np.c_[RNG.normal(size=NE), np.ones(NE)]), ["{inputs}/meg.npy", "channel 1", "constant"]),
    ("responses-other-count",      lambda w: encode_from_responses(w, RNG.normal(size=(NE - 1, 3))), ["{inputs}/meg.npy", "holds 15 stimuli"]),
    ("repetitions-of-one",         lambda w: (encode_from_responses(w, RNG.normal(size=(NE, 3, 1))), w.add("--repetitions")), ["--repetitions", "at least 2 repetitions"]),
    ("betas-and-responses",        lambda w: w.add("--responses", w.inputs / "sub-1.nii.gz"),        ["--betas", "--responses", "not both"]),
    ("neither-betas-nor-responses", lambda w: w.drop("--betas", "--mask"),                           ["--betas", "--responses", "neither"]),
    ("mask-with-responses",        lambda w: (encode_from_responses(w, RNG.normal(size=(NE, 3))), w.add("--mask", w.inputs / "mask.nii.gz")), ["--mask", "--rois", "--betas"]),
    ("repetitions-with-betas",     lambda w: w.add("--repetitions"),                                 ["--repetitions", "--responses"]),
    ("alphas-not-positive",        lambda w: w.add("--alphas", "0,1,10"),                            ["--alphas", "positive finite numbers"]),
    ("alphas-not-numbers",         lambda w: w.add("--alphas", "1,ten"),                             ["--alphas", "numbers separated by commas"]),
    ("reduce-malformed",           lambda w: w.add("--reduce", "pca"),                               ["--reduce", "'pca' is not understood", "pca:N"]),
    ("model-unknown",              lambda w: w.add("--model", "lasso"),                              ["--model", "'lasso'", "net2brain encode --help"]),
    ("folds-one",                  lambda w: w.set("--folds", 1),                                    ["--folds", "at least 2"]),
    ("inner-unknown",              lambda w: w.add("--inner", "bootstrap"),                          ["--inner", "'bootstrap'", "net2brain encode --help"]),
    ("inner-folds-one",            lambda w: w.add("--inner", "kfold", "--inner-folds", 1),          ["--inner-folds", "at least 2"]),
    ("inner-folds-too-many",       lambda w: w.add("--inner", "kfold", "--inner-folds", 9, "--folds", 2), ["8 training stimuli", "9 inner folds", "needs 18"]),
    ("resume-with-overwrite",      lambda w: w.add("--resume", "--overwrite"),                       ["--resume", "--overwrite", "give one"]),
    ("out-dir-is-a-file",          lambda w: w.set("--out-dir", w.file("maps", "a file")),          ["{inputs}/maps", "is a file", "give a folder"]),
    ("summary-exists",             lambda w: ((w.out / "enc").mkdir(), (w.out / "enc" / "summary.csv").write_text("old")), ["{out}/enc/", "exists already", "--overwrite"]),
    ("config-unknown-key",         lambda w: config(w, "fold: 4\n"),                                 ["{inputs}/options.yaml", "unknown option 'fold'", "closest: folds"]),
    ("partition-of-one-space",     lambda w: w.add("--partition", "conv"),                           ["--partition", "two or three feature spaces"]),
    ("partition-space-twice",      lambda w: w.add("--partition", "conv,conv"),                      ["--partition", "twice"]),
    ("partition-unknown-layer",    lambda w: w.add("--partition", "conv,c"),                         ["unknown layer 'c'"]),
    ("partition-file-missing",     lambda w: w.add("--partition", f"conv,{w.inputs / 'gone.h5'}:fc"), ["{inputs}/gone.h5", "does not exist"]),
    ("partition-file-other-ids",   lambda w: partition_file(w, [f"pic_{i}.png" for i in range(1, NE + 1)]), ["{inputs}/other.h5", "pic_1.png"]),
    ("partition-with-linear",      lambda w: w.add("--partition", "conv,fc", "--model", "linear"),  ["--partition", "banded ridge", "--model"]),
    ("partition-with-inner-loo",   lambda w: w.add("--partition", "conv,fc", "--inner", "loo"),     ["--partition", "inner folds", "--inner"]),
    ("partition-inner-folds-too-many", lambda w: w.add("--partition", "conv,fc", "--inner-folds", 9, "--folds", 2), ["8 training stimuli", "9 inner folds", "needs 18"]),
    ("partition-with-layers",      lambda w: w.add("--partition", "conv,fc", "--layers", "fc"),     ["--partition", "--layers"]),
    ("partition-with-save-models", lambda w: w.add("--partition", "conv,fc", "--save-models"),      ["--save-models", "--partition"]),
    ("partition-resumed-otherwise", lambda w: resumed_partition_with_other_folds(w),                 ["--folds", "resume it with its options", "--overwrite"]),
    ("plot-of-another-format",     lambda w: w.add("--plot", w.out / "profile.csv"),                ["--plot", "ends in .csv"]),
    ("plot-without-nilearn",       lambda w: (without_nilearn(w), w.add("--plot", w.out / "p.png")),  ["--plot (brain pictures) needs the nilearn library", "pip install 'net2brain-fovex[plots]'"]),
    ("background-without-plot",    lambda w: w.add("--background", w.inputs / "mask.nii.gz"),        ["--background", "add --plot"]),
    ("background-with-responses",  lambda w: (encode_from_responses(w, RNG.normal(size=(NE, 3))), w.add("--plot", w.out / "p.png", "--background", w.inputs / "mask.nii.gz")), ["--background", "--responses", "leave it out"]),
    ("background-with-partition",  lambda w: w.add("--partition", "conv,fc", "--plot", w.out / "p.png", "--background", w.inputs / "mask.nii.gz"), ["--background", "--partition", "leave it out"]),
    ("background-missing",         lambda w: w.add("--plot", w.out / "p.png", "--background", w.inputs / "gone.nii.gz"), ["{inputs}/gone.nii.gz", "does not exist"]),
    ("background-4d",              lambda w: w.add("--plot", w.out / "p.png", "--background", w.inputs / "sub-1.nii.gz"), ["{inputs}/sub-1.nii.gz", "4 dimensions", "3D volume"]),
    ("background-with-predict",    lambda w: (predict_args(w, w.inputs / "model.h5", "pred.npy"), w.add("--background", w.inputs / "mask.nii.gz")), ["--predict", "--background", "leave it out"]),
    ("out-without-predict",        lambda w: w.add("--out", w.out / "pred.npy"),                    ["--out", "--predict", "--out-dir"]),
    ("predict-with-betas",         lambda w: w.add("--predict", w.inputs / "model.h5", "--out", w.out / "pred.npy"), ["--predict", "--betas", "leave it out"]),
    ("predict-model-missing",      lambda w: predict_args(w, w.inputs / "gone.h5", "pred.npy"),     ["{inputs}/gone.h5", "does not exist"]),
    ("predict-model-is-rdms",      lambda w: predict_args(w, model_rdms(w.inputs / "model.h5"), "pred.npy"), ["{inputs}/model.h5", "holds rdms, expected encoding-model"]),
    ("predict-out-of-another-format", lambda w: predict_args(w, w.inputs / "model.h5", "pred.csv"), ["--out", ".npy or .h5"]),
    ("predict-nifti-of-channels",  lambda w: predict_args(w, array_model(w), "pred.nii.gz"),         ["--out", "is a NIfTI", "models channels of no volume", ".npy or .h5"]),
    ("shard-invalid",              lambda w: w.add("--shard", "3/2"),                               ["3/2", "0 <= I < N"]),
    ("shard-with-partition",       lambda w: w.add("--partition", "conv,fc", "--shard", "0/2"),     ["--shard", "--partition", "not sharded"]),
    ("shard-with-save-models",     lambda w: w.add("--save-models", "--shard", "0/2"),              ["--save-models", "without --shard"]),
    ("shard-with-predict",         lambda w: (predict_args(w, w.inputs / "model.h5", "pred.npy"), w.add("--shard", "0/2")), ["--predict", "--shard", "leave it out"]),
    ("shard-exists",               lambda w: ((w.out / "enc").mkdir(), (w.out / "enc" / "encode.shard-000-of-002.h5").write_bytes(b"old"), w.add("--shard", "0/2")),
     ["{out}/enc/encode.shard-000-of-002.h5", "exists already", "--overwrite"]),
]


def partition_file(w: Work, ids) -> None:
    """--partition conv,OTHER:fc with OTHER an activations file of other stimulus ids."""
    write_activations(w.inputs / "other.h5", {"fc": RNG.normal(size=(NE, 5)).astype(np.float32)}, stimuli=ids)
    w.add("--partition", f"conv,{w.inputs / 'other.h5'}:fc")


def resumed_partition_with_other_folds(w: Work) -> None:
    """A partition run (of the workspace's options) interrupted before its summary, resumed with other --folds."""
    from net2brain_cli.app import main

    w.add("--partition", "conv,fc")
    assert main([str(a) for a in w.args]) == 0
    (w.out / "enc" / "summary.csv").unlink()
    w.add("--resume")
    w.set("--folds", 4)


def array_model(w: Work):
    """The saved encoding model of array responses (channels, no volume) of a fit in the workspace."""
    from net2brain_fovex.brain.encoding_files import encode_to_file

    np.save(w.inputs / "meg.npy", RNG.normal(size=(NE, 3)))
    encode_to_file(w.inputs / "acts.h5", w.inputs / "fit", responses=[w.inputs / "meg.npy"], layers="fc", folds=3,
                   save_models=True, device="cpu")
    return w.inputs / "fit" / "meg_fc_model.h5"


def predict_args(w: Work, model, out: str) -> None:
    """Prediction mode: --predict MODEL --activations acts.h5 --out OUT, no fitting options."""
    w.drop("--betas", "--mask", "--out-dir", "--folds")
    w.add("--predict", model, "--out", w.out / out)


@pytest.fixture
def encode_work(tmp_path, monkeypatch) -> Work:
    inputs = tmp_path / "in"
    inputs.mkdir()
    rng = np.random.default_rng(5)
    write_activations(inputs / "acts.h5", {"conv": rng.normal(size=(NE, 2, 2, 2)).astype(np.float32),
                                           "fc": rng.normal(size=(NE, 5)).astype(np.float32)}, stimuli=IDS_E)
    volume(inputs / "sub-1.nii.gz", GRID_E, n=NE, seed=1)
    volume(inputs / "sub-2.nii.gz", GRID_E, n=NE, seed=2)
    volume(inputs / "five.nii.gz", GRID_E, n=5, seed=3)
    volume(inputs / "small.nii.gz", (3, 3, 3), n=NE, seed=4)
    mask(inputs / "mask.nii.gz", GRID_E, np.s_[:, :, :])
    mask(inputs / "corner.nii.gz", GRID_E, np.s_[0:2, 0:2, 0:1])
    mask(inputs / "V1.nii.gz", GRID_E, np.s_[2:4, 2:4, 2:3])
    mask(inputs / "small_mask.nii.gz", (3, 3, 3), np.s_[:, :, :])
    write_images(inputs / "stim", NE, size=8)
    write_images(inputs / "other_stim", NE, size=8, names=[f"pic_{i}.png" for i in range(1, NE + 1)])
    write_images(inputs / "six_stim", 6, size=8)
    (tmp_path / "out").mkdir()
    w = Work(tmp_path, ["encode", "--activations", inputs / "acts.h5", "--betas", inputs / "sub-1.nii.gz",
                        "--betas", inputs / "sub-2.nii.gz", "--mask", inputs / "mask.nii.gz", "--folds", 3,
                        "--device", "cpu", "--out-dir", tmp_path / "out" / "enc"])
    w.monkeypatch = monkeypatch
    return w


@pytest.mark.parametrize(("brk", "expected"), table(ENCODE))
def test_encode_refuses_bad_input(net2brain, encode_work, brk, expected):
    brk(encode_work)
    check_case(net2brain, encode_work, expected)


# ------------------------------------------------------------------ net2brain merge


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """The two shards of one extract run (acts.shard-000-of-002.h5, ...-001-...), a shard 1
    of another run (other/acts.shard-001-of-002.h5) and the unsharded file (whole.h5), made once."""
    from net2brain_cli.app import main

    folder = tmp_path_factory.mktemp("shards")
    stimuli = write_images(folder / "stim", 4, size=20)
    runs = [(folder / "acts.h5", "float32", "0/2"), (folder / "acts.h5", "float32", "1/2"),
            (folder / "other" / "acts.h5", "float16", "1/2"), (folder / "whole.h5", "float32", None)]
    for out, dtype, part in runs:
        out.parent.mkdir(exist_ok=True)
        args = ["extract", *MODEL, "--stimuli", stimuli, "--out", out, "--dtype", dtype, "--layers", "features.4,head"]
        assert main([str(a) for a in args + (["--shard", part] if part else [])]) == 0
    for sidecar in folder.rglob("*.config.yaml"):
        sidecar.unlink()
    shutil.rmtree(folder / "stim")
    return folder


SHARD_0, SHARD_1 = "acts.shard-000-of-002.h5", "acts.shard-001-of-002.h5"


def merge_args(w: Work, *names: str) -> None:
    w.args[1:1] = [str(w.inputs / name) for name in names]


def shard_edit(name: str, change):
    return lambda w: (edit_h5(w.inputs / name, change), merge_args(w, SHARD_0, SHARD_1))


def attribution_shard(w: Work) -> None:
    with h5py.File(w.inputs / "maps.shard-000-of-001.h5", "w") as file:
        file.attrs.update({"kind": "attributions", "shard_index": 0, "shard_count": 1, "items_total": 2, "job_sha256": "x"})
        file.create_dataset("stimuli", data=np.array(IDS[:2], dtype=h5py.string_dtype()))
        file.create_dataset("maps", data=np.zeros((2, 8, 8), dtype=np.float32))
    merge_args(w, "maps.shard-000-of-001.h5")


MERGE = [
    # case id                      how the input is broken                                          the message says
    ("no-shards-beside-out",       lambda w: None,                                                  ["{out}/acts.h5", "no shard files", "as arguments"]),
    ("shard-missing-file",         lambda w: merge_args(w, SHARD_0, "gone.shard-001-of-002.h5"),     ["{inputs}/gone.shard-001-of-002.h5", "does not exist"]),
    ("shard-a-folder",             lambda w: (w.folder("dir.h5"), merge_args(w, SHARD_0, "dir.h5")), ["{inputs}/dir.h5", "is a folder"]),
    ("shard-unreadable",           lambda w: (unreadable(w.inputs / SHARD_1), merge_args(w, SHARD_0, SHARD_1)), [SHARD_1, "not readable"], NOT_AS_ROOT),
    ("shard-truncated",            lambda w: (cut_tail(w.inputs / SHARD_1), merge_args(w, SHARD_0, SHARD_1)), [SHARD_1, "not a readable HDF5 file", "rerun that shard"]),
    ("shard-not-hdf5",             lambda w: (w.file(SHARD_1, "stimuli\n"), merge_args(w, SHARD_0, SHARD_1)), [SHARD_1, "not a readable HDF5 file", "rerun that shard"]),
    ("not-a-shard",                lambda w: merge_args(w, SHARD_0, "whole.h5"),                     ["{inputs}/whole.h5", "is not a shard", "--shard outputs"]),
    ("an-rdm-file",                lambda w: merge_args(w, model_rdms(w.inputs / "rdms.h5").name),   ["{inputs}/rdms.h5", "is not a shard"]),
    ("attribution-shards",         attribution_shard,                                               ["maps.shard-000-of-001.h5", "holds attributions", "fovex merge"]),
    ("a-shard-is-missing",         lambda w: merge_args(w, SHARD_0),                                ["shard(s) 1 of 2 are missing", "run them"]),
    ("a-shard-given-twice",        lambda w: merge_args(w, SHARD_0, SHARD_0, SHARD_1),              ["shard 0/2 is given twice", SHARD_0]),
    ("shards-of-two-runs",         lambda w: merge_args(w, SHARD_0, "other/" + SHARD_1),            ["come from different runs", "same options and inputs"]),
    ("shard-rows-missing",         shard_edit(SHARD_1, replace_dataset("stimuli", lambda s: s[:1])), [SHARD_1, "holds 1 rows", "rerun that shard"]),
    ("shard-layer-of-another-shape", shard_edit(SHARD_1, replace_dataset("layers/head", lambda a: a[:, :3])), [SHARD_1, "layers/head", "different runs"]),
    ("out-exists",                 lambda w: (merge_args(w, SHARD_0, SHARD_1), (w.out / "acts.h5").write_bytes(b"old")), ["{out}/acts.h5", "exists already", "--overwrite"]),
    ("out-folder-a-file",          lambda w: (merge_args(w, SHARD_0, SHARD_1), w.set("--out", file_at(w.out / "sub") / "acts.h5")), ["{out}/sub", "is a file, not a folder"]),
    ("config-unknown-key",         lambda w: (merge_args(w, SHARD_0, SHARD_1), config(w, "ovewrite: true\n")), ["{inputs}/options.yaml", "unknown option 'ovewrite'", "closest: overwrite"]),
    ("config-wrong-type",          lambda w: (merge_args(w, SHARD_0, SHARD_1), config(w, "overwrite: 1\n")), ["{inputs}/options.yaml", "'overwrite'", "true or false"]),
]


@pytest.fixture
def merge_work(tmp_path, shards) -> Work:
    shutil.copytree(shards, tmp_path / "in")
    (tmp_path / "out").mkdir()
    return Work(tmp_path, ["merge", "--out", tmp_path / "out" / "acts.h5"])


@pytest.mark.parametrize(("brk", "expected"), table(MERGE))
def test_merge_refuses_bad_input(net2brain, merge_work, brk, expected):
    brk(merge_work)
    check_case(net2brain, merge_work, expected)


# ------------------------------------------------------------------ net2brain merge of encode shards


@pytest.fixture(scope="module")
def encode_shards(tmp_path_factory) -> Path:
    """An encode run of 2 layers (conv, fc: 2 units) in 3 shards (enc/; shard 0 holds none), its
    unsharded folder (whole/), shard 1 of a run with other folds (other/) and of a run of 2
    shards (two/), made once."""
    from net2brain_cli.app import main

    folder = tmp_path_factory.mktemp("encode_shards")
    inputs = folder / "inputs"
    inputs.mkdir()
    rng = np.random.default_rng(6)
    write_activations(inputs / "acts.h5", {"conv": rng.normal(size=(NE, 2, 2, 2)).astype(np.float32),
                                           "fc": rng.normal(size=(NE, 5)).astype(np.float32)}, stimuli=IDS_E)
    volume(inputs / "sub-1.nii.gz", GRID_E, n=NE, seed=1)
    volume(inputs / "sub-2.nii.gz", GRID_E, n=NE, seed=2)
    args = ["encode", "--activations", inputs / "acts.h5", "--betas", inputs / "sub-1.nii.gz", "--betas",
            inputs / "sub-2.nii.gz", "--folds", 3, "--device", "cpu"]
    runs = [("enc", "0/3"), ("enc", "1/3"), ("enc", "2/3"), ("whole", None), ("other", "1/3"), ("two", "1/2")]
    for out, part in runs:
        extra = (["--shard", part] if part else []) + (["--folds", 4] if out == "other" else [])
        assert main([str(a) for a in [*args, "--out-dir", folder / out, *extra]]) == 0
    return folder


SHARDS_E = [f"enc/encode.shard-00{i}-of-003.h5" for i in range(3)]


def encode_merge_args(w: Work, *names: str) -> None:
    w.args[1:1] = [str(w.out / name) for name in names]


def set_attr(name: str, key: str, value):
    def change(file):
        file[name].attrs[key] = value
    return change


def delete(name: str):
    def change(file):
        del file[name]
    return change


ENCODE_MERGE = [
    # case id                      how the input is broken                                          the message says
    ("no-shards-in-out",           lambda w: w.set("--out", w.out / "whole"),                       ["{out}/whole", "no shard files", "as arguments"]),
    ("a-shard-is-missing",         lambda w: (w.out / SHARDS_E[1]).unlink(),                        ["shard(s) 1 of 3 are missing", "run them"]),
    ("a-shard-given-twice",        lambda w: encode_merge_args(w, *SHARDS_E, SHARDS_E[2]),          ["shard 2/3 is given twice", SHARDS_E[2]]),
    ("shards-of-two-runs",         lambda w: encode_merge_args(w, SHARDS_E[0], "other/encode.shard-001-of-003.h5", SHARDS_E[2]),
     ["come from different runs (job_sha256 differs)", "same options and inputs"]),
    ("shards-of-another-count",    lambda w: encode_merge_args(w, *SHARDS_E, "two/encode.shard-001-of-002.h5"), ["come from different runs (shard_count differs)"]),
    ("shard-truncated",            lambda w: cut_tail(w.out / SHARDS_E[2]),                         [SHARDS_E[2], "not a readable HDF5 file", "rerun that shard"]),
    ("shard-targets-missing",      lambda w: edit_h5(w.out / SHARDS_E[2], set_attr("scores/fc", "stop", 5)), [SHARDS_E[2], "holds the scores of fc[0:5]", "needs fc[0:48]", "rerun that shard"]),
    ("shard-scores-of-another-shape", lambda w: edit_h5(w.out / SHARDS_E[1], replace_dataset("scores/conv/r", lambda a: a[:, :3])),
     [SHARDS_E[1], "layer 'conv' are (2, 3), not (subjects, targets) (2, 48)", "rerun that shard"]),
    ("shard-layout-missing",       lambda w: edit_h5(w.out / SHARDS_E[0], delete("roi_masks")),    [SHARDS_E[0], "not a complete encode shard", "rerun that shard"]),
    ("shards-of-two-commands",     lambda w: (w.out / "enc" / "searchlight.shard-000-of-001.h5").write_bytes(b""), ["{out}/enc holds the shards of two commands", "as arguments"]),
    ("summary-exists",             lambda w: (w.out / "enc" / "summary.csv").write_text("old"),   ["{out}/enc/summary.csv exists already", "--overwrite"]),
    ("out-is-a-shard",             lambda w: (encode_merge_args(w, *SHARDS_E), w.set("--out", w.out / SHARDS_E[0])),
     [f"--out {{out}}/{SHARDS_E[0]} is an input of this run (--shards)"]),
]


@pytest.fixture
def merge_encode_work(tmp_path, encode_shards) -> Work:
    """The shards in the folder they merge into, {out}/enc."""
    shutil.copytree(encode_shards, tmp_path / "out", ignore=shutil.ignore_patterns("inputs"))
    (tmp_path / "in").mkdir()
    return Work(tmp_path, ["merge", "--out", tmp_path / "out" / "enc"])


@pytest.mark.parametrize(("brk", "expected"), table(ENCODE_MERGE))
def test_merge_of_encode_shards_refuses_bad_input(net2brain, merge_encode_work, brk, expected):
    brk(merge_encode_work)
    check_case(net2brain, merge_encode_work, expected)


# ------------------------------------------------------------------ net2brain info


def info_of(w: Work, path: Path) -> None:
    w.args.insert(1, str(path))


def damaged_png(w: Work) -> None:
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(w.inputs / "plot.png")
    cut_tail(w.inputs / "plot.png", 0.3)
    info_of(w, w.inputs / "plot.png")


INFO = [
    # case id                      how the input is broken                                          the message says
    ("file-missing",               lambda w: info_of(w, w.inputs / "gone.h5"),                      ["{inputs}/gone.h5", "does not exist", "give one of our files"]),
    ("a-folder",                   lambda w: info_of(w, w.inputs),                                  ["{inputs}", "is a folder", "give one of its files"]),
    ("unreadable",                 lambda w: info_of(w, unreadable(w.inputs / "acts.h5")),          ["{inputs}/acts.h5", "not readable"], NOT_AS_ROOT),
    ("unknown-format",             lambda w: info_of(w, w.file("notes.txt", "hello")),               ["{inputs}/notes.txt", "unknown format", "info reads HDF5"]),
    ("hdf5-truncated",             lambda w: info_of(w, cut_tail(w.inputs / "acts.h5")),            ["{inputs}/acts.h5", "not a readable HDF5 file"]),
    ("hdf5-empty-file",            lambda w: info_of(w, w.file("empty.h5", b"")),                   ["{inputs}/empty.h5", "not a readable HDF5 file"]),
    ("not-hdf5-with-h5-suffix",    lambda w: info_of(w, w.file("text.h5", "image,x\n")),             ["{inputs}/text.h5", "not a readable HDF5 file"]),
    ("nifti-truncated",            lambda w: info_of(w, cut_tail(w.inputs / "sub-1.nii.gz")),       ["{inputs}/sub-1.nii.gz", "not a readable NIfTI file"]),
    ("nifti-not-nifti",            lambda w: info_of(w, w.file("brain.nii", "not a volume\n")),      ["{inputs}/brain.nii", "not a readable NIfTI file"]),
    ("png-damaged",                damaged_png,                                                     ["{inputs}/plot.png", "not a readable PNG file"]),
    ("csv-empty",                  lambda w: info_of(w, w.file("rsa.csv", "")),                      ["{inputs}/rsa.csv", "is empty", "header row"]),
    ("csv-binary",                 lambda w: info_of(w, w.file("rsa.csv", b"\x89PNG\r\n\x1a\n\xff\xfe")), ["{inputs}/rsa.csv", "not a readable CSV file"]),
    ("yaml-invalid",               lambda w: info_of(w, w.file("acts.config.yaml", "model: [x\n")),  ["{inputs}/acts.config.yaml", "not valid YAML"]),
    ("yaml-a-list",                lambda w: info_of(w, w.file("acts.config.yaml", "- model\n")),    ["{inputs}/acts.config.yaml", "must be a mapping"]),
    ("config-unknown-key",         lambda w: (info_of(w, w.inputs / "acts.h5"), config(w, "format: json\n")), ["{inputs}/options.yaml", "unknown option 'format'"]),
]


@pytest.fixture
def info_work(tmp_path) -> Work:
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_activations(inputs / "acts.h5")
    volume(inputs / "sub-1.nii.gz", (8, 8, 8))
    (tmp_path / "out").mkdir()
    return Work(tmp_path, ["info"])


@pytest.mark.parametrize(("brk", "expected"), table(INFO))
def test_info_refuses_bad_input(net2brain, info_work, brk, expected):
    brk(info_work)
    check_case(net2brain, info_work, expected)


# ------------------------------------------------------------------ convert


def pickled_npz(w: Work) -> None:
    np.savez(w.inputs / "n2b" / "img_1.png.npz", fc=np.array([{"x": 1}], dtype=object), allow_pickle=True)


CONVERT = [
    # case id                      how the input is broken                                          the message says
    ("source-missing",             lambda w: w.argument(w.inputs / "gone"),                      ["{inputs}/gone does not exist", "THINGSvision or Net2Brain features"]),
    ("source-empty",               lambda w: w.argument(w.folder("empty")),                      ["the layouts that fit are none", "give --format"]),
    ("out-missing",                lambda w: w.drop("--out"),                                       ["--out"]),
    ("pickled-npz",                pickled_npz,                                                     ["img_1.png.npz", "(a pickle), which loading could run as code"]),
    ("layers-differ",              lambda w: np.savez(w.inputs / "n2b" / "img_2.png.npz", conv=np.zeros((1, 3))), ["img_2.png.npz holds other layers than img_1.png.npz"]),
    ("shapes-differ",              lambda w: np.savez(w.inputs / "n2b" / "img_2.png.npz", fc=np.zeros((1, 5))), ["layer 'fc': stimulus 'img_2.png' has shape"]),
    ("thingsvision-count",         lambda w: (w.argument(w.inputs / "tv"), w.file("tv/file_names.txt", "a.png\n")), ["has 3 rows of features for the 1 images"]),
    ("thingsvision-no-names",      lambda w: (w.argument(w.inputs / "tv"), (w.inputs / "tv" / "file_names.txt").unlink()), ["has no file_names.txt"]),
    ("thingsvision-twice",         lambda w: (w.argument(w.inputs / "tv"), w.file("tv/file_names.txt", "a.png\nb.png\na.png\n")), ["lists 'a.png' twice"]),
    ("unknown-format",             lambda w: w.add("--format", "rsatoolbox"),                        ["--format", "'rsatoolbox'"]),
    ("layer-with-net2brain",       lambda w: w.add("--layer", "fc"),                                ["--layer names the one module of a THINGSvision folder"]),
    ("out-exists",                 lambda w: (w.out / "acts.h5").write_text("old"),                 ["{out}/acts.h5 exists already", "--overwrite"]),
    ("config-unknown-key",         lambda w: config(w, "layers: fc\n"),                             ["{inputs}/options.yaml", "unknown option 'layers'"]),
]


@pytest.fixture
def convert_work(tmp_path) -> Work:
    inputs = tmp_path / "in"
    (inputs / "n2b").mkdir(parents=True)
    for index in (1, 2, 3):
        np.savez_compressed(inputs / "n2b" / f"img_{index}.png.npz", fc=RNG.normal(size=(1, 4)))
    (inputs / "tv").mkdir()
    np.save(inputs / "tv" / "features.npy", RNG.normal(size=(3, 4)))
    (inputs / "tv" / "file_names.txt").write_text("a.png\nb.png\nc.png\n")
    (tmp_path / "out").mkdir()
    return Work(tmp_path, ["convert", inputs / "n2b", "--out", tmp_path / "out" / "acts.h5"])


@pytest.mark.parametrize(("brk", "expected"), table(CONVERT))
def test_convert_refuses_bad_input(net2brain, convert_work, brk, expected):
    brk(convert_work)
    check_case(net2brain, convert_work, expected)


# ------------------------------------------------------------------ report


REPORT = [
    # case id                      how the input is broken                                          the message says
    ("folder-missing",             lambda w: w.argument(w.inputs / "gone"),                       ["{inputs}/gone does not exist", "give the output folder of a run"]),
    ("a-file",                     lambda w: w.argument(w.inputs / "run" / "rsa.csv"),            ["{inputs}/run/rsa.csv is a file", "output folder of a run"]),
    ("empty-folder",               lambda w: w.argument(w.folder("empty")),                       ["{inputs}/empty holds nothing to report", "give the output folder of a run"]),
    ("nothing-to-report",          lambda w: w.argument(w.file("notes/notes.txt", "hi").parent),  ["{inputs}/notes holds nothing to report", "no tables, figures, maps"]),
    ("unreadable-folder",          lambda w: unreadable(w.inputs / "run"),                          ["{inputs}/run", "not readable"], NOT_AS_ROOT),
    ("report-exists",              lambda w: w.file("run/report.html", "<html></html>"),            ["{inputs}/run/report.html exists already", "--overwrite"]),
    ("out-not-html",               lambda w: w.set("--out", w.out / "report.txt"),                  ["--out {out}/report.txt ends in .txt", ".html"]),
    ("out-a-folder",               lambda w: w.set("--out", w.out),                                 ["--out {out} is a folder", "give a file name"]),
    ("out-under-a-file",           lambda w: w.set("--out", file_at(w.out / "file") / "r.html"),    ["{out}/file is a file, not a folder"]),
    ("max-images-zero",            lambda w: w.set("--max-images", 0),                              ["--max-images must be at least 1, got 0"]),
    ("unknown-flag",               lambda w: w.add("--fast"),                                       ["--fast", "net2brain report --help"]),
    ("config-unknown-key",         lambda w: config(w, "folder-name: x\n"),                         ["{inputs}/options.yaml", "unknown option 'folder-name'"]),
    ("config-wrong-type",          lambda w: config(w, "max-images: many\n"),                       ["{inputs}/options.yaml", "'max-images'"]),
]


@pytest.fixture
def report_work(tmp_path) -> Work:
    run = tmp_path / "in" / "run"
    run.mkdir(parents=True)
    (run / "rsa.csv").write_text("roi,model,layer,score,sem,p\nV1,net,fc,0.5,0.1,0.01\n")
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(run / "rsa.png")
    (tmp_path / "out").mkdir()
    return Work(tmp_path, ["report", run])


@pytest.mark.parametrize(("brk", "expected"), table(REPORT))
def test_report_refuses_bad_input(net2brain, report_work, brk, expected):
    brk(report_work)
    check_case(net2brain, report_work, expected)


# ------------------------------------------------------------------ net2brain demo


def earlier_demo_output(w: Work) -> None:
    (w.out / "demo").mkdir()
    (w.out / "demo" / "rsa.csv").write_text("an earlier demo's results")


DEMO = [
    # case id                      how the input is broken                                          the message says
    ("out-is-a-file",              lambda w: (w.out / "demo").write_text("a file"),                 ["{out}/demo", "not a folder"]),
    ("out-under-a-file",           lambda w: ((w.out / "file").write_text("x"), w.set("--out", w.out / "file" / "demo")), ["{out}/file", "not a folder"]),
    ("earlier-output",             earlier_demo_output,                                             ["{out}/demo/rsa.csv", "exists already", "--overwrite"]),
    ("device-unknown",             lambda w: w.set("--device", "gpu0"),                              ["'gpu0'", "use auto, cpu"]),
    ("unknown-flag",               lambda w: w.add("--fast"),                                       ["--fast", "net2brain demo --help"]),
    ("config-unknown-key",         lambda w: config(w, "subjects: 3\n"),                             ["{inputs}/options.yaml", "unknown option 'subjects'"]),
    ("config-wrong-type",          lambda w: config(w, "overwrite: maybe\n"),                        ["{inputs}/options.yaml", "'overwrite'", "true or false"]),
    ("config-invalid-yaml",        lambda w: config(w, "device: {cpu\n"),                            ["{inputs}/options.yaml", "not valid YAML"]),
    ("config-a-list",              lambda w: config(w, "- device\n"),                                ["{inputs}/options.yaml", "must be a mapping"]),
]


@pytest.fixture
def demo_work(tmp_path) -> Work:
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    return Work(tmp_path, ["demo", "--out", tmp_path / "out" / "demo", "--device", "cpu"])


@pytest.mark.parametrize(("brk", "expected"), table(DEMO))
def test_demo_refuses_bad_input(net2brain, demo_work, brk, expected):
    brk(demo_work)
    check_case(net2brain, demo_work, expected)
