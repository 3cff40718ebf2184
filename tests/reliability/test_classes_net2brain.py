"""The input classes of the reliability issue, through every `net2brain` command they apply to.

One table per class (README, "Reliability"): A, data is never lost; B, no exit 1 on
input a user can give; C, no silent wrong numbers; D, messages that say what happened.
A row is (case id, command, how the workspace is broken, what is expected); the command's
workspace is the one of its bad-input table (tests/reliability/test_bad_input_net2brain.py).
A refused case keeps the command contract of the bad-input suite (exit 2, one line on
stderr with the fragments and none of those marked "!", every file byte-identical
afterwards); an `Accepted` case documents a defined result (exit 0, its warning) and checks
its numbers against an independent computation.
"""
from __future__ import annotations

import os
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
import scipy.io
from PIL import Image

from tests.conftest import write_images
from tests.reliability.bad_input import (
    FAILING_FACTORIES,
    Accepted,
    Held,
    Work,
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
from tests.reliability.test_bad_input_net2brain import (  # noqa: F401  (the workspaces are fixtures)
    AFFINE,
    GRID,
    IDS,
    MODEL,
    NE,
    SHARD_0,
    SHARD_1,
    SHARDS_E,
    N,
    brain_rdms,
    check_case,
    cka_work,
    convert_work,
    demo_work,
    encode_shards,
    encode_work,
    extract_work,
    factory_file,
    from_betas,
    info_work,
    layers_work,
    mask,
    merge_args,
    merge_encode_work,
    merge_work,
    models_work,
    nifti,
    predict_args,
    rdm_work,
    report_work,
    rsa_work,
    searchlight_work,
    shards,
    volume,
)


def run_case(request, net2brain, command: str, brk, expected) -> None:
    work = request.getfixturevalue(f"{command}_work")
    brk(work)
    check_case(net2brain, work, expected)


def run_held(request, net2brain, command: str, brk, held: Held) -> None:
    work = request.getfixturevalue(f"{command}_work")
    brk(work)
    with held.holder(held.path(work)):
        check_case(net2brain, work, held.expected)


# ------------------------------------------------------------------ helpers


def list_stimuli(w: Work, *lines: str) -> None:
    w.set("--stimuli", w.file("list.txt", "\n".join(lines) + "\n"))


def stimulus_named(w: Work, raw_name: bytes) -> None:
    """An image whose file name is not UTF-8 (as a Latin-1 system writes `café.png`)."""
    folder = os.fsencode(w.inputs / "stim")
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(os.fsdecode(folder + b"/" + raw_name), format="PNG")


def the_link_is_replaced_not_its_target(w: Work) -> None:
    """A report over a link to a table of the run replaces the link, never the table."""
    assert not (w.out / "r.html").is_symlink() and (w.out / "r.html").read_text().startswith("<!DOCTYPE html>")
    assert (w.inputs / "run" / "rsa.csv").read_text().startswith("roi,model,layer")


def npz_feature(w: Work, name: bytes, **layers) -> None:
    """A Net2Brain feature file `name` (bytes: any file name) in the workspace's n2b folder."""
    np.savez(os.fsdecode(os.fsencode(w.inputs / "n2b") + b"/" + name), **layers)


def converted(w: Work) -> dict[str, np.ndarray]:
    """The layers of the converted file, and the Net2Brain files they come from (per image), side by side."""
    with h5py.File(w.out / "acts.h5") as file:
        stored = {name: file["layers"][name][()] for name in file["layers"]}
        assert list(file["stimuli"].asstr()) == ["img_1.png", "img_2.png", "img_3.png"]
    given = {name: np.concatenate([np.load(w.inputs / "n2b" / f"img_{i}.png.npz")[name] for i in (1, 2, 3)])
             for name in stored}
    return stored, given


def integers_then_floats(w: Work) -> None:
    npz_feature(w, b"img_1.png.npz", fc=np.array([[1, 2, 3, 4]], dtype=np.int64))
    npz_feature(w, b"img_2.png.npz", fc=np.array([[0.5, -1.25, 2.0, 3.75]]))


def every_value_kept(w: Work) -> None:
    stored, given = converted(w)
    assert stored["fc"].dtype == np.float64 and np.array_equal(stored["fc"], given["fc"], equal_nan=True)


# ================================================================== A. data is never lost

A = [
    # case id                          command        how the workspace is broken                                     expected
    ("out-is-a-link-to-the-list",      "extract",     lambda w: (list_stimuli(w, "stim/img_1.png"), link(w.out / "acts.h5", w.inputs / "list.txt"), w.add("--overwrite")),
     ["--out {out}/acts.h5 is an input of this run (--stimuli)", "!--overwrite to"]),
    ("out-is-a-hard-link-of-an-image", "extract",     lambda w: (hard_link(w.out / "acts.h5", w.inputs / "stim" / "img_1.png"), w.add("--overwrite")),
     ["--out {out}/acts.h5 is an input of this run (--stimuli)", "!--overwrite to"]),
    ("sidecar-is-the-config",          "extract",     lambda w: (the_config_is_the_sidecar(w, "acts.config.yaml"), w.add("--overwrite")),
     ["{out}/acts.config.yaml is an input of this run (--config)", "!--overwrite to"]),
    ("sidecar-exists",                 "extract",     lambda w: (w.out / "acts.config.yaml").write_text("old\n"),
     ["{out}/acts.config.yaml exists already", "--overwrite"]),
    ("out-is-a-fifo",                  "extract",     lambda w: (fifo(w.out / "acts.h5"), w.add("--overwrite")),
     ["--out {out}/acts.h5 is not a regular file", "FIFO"]),
    ("out-suffix-of-another-format",   "extract",     lambda w: w.set("--out", w.out / "acts.csv"),
     ["--out {out}/acts.csv", ".h5"]),
    ("out-is-the-activations",         "rdm",         lambda w: (w.set("--out", w.inputs / "acts.h5"), w.add("--overwrite")),
     ["--out {inputs}/acts.h5 is an input of this run (--activations)", "!--overwrite to"]),
    ("out-is-the-activations-by-a-relative-path", "rdm", lambda w: (w.set("--out", os.path.relpath(w.inputs / "acts.h5")), w.add("--overwrite")),
     ["is an input of this run (--activations)", "!--overwrite to"]),
    ("out-is-a-link-to-the-activations", "rdm",       lambda w: (link(w.out / "rdms.h5", w.inputs / "acts.h5"), w.add("--overwrite")),
     ["--out {out}/rdms.h5 is an input of this run (--activations)"]),
    ("out-is-a-mask",                  "rdm",         lambda w: (from_betas(w), w.set("--out", link(w.out / "rdms.h5", w.inputs / "V1.nii.gz")), w.add("--overwrite")),
     ["--out {out}/rdms.h5 is an input of this run (--mask)"]),
    ("plot-picture-exists",            "rdm",         lambda w: ((w.out / "plots").mkdir(), (w.out / "plots" / "fc.png").write_bytes(b"old"), w.add("--plot", w.out / "plots")),
     ["{out}/plots/fc.png exists already", "--overwrite"]),
    ("plot-folder-is-the-stimuli",     "rdm",         lambda w: (from_betas(w, ("sub-1.nii.gz",), ("V1.nii.gz",), "--stimuli", write_images(w.inputs / "six", N, size=8)), w.add("--plot", w.inputs / "six")),
     ["--plot {inputs}/six/V1.png would add a .png file to {inputs}/six, a folder of inputs (--stimuli)"]),
    ("plot-folder-is-the-thumbnails",  "rdm",         lambda w: w.add("--plot", w.inputs / "six", "--thumbnails", write_images(w.inputs / "six", N, size=8, names=IDS)),
     ["--plot {inputs}/six/conv.png would add a .png file to {inputs}/six, a folder of inputs (--thumbnails)"]),
    ("sidecar-exists",                 "rdm",         lambda w: (w.out / "rdms.config.yaml").write_text("old\n"),
     ["{out}/rdms.config.yaml exists already", "--overwrite"]),
    ("out-is-the-brain-rdms",          "rsa",         lambda w: (w.set("--out", link(w.out / "rsa.csv", w.inputs / "brain.h5")), w.add("--overwrite")),
     ["--out {out}/rsa.csv is an input of this run (--brain-rdms)"]),
    ("plot-is-the-out",                "rsa",         lambda w: w.add("--plot", w.out / "rsa.csv"),
     ["--plot {out}/rsa.csv"]),
    ("weights-table-exists",           "rsa",         lambda w: ((w.out / "rsa.weights.csv").write_text("old"), w.add("--weighted", "--folds", 2)),
     ["{out}/rsa.weights.csv exists already", "--overwrite"]),
    ("plot-exists",                    "rsa",         lambda w: ((w.out / "rsa.png").write_bytes(b"old"), w.add("--plot", w.out / "rsa.png")),
     ["{out}/rsa.png exists already", "--overwrite"]),
    ("sidecar-is-the-config",          "rsa",         lambda w: (the_config_is_the_sidecar(w, "rsa.config.yaml"), w.add("--overwrite")),
     ["{out}/rsa.config.yaml is an input of this run (--config)"]),
    ("out-dir-is-an-input-folder",     "searchlight", lambda w: (w.add("--stimuli", w.inputs / "stim"), w.set("--out-dir", w.inputs / "stim"), w.add("--overwrite")),
     ["--out-dir {inputs}/stim is an input of this run (--stimuli)"]),
    ("plot-picture-is-a-link-to-a-stimulus", "searchlight", lambda w: (w.add("--stimuli", w.inputs / "stim", "--plot"), (w.out / "sl").mkdir(), link(w.out / "sl" / "group_a_mean.png", w.inputs / "stim" / "img_1.png")),
     ["--out-dir {out}/sl/group_a_mean.png is an input of this run (--stimuli)"]),
    ("out-dir-holds-an-earlier-config", "searchlight", lambda w: ((w.out / "sl").mkdir(), (w.out / "sl" / "summary.csv").write_text("old"), (w.out / "sl" / "config.yaml").write_text("old")),
     ["exists already", "--overwrite"]),
    ("out-is-a-shard",                 "merge",       lambda w: (merge_args(w, SHARD_0, SHARD_1), w.set("--out", w.inputs / SHARD_1), w.add("--overwrite")),
     [f"--out {{inputs}}/{SHARD_1} is an input of this run (--shards)"]),
    ("sidecar-exists",                 "merge",       lambda w: (merge_args(w, SHARD_0, SHARD_1), (w.out / "acts.config.yaml").write_text("old")),
     ["{out}/acts.config.yaml exists already", "--overwrite"]),
    ("out-is-the-against-file",        "cka",         lambda w: (w.set("--out", link(w.out / "cka.csv", w.inputs / "b.h5")), w.add("--overwrite")),
     ["--out {out}/cka.csv is an input of this run (--against)", "!--overwrite to"]),
    ("plot-is-the-out",                "cka",         lambda w: w.add("--plot", w.out / "cka.csv"),
     ["--plot {out}/cka.csv"]),
    ("plot-exists",                    "cka",         lambda w: ((w.out / "cka.png").write_bytes(b"old"), w.add("--plot", w.out / "cka.png")),
     ["{out}/cka.png exists already", "--overwrite"]),
    ("out-dir-is-an-input-folder",     "encode",      lambda w: (w.add("--stimuli", w.inputs / "stim"), w.set("--out-dir", w.inputs / "stim"), w.add("--overwrite")),
     ["--out-dir {inputs}/stim is an input of this run (--stimuli)", "!--overwrite to"]),
    ("out-dir-holds-a-finished-run",   "encode",      lambda w: ((w.out / "enc").mkdir(), (w.out / "enc" / "summary.csv").write_text("old")),
     ["exists already", "--overwrite"]),
    ("out-dir-holds-a-finished-run",   "merge_encode", lambda w: (w.out / "enc" / "summary.csv").write_text("old"),
     ["{out}/enc/summary.csv exists already", "--overwrite"]),
    ("sidecar-is-the-config",          "merge_encode", lambda w: (the_config_is_the_sidecar(w, "enc/encode.config.yaml"), w.add("--overwrite")),
     ["{out}/enc/encode.config.yaml is an input of this run (--config)", "!--overwrite to"]),
    ("sidecar-is-the-config",          "cka",         lambda w: (the_config_is_the_sidecar(w, "cka.config.yaml"), w.add("--overwrite")),
     ["{out}/cka.config.yaml is an input of this run (--config)", "!--overwrite to"]),
    ("predictions-out-is-the-model",   "encode",      lambda w: (volume_model(w), w.set("--out", w.inputs / "fit" / "sub-1_fc_model.h5"), w.add("--overwrite")),
     ["--out {inputs}/fit/sub-1_fc_model.h5 is an input of this run (--predict)", "!--overwrite to"]),
    ("out-is-a-fifo",                  "report",      lambda w: (fifo(w.out / "report.html"), w.set("--out", w.out / "report.html"), w.add("--overwrite")),
     ["--out {out}/report.html is not a regular file", "FIFO"]),
    ("out-a-link-to-a-table-of-the-run", "report",    lambda w: (link(w.out / "r.html", w.inputs / "run" / "rsa.csv"), w.set("--out", w.out / "r.html"), w.add("--overwrite")),
     Accepted([], the_link_is_replaced_not_its_target)),
    ("out-is-the-source-folder",       "convert",     lambda w: (w.set("--out", w.inputs / "n2b"), w.add("--overwrite")),
     ["--out {inputs}/n2b is an input of this run (--source)", "!--overwrite to"]),
    ("out-is-a-fifo",                  "convert",     lambda w: (fifo(w.out / "acts.h5"), w.add("--overwrite")),
     ["--out {out}/acts.h5 is not a regular file", "FIFO"]),
]


@pytest.mark.parametrize(("command", "brk", "expected"), command_table(A))
def test_class_a_data_is_never_lost(request, net2brain, command, brk, expected):
    run_case(request, net2brain, command, brk, expected)


def test_plot_suffix_names_the_format_it_is_written_in(net2brain, rsa_work):  # noqa: F811
    """A3: `--plot p.pdf` gets PDF bytes, not PNG bytes under a .pdf name."""
    rsa_work.add("--plot", rsa_work.out / "rsa.pdf")
    assert net2brain(*rsa_work.args).code == 0
    assert (rsa_work.out / "rsa.pdf").read_bytes().startswith(b"%PDF")


@pytest.mark.parametrize(("command", "out"), [("rdm", "rdms.h5"), ("rsa", "rsa.csv"), ("cka", "cka.csv"),
                                              ("encode", "enc"), ("merge_encode", "enc")])
def test_a_second_run_is_refused_while_the_first_writes(request, net2brain, command, out):
    """Two real processes on one output: the second is told that another run holds it."""
    run_held(request, net2brain, command, lambda w: None, Held(held_lock, lambda w: w.out / out,
                                                               [f"another run holds {{out}}/{out}", "wait", "!--resume"]))


@pytest.mark.parametrize(("command", "folder", "shard"), [("searchlight", "sl", "searchlight"), ("encode", "enc", "encode")])
def test_the_shards_of_one_folder_run_at_the_same_time(request, net2brain, command, folder, shard):
    """A SLURM array writes its shards into one folder at once: a shard locks its own file, not the folder
    (which another shard running would hold if it did), and the same shard twice is refused."""
    work = request.getfixturevalue(f"{command}_work")
    (work.out / folder).mkdir(parents=True, exist_ok=True)
    work.add("--shard", "1/2")
    mine = work.out / folder / f"{shard}.shard-001-of-002.h5"
    with held_lock(mine):
        result = net2brain(*work.args)
        assert result.code == 2 and f"another run holds {mine}" in result.err
    with held_lock(work.out / folder):
        assert net2brain(*work.args).code == 0
    assert mine.is_file()


# ================================================================== B. no exit 1 on input a user can give


def wide_volume(w: Work) -> None:
    """Voxels of 0.05 mm: a 150 mm sphere spans 3000 voxels each way."""
    fine = np.diag([0.05, 0.05, 0.05, 1.0])
    nifti(w.inputs / "sub-1.nii.gz", nib.load(w.inputs / "sub-1.nii.gz").get_fdata(dtype=np.float32), fine)
    nifti(w.inputs / "sub-2.nii.gz", nib.load(w.inputs / "sub-2.nii.gz").get_fdata(dtype=np.float32), fine)
    nifti(w.inputs / "mask.nii.gz", nib.load(w.inputs / "mask.nii.gz").get_fdata(dtype=np.float32), fine)
    w.set("--radius", 150)


def three_stimuli(w: Work) -> None:
    """Model and brain RDMs over 3 stimuli: most bootstrap samples draw too few distinct ones."""
    from tests.reliability.test_bad_input_net2brain import model_rdms

    model_rdms(w.inputs / "model.h5", IDS[:3], n=3)
    brain_rdms(w.inputs / "brain.h5", IDS[:3], n=3)
    w.add("--bootstrap", 200)


def intervals_defined(w: Work) -> None:
    import csv

    rows = list(csv.DictReader(open(w.out / "rsa.csv")))
    assert rows and all(row["ci_low"] != "" and float(row["ci_low"]) <= float(row["ci_high"]) for row in rows)


def more_shards_than_stimuli(w: Work) -> None:
    w.add("--shard", "2/5")  # 3 stimuli, 5 shards: shards 0 and 2 hold none


def empty_shard_written(w: Work) -> None:
    with h5py.File(w.out / "acts.shard-002-of-005.h5") as file:
        assert file["stimuli"].shape == (0,) and all(file["layers"][name].shape[0] == 0 for name in file["layers"])


def empty_encode_shard_written(w: Work) -> None:
    with h5py.File(w.out / "enc" / "encode.shard-003-of-005.h5") as file:  # conv and fc: shards 2 and 4
        assert "scores" not in file and int(file.attrs["items_total"]) == 2 and list(file["layers"].asstr()) == ["conv", "fc"]


def merged_as_the_unsharded_run(w: Work) -> None:
    """An empty shard (0 of 3, for 2 units) is merged like the others: the folder is the unsharded one."""
    whole, merged = w.out / "whole", w.out / "enc"
    assert (merged / "summary.csv").read_text() == (whole / "summary.csv").read_text()
    for path in whole.glob("*.nii.gz"):
        assert np.array_equal(nib.load(path).get_fdata(), nib.load(merged / path.name).get_fdata(), equal_nan=True)


def roi_named(w: Work, name: str) -> None:
    np.save(w.inputs / "sub-1.npy", np.random.default_rng(0).normal(size=(N, 4)))
    w.drop("--activations")
    w.add("--responses", w.inputs / "sub-1.npy", "--roi", name)


def failing_factory(kind: str):
    source, expected = FAILING_FACTORIES[kind]
    return lambda w: factory_file_for(w, source), expected


def factory_file_for(w: Work, source: str) -> None:
    if w.args[0] == "layers":
        factory_file(w, source)
    else:
        w.set("--model", f"{w.file('nets.py', source)}:build")


B = [
    # case id                          command        how the workspace is broken                                     expected
    ("seed-beyond-32-bits",            "extract",     lambda w: w.add("--seed", 2**64),                                ["--seed", "at most 4294967295"]),
    ("seed-negative",                  "extract",     lambda w: w.add("--seed", -1),                                   ["--seed", "0 or more"]),
    ("batch-size-beyond-range",        "extract",     lambda w: w.set("--batch-size", 10**9),                          ["--batch-size", "at most 100000"]),
    ("image-size-beyond-range",        "extract",     lambda w: w.set("--image-size", 100_000),                        ["--image-size", "at most 4096 pixels"]),
    ("clips-beyond-range",             "extract",     lambda w: w.add("--clips", 1001),                                ["--clips", "at most 1000"]),
    ("crop-pct-beyond-range",          "extract",     lambda w: w.add("--crop-pct", 1.5),                              ["--crop-pct", "between 0 and 1", "got 1.5"]),
    ("batch-beyond-memory",            "extract",     lambda w: (w.set("--image-size", 2048), w.set("--batch-size", 100_000)),
     ["extracting", "100000 stimuli at a time needs about", "of memory", "lower --batch-size"]),
    ("image-size-beyond-range",        "layers",      lambda w: w.set("--image-size", 10**5),                          ["--image-size", "at most 4096 pixels"]),
    ("memory-beyond-range",            "rdm",         lambda w: w.add("--memory", 2**30),                              ["--memory", "at most 1048576 MB"]),
    ("roi-name-empty",                 "rdm",         lambda w: roi_named(w, ""),                                      ["the name '' of an RDM", "is empty or a dot", "rename it"]),
    ("roi-name-a-dot",                 "rdm",         lambda w: roi_named(w, "."),                                     ["the name '.' of an RDM", "is empty or a dot"]),
    ("roi-name-with-a-slash",          "rdm",         lambda w: roi_named(w, "V1/left"),                               ["the name 'V1/left' of an RDM", "holds a /"]),
    ("mask-file-named-only-by-suffix", "rdm",         lambda w: (mask(w.inputs / ".nii.gz"), from_betas(w, masks=(".nii.gz",))), ["the name '' of an RDM", "rename it"]),
    ("bootstrap-beyond-range",         "rsa",         lambda w: w.add("--bootstrap", 10**7),                           ["--bootstrap", "at most 1000000"]),
    ("seed-negative",                  "rsa",         lambda w: w.add("--weighted", "--seed", -5),                     ["--seed", "0 or more"]),
    ("folds-beyond-range",             "rsa",         lambda w: w.add("--weighted", "--folds", 10**6),                 ["--folds", "at most 100000"]),
    ("radius-beyond-range",            "searchlight", lambda w: w.set("--radius", 1000),                               ["--radius", "at most 200 number of millimetres"]),
    ("radius-beyond-memory",           "searchlight", wide_volume,                                                     ["a searchlight of radius 150 mm", "needs about", "lower --batch-size or --radius"]),
    ("batch-size-beyond-range",        "searchlight", lambda w: w.add("--batch-size", 10**6),                          ["--batch-size", "at most 100000"]),
    ("min-voxels-zero",                "searchlight", lambda w: w.set("--min-voxels", 0),                              ["--min-voxels", "at least 1"]),
    ("stimulus-name-not-utf-8",        "extract",     lambda w: stimulus_named(w, b"caf\xe9.png"),                     ["stimulus folder {inputs}/stim", "b'caf\\xe9.png' is not valid UTF-8", "rename the file"]),
    ("bootstrap-over-3-stimuli",       "rsa",         three_stimuli,                                                   Accepted(["bootstrap samples over 3 stimuli", "left out of the confidence intervals"], intervals_defined)),
    ("more-shards-than-stimuli",       "extract",     more_shards_than_stimuli,                                        Accepted([], empty_shard_written)),
    ("inner-folds-beyond-range",       "encode",      lambda w: w.add("--inner", "kfold", "--inner-folds", 10**4),     ["--inner-folds", "at most 1000"]),
    ("more-shards-than-units",         "encode",      lambda w: w.add("--shard", "3/5"),                               Accepted([], empty_encode_shard_written)),
    ("an-empty-shard",                 "merge_encode", lambda w: None,                                                 Accepted([], merged_as_the_unsharded_run)),
    ("feature-file-name-not-utf-8",    "convert",     lambda w: npz_feature(w, b"caf\xe9.png.npz", fc=np.zeros((1, 4))),
     ["Net2Brain feature folder {inputs}/n2b", "b'caf\\xe9.png.npz' is not valid UTF-8", "rename the file"]),
    ("layer-name-with-a-slash",        "convert",     lambda w: [npz_feature(w, f"img_{i}.png.npz".encode(), **{"a/b": np.zeros((1, 4))}) for i in (1, 2, 3)],
     ["the name 'a/b' of layer holds a /", "rename it"]),
    *[(f"factory-{kind}", command, failing_factory(kind)[0], failing_factory(kind)[1])
      for kind in FAILING_FACTORIES for command in ("layers", "extract")],
]


@pytest.mark.parametrize(("command", "brk", "expected"), command_table(B))
def test_class_b_no_exit_1(request, net2brain, command, brk, expected):
    run_case(request, net2brain, command, brk, expected)


def test_merge_takes_an_empty_shard(net2brain, tmp_path, images):
    """B5: more shards than stimuli; the empty shard is merged like the others."""
    for index in range(3):
        args = ["extract", *MODEL, "--stimuli", images, "--out", tmp_path / "acts.h5", "--shard", f"{index}/9"]
        assert net2brain(*args).code == 0
    for index in range(3, 9):  # shards 7 and 8 of 7 images are empty
        assert net2brain("extract", *MODEL, "--stimuli", images, "--out", tmp_path / "acts.h5", "--shard", f"{index}/9").code == 0
    assert net2brain("merge", "--out", tmp_path / "acts.h5").code == 0
    whole = tmp_path / "whole.h5"
    assert net2brain("extract", *MODEL, "--stimuli", images, "--out", whole).code == 0
    with h5py.File(tmp_path / "acts.h5") as merged, h5py.File(whole) as single:
        assert list(merged["stimuli"].asstr()) == list(single["stimuli"].asstr())
        for name in single["layers"]:  # batches of other sizes: the same numbers to float32 rounding
            np.testing.assert_allclose(merged["layers"][name][()], single["layers"][name][()], rtol=1e-5, atol=1e-6)


# ================================================================== C. no silent wrong numbers


def save_pixels(w: Work, name: str, pixels: np.ndarray, **options) -> None:
    Image.fromarray(pixels).save(w.inputs / "stim" / name, **options)


def eight_bit_twin(w: Work) -> Path:
    """The same stimuli as 8-bit PNGs, in a folder of their own."""
    twin = w.inputs / "twin"
    twin.mkdir(exist_ok=True)
    for path in sorted((w.inputs / "stim").iterdir()):
        grey = GREYS[path.stem] if path.stem in GREYS else np.asarray(Image.open(path).convert("RGB"))
        Image.fromarray(grey).save(twin / (path.stem + ".png"))
    return twin


GREYS = {"img_2": np.random.default_rng(2).integers(0, 256, (20, 20), dtype=np.uint8)}


def sixteen_bit_png(w: Work) -> None:
    grey = GREYS["img_2"]
    (w.inputs / "stim" / "img_2.png").unlink()
    save_pixels(w, "img_2.png", grey.astype(np.uint16) * 257)  # 8-bit values in 16 bits: x * 65535 / 255


def float_tiff(w: Work) -> None:
    grey = GREYS["img_2"]
    (w.inputs / "stim" / "img_2.png").unlink()
    save_pixels(w, "img_2.tif", grey.astype(np.float32) / 255)  # in [0, 1]


def same_as_the_8_bit_images(w: Work) -> None:
    from net2brain_fovex.extraction.activations import extract_to_file

    twin = eight_bit_twin(w)
    reference = w.tmp / "twin.h5"
    extract_to_file(MODEL[1], twin, reference, weights="random", image_size=16, batch_size=2)
    with h5py.File(w.out / "acts.h5") as got, h5py.File(reference) as expected:
        for name in expected["layers"]:
            np.testing.assert_allclose(got["layers"][name][()], expected["layers"][name][()], rtol=1e-5, atol=1e-6)


def mask_with_nan(w: Work) -> None:
    """A mask saved with NaN outside (as some tools write them): 1 in a 2 x 2 x 2 box."""
    data = np.full((4, 4, 3), np.nan, np.float32)
    data[0:2, 0:2, 0:2] = 1
    nifti(w.inputs / "V1.nii.gz", data)
    from_betas(w)


def rdm_of_the_box_only(w: Work) -> None:
    """The RDM of the 8 finite, non-zero voxels, against scipy's correlation distance."""
    from scipy.spatial.distance import pdist, squareform

    betas = nib.load(w.inputs / "sub-1.nii.gz").get_fdata()
    patterns = betas[0:2, 0:2, 0:2].reshape(8, N).T
    with h5py.File(w.out / "rdms.h5") as file:
        np.testing.assert_allclose(file["rdms/V1"][0], squareform(pdist(patterns, "correlation")), atol=1e-5)


def searchlight_mask_with_nan(w: Work) -> None:
    data = np.ones(GRID, np.float32)
    data[0, :, :] = np.nan  # NaN is outside, not inside
    data[1, :, :] = 0
    nifti(w.inputs / "mask.nii.gz", data)


def maps_outside_are_nan(w: Work) -> None:
    values = nib.load(w.out / "sl" / "sub-1_a.nii.gz").get_fdata()
    assert np.isnan(values[0:2]).all() and np.isfinite(values[2:]).any()


def responses_file(w: Work, path: Path) -> None:
    w.drop("--activations")
    w.add("--responses", path)


def big_outputs(w: Work) -> None:
    factory_file_for(w, "import torch\nclass Big(torch.nn.Module):\n    def forward(self, x):\n"
                        "        return x.mean(dim=(2, 3)) * 0 + 1e6\nclass Net(torch.nn.Module):\n"
                        "    def __init__(self):\n        super().__init__()\n        self.big = Big()\n"
                        "    def forward(self, x):\n        return self.big(x)\ndef build():\n    return Net()\n")
    w.add("--dtype", "float16")


def dangling_link(w: Work) -> None:
    link(w.inputs / "stim" / "img_9.png", w.inputs / "moved" / "img_9.png")


def searchlight_order(w: Work, *lines: str) -> None:
    w.add("--stimuli", w.file("order.txt", "\n".join(lines) + "\n"))


def duplicate_keys(w: Work, text: str) -> None:
    config(w, text)


def fc_features(w: Work) -> np.ndarray:
    with h5py.File(w.inputs / "acts.h5") as file:
        return file["layers/fc"][()]


def volume_model(w: Work) -> None:
    """Prediction mode (--out pred.nii.gz) with the saved model of layer fc of sub-1's voxels in the corner mask."""
    from net2brain_fovex.brain.encoding_files import encode_to_file

    encode_to_file(w.inputs / "acts.h5", w.inputs / "fit", betas=[w.inputs / "sub-1.nii.gz"],
                   mask=w.inputs / "corner.nii.gz", layers="fc", folds=3, save_models=True, device="cpu")
    predict_args(w, w.inputs / "fit" / "sub-1_fc_model.h5", "pred.nii.gz")


def predictions_at_the_mask_voxels(w: Work) -> None:
    """A volume per stimulus on sub-1's grid and affine: the model's predictions at the mask voxels, NaN elsewhere."""
    from net2brain_fovex.brain.encoding import predict

    image, training = nib.load(w.out / "pred.nii.gz"), nib.load(w.inputs / "sub-1.nii.gz")
    assert image.shape == (*training.shape[:3], NE) and np.array_equal(image.affine, training.affine)
    data = image.get_fdata(dtype=np.float32)
    inside = nib.load(w.inputs / "corner.nii.gz").get_fdata() > 0
    np.testing.assert_array_equal(data[inside].T, predict(w.inputs / "fit" / "sub-1_fc_model.h5", fc_features(w)))
    assert np.isnan(data[~inside]).all()


def bare_model(w: Work) -> None:
    """Prediction mode (--out pred.nii.gz) with a model a Python user saved without its targets' layout."""
    from net2brain_fovex.brain import encoding

    features, responses = fc_features(w), np.random.default_rng(7).normal(size=(NE, 3))
    parameters = encoding.EncodingParameters(folds=3)
    fitted = encoding.fit_encoding(features, responses, parameters, test_sets=encoding.outer_folds(NE, 3, 0))
    encoding.save_models(w.inputs / "bare.h5", features, responses, parameters, fitted, layer="fc")
    predict_args(w, w.inputs / "bare.h5", "pred.nii.gz")


C = [
    # case id                          command        how the workspace is broken                                     expected
    ("png-16-bit",                     "extract",     sixteen_bit_png,                                                 Accepted([], same_as_the_8_bit_images)),
    ("tiff-float-in-0-1",              "extract",     float_tiff,                                                      Accepted([], same_as_the_8_bit_images)),
    ("tiff-float-out-of-range",        "extract",     lambda w: save_pixels(w, "img_4.tif", np.linspace(-1, 300, 64, dtype=np.float32).reshape(8, 8)),
     ["{inputs}/stim/img_4.tif", "floating-point pixels from -1 to 300", "outside [0, 1] or [0, 255]"]),
    ("tiff-float-nan",                 "extract",     lambda w: save_pixels(w, "img_4.tif", np.full((8, 8), np.nan, np.float32)),
     ["{inputs}/stim/img_4.tif", "NaN or infinite pixels"]),
    ("float16-overflow",               "extract",     big_outputs,                                                     ["reaches 1e+06", "beyond the range of --dtype float16", "--dtype float32"]),
    ("mask-nan-is-outside",            "rdm",         mask_with_nan,                                                   Accepted(["mask {inputs}/V1.nii.gz holds", "NaN or infinite voxels", "count as outside"], rdm_of_the_box_only)),
    ("mask-nan-is-outside",            "searchlight", searchlight_mask_with_nan,                                       Accepted(["NaN or infinite voxels", "count as outside"], maps_outside_are_nan)),
    ("alpha-above-1",                  "searchlight", lambda w: w.add("--alpha", 2),                                   ["--alpha", "between 0 and 1"]),
    ("threshold-nan",                  "searchlight", lambda w: w.add("--threshold", "nan"),                           ["--threshold", "finite number"]),
    ("crop-pct-nan",                   "extract",     lambda w: w.add("--crop-pct", "nan"),                            ["--crop-pct", "finite number", "got nan"]),
    ("npz-with-two-arrays",            "rdm",         lambda w: (np.savez(w.inputs / "r.npz", a=np.ones((N, 3)), b=np.ones((N, 3))), responses_file(w, w.inputs / "r.npz")),
     ["{inputs}/r.npz holds 2 arrays (a, b)", "choose one with --key"]),
    ("mat-with-two-arrays",            "rdm",         lambda w: (scipy.io.savemat(w.inputs / "r.mat", {"a": np.ones((N, 3)), "b": np.ones((N, 3))}), responses_file(w, w.inputs / "r.mat")),
     ["{inputs}/r.mat holds 2 numeric arrays (a, b)", "choose one with --key"]),
    ("brain-mat-with-two-rdm-stacks",  "rsa",         lambda w: (scipy.io.savemat(w.inputs / "IT.mat", {"s1": np.zeros((2, N, N)), "s2": np.zeros((2, N, N))}), w.set("--brain-rdms", w.inputs / "IT.mat")),
     ["{inputs}/IT.mat holds 2 variables that could be RDMs (s1, s2)", "keep only one"]),
    ("dangling-link-in-the-folder",    "extract",     dangling_link,                                                   ["stimulus folder {inputs}/stim", "img_9.png is a broken link", "remove it"]),
    ("list-names-a-file-twice",        "extract",     lambda w: list_stimuli(w, "stim/img_1.png", "./stim/img_1.png"),  ["list.txt, line 2", "'./stim/img_1.png' is the file of line 1", "list each stimulus once"]),
    ("list-names-a-file-twice",        "searchlight", lambda w: searchlight_order(w, *[f"stim/img_{i}.png" for i in range(1, N)], "stim/../stim/img_1.png"),
     ["order.txt, line 6", "is the file of line 1"]),
    ("config-key-twice",               "extract",     lambda w: duplicate_keys(w, "batch-size: 2\nframes: 4\nbatch-size: 3\n"), ["{inputs}/options.yaml", "key 'batch-size' is given twice, on lines 1 and 3"]),
    ("config-option-in-two-spellings", "rdm",         lambda w: duplicate_keys(w, "memory: 10\nmetric: cosine\nmemory: 5\n"), ["{inputs}/options.yaml", "'memory' is given twice, on lines 1 and 3"]),
    ("config-option-in-two-spellings", "rsa",         lambda w: duplicate_keys(w, "compare: pearson\nfolds: 3\ncompare: kendall\n"), ["key 'compare' is given twice, on lines 1 and 3"]),
    ("config-dash-and-underscore",     "searchlight", lambda w: duplicate_keys(w, "min-voxels: 2\nmin_voxels: 3\n"),  ["option 'min_voxels' (line 2) is given twice, also as 'min-voxels' (line 1)"]),
    ("config-key-twice",               "models",      lambda w: duplicate_keys(w, "filter: vit\nfilter: resnet\n"),    ["key 'filter' is given twice, on lines 1 and 2"]),
    ("config-key-twice",               "layers",      lambda w: duplicate_keys(w, "image-size: 16\nimage-size: 32\n"), ["key 'image-size' is given twice"]),
    ("config-key-twice",               "merge",       lambda w: duplicate_keys(w, "overwrite: true\noverwrite: false\n"), ["key 'overwrite' is given twice"]),
    ("config-key-twice",               "demo",        lambda w: duplicate_keys(w, "device: cpu\ndevice: cuda\n"),      ["key 'device' is given twice"]),
    ("config-value-out-of-range",      "searchlight", lambda w: (w.drop("--radius"), config(w, "radius: 0\n")),        ["--radius must be a positive number", "set in config file {inputs}/options.yaml"]),
    ("config-value-out-of-range",      "rdm",         lambda w: config(w, "memory: 0\n"),                              ["--memory", "(--memory is set in config file {inputs}/options.yaml)"]),
    ("config-value-out-of-range",      "extract",     lambda w: config(w, "seed: -3\n"),                               ["--seed", "set in config file {inputs}/options.yaml"]),
    ("config-value-out-of-range",      "rsa",         lambda w: config(w, "bootstrap: -1\n"),                          ["--bootstrap", "set in config file {inputs}/options.yaml"]),
    ("predictions-nifti-on-the-training-grid", "encode", volume_model,                                                  Accepted([], predictions_at_the_mask_voxels)),
    ("predictions-nifti-of-a-model-without-layout", "encode", bare_model,                                              ["--out {out}/pred.nii.gz is a NIfTI", "models targets of no volume", ".npy or .h5"]),
    ("integers-then-floats",           "convert",     integers_then_floats,                                           Accepted([], every_value_kept)),
    ("features-nan",                   "convert",     lambda w: npz_feature(w, b"img_2.png.npz", fc=np.array([[0.5, np.nan, 1.0, 2.0]])),
     Accepted(["warning", "layer 'fc' holds NaN or infinite values (first in stimulus 'img_2.png')", "rdm, rsa and encode refuse"], every_value_kept)),
]


@pytest.mark.parametrize(("command", "brk", "expected"), command_table(C))
def test_class_c_no_silent_wrong_numbers(request, net2brain, command, brk, expected):
    run_case(request, net2brain, command, brk, expected)


def test_net2brain_npz_with_more_arrays_is_read_as_net2brain_does_and_says_so(net2brain, rsa_work):  # noqa: F811
    """C11, a neighbour's format: Net2Brain reads the first array of its .npz; so do we, with a warning."""
    from net2brain_fovex.brain.rdm_files import read_brain_rdms

    stack = read_brain_rdms(rsa_work.inputs / "brain.h5").rdms["V1"]
    np.savez(rsa_work.inputs / "V1.npz", stack, np.arange(N))
    rsa_work.set("--brain-rdms", rsa_work.inputs / "V1.npz")
    result = net2brain(*rsa_work.args)
    assert result.code == 0 and "read the first, 'arr_0', as Net2Brain does, and ignored arr_1" in result.err


# ================================================================== D. messages that say what happened


def bom_list(w: Work) -> None:
    w.set("--stimuli", w.file("list.txt", "\ufeffstim/img_1.png\nstim/img_2.png\n".encode("utf-8")))


def extracted_two(w: Work) -> None:
    with h5py.File(w.out / "acts.h5") as file:
        assert list(file["stimuli"].asstr()) == ["stim/img_1.png", "stim/img_2.png"]


D = [
    # case id                          command        how the workspace is broken                                     expected
    ("list-with-a-byte-order-mark",    "extract",     bom_list,                                                        Accepted([], extracted_two)),
    ("stimuli-a-fifo",                 "extract",     lambda w: w.set("--stimuli", fifo(w.inputs / "list.txt")),       ["{inputs}/list.txt is a FIFO"]),
    ("stimuli-a-link-loop",            "extract",     lambda w: w.set("--stimuli", link_loop(w.inputs / "loop")),      ["{inputs}/loop is a loop of links"]),
    ("fifo-in-the-folder",             "extract",     lambda w: fifo(w.inputs / "stim" / "img_9.png"),                 ["img_9.png is a FIFO", "give a regular file"]),
    ("activations-a-fifo",             "rdm",         lambda w: w.set("--activations", fifo(w.inputs / "pipe.h5")),    ["{inputs}/pipe.h5 is a FIFO"]),
    ("activations-a-broken-link",      "rdm",         lambda w: w.set("--activations", link(w.inputs / "old.h5", w.inputs / "moved.h5")), ["{inputs}/old.h5 is a broken link (to {inputs}/moved.h5)"]),
    ("activations-a-link-loop",        "rdm",         lambda w: w.set("--activations", link_loop(w.inputs / "loop.h5")), ["{inputs}/loop.h5 is a loop of links"]),
    ("responses-a-folder",             "rdm",         lambda w: responses_file(w, w.folder("subject.npy")),            ["{inputs}/subject.npy is a folder"]),
    ("model-rdms-a-fifo",              "rsa",         lambda w: w.set("--model-rdms", fifo(w.inputs / "pipe.h5")),     ["{inputs}/pipe.h5 is a FIFO"]),
    ("brain-rdms-a-broken-link",       "rsa",         lambda w: w.set("--brain-rdms", link(w.inputs / "old.h5", w.inputs / "gone.h5")), ["{inputs}/old.h5 is a broken link"]),
    ("betas-a-fifo",                   "searchlight", lambda w: w.set("--mask", fifo(w.inputs / "pipe.nii.gz")),       ["{inputs}/pipe.nii.gz is a FIFO"]),
    ("shard-a-link-loop",              "merge",       lambda w: merge_args(w, SHARD_0, link_loop(w.inputs / "loop.h5").name), ["{inputs}/loop.h5 is a loop of links"]),
    ("file-a-fifo",                    "info",        lambda w: w.args.insert(1, str(fifo(w.inputs / "pipe.h5"))),     ["{inputs}/pipe.h5 is a FIFO"]),
    ("config-a-fifo",                  "rsa",         lambda w: w.add("--config", fifo(w.inputs / "options.yaml")),    ["{inputs}/options.yaml is a FIFO"]),
    ("mask-a-fifo",                    "encode",      lambda w: w.set("--mask", fifo(w.inputs / "pipe.nii.gz")),       ["{inputs}/pipe.nii.gz is a FIFO"]),
    ("activations-a-link-loop",        "encode",      lambda w: w.set("--activations", link_loop(w.inputs / "loop.h5")), ["{inputs}/loop.h5 is a loop of links"]),
    ("against-a-link-loop",            "cka",         lambda w: w.set("--against", link_loop(w.inputs / "loop.h5")),  ["{inputs}/loop.h5 is a loop of links"]),
    ("responses-a-fifo",               "cka",         lambda w: (w.drop("--against"), w.add("--responses", fifo(w.inputs / "pipe.npy"))), ["{inputs}/pipe.npy is a FIFO"]),
    ("folder-a-link-loop",             "report",      lambda w: w.args.__setitem__(1, str(link_loop(w.inputs / "loop"))), ["{inputs}/loop is a loop of links"]),
    ("folder-a-broken-link",           "report",      lambda w: w.args.__setitem__(1, str(link(w.inputs / "old", w.inputs / "moved"))), ["{inputs}/old is a broken link"]),
    ("source-a-link-loop",             "convert",     lambda w: w.argument(link_loop(w.inputs / "loop")),             ["{inputs}/loop is a loop of links"]),
    ("source-a-fifo",                  "convert",     lambda w: w.argument(fifo(w.inputs / "pipe")),                  ["{inputs}/pipe is a FIFO"]),
    ("feature-file-a-folder",          "convert",     lambda w: w.folder("n2b/img_4.png.npz"),                        ["Net2Brain feature folder {inputs}/n2b: img_4.png.npz is a folder"]),
]


@pytest.mark.parametrize(("command", "brk", "expected"), command_table(D))
def test_class_d_messages_say_what_happened(request, net2brain, command, brk, expected):
    run_case(request, net2brain, command, brk, expected)


HELD = [
    # case id                          command        what another process holds                                     expected
    ("activations-being-written",      "rdm",         Held(held_open, lambda w: w.inputs / "acts.h5", ["{inputs}/acts.h5 is open for writing in another program", "wait"])),
    ("model-rdms-being-written",       "rsa",         Held(held_open, lambda w: w.inputs / "model.h5", ["{inputs}/model.h5 is open for writing in another program"])),
    ("shard-being-written",            "merge",       Held(held_open, lambda w: w.inputs / SHARD_1, [f"{{inputs}}/{SHARD_1} is open for writing in another program"])),
    ("shard-being-written",            "merge_encode", Held(held_open, lambda w: w.out / SHARDS_E[1], [f"{{out}}/{SHARDS_E[1]} is open for writing in another program"])),
    ("out-held-by-another-run",        "merge_encode", Held(held_lock, lambda w: w.out / "enc", ["another run holds {out}/enc"])),
    ("out-held-by-another-run",        "extract",     Held(held_lock, lambda w: w.out / "acts.h5", ["another run holds {out}/acts.h5", "!--resume"])),
    ("out-held-by-another-run",        "searchlight", Held(held_lock, lambda w: w.out / "sl", ["another run holds {out}/sl"])),
    ("out-held-by-another-run",        "merge",       Held(held_lock, lambda w: w.out / "acts.h5", ["another run holds {out}/acts.h5"])),
    ("activations-being-written",      "encode",      Held(held_open, lambda w: w.inputs / "acts.h5", ["{inputs}/acts.h5 is open for writing in another program"])),
    ("against-being-written",          "cka",         Held(held_open, lambda w: w.inputs / "b.h5", ["{inputs}/b.h5 is open for writing in another program"])),
    ("out-held-by-another-run",        "report",      Held(held_lock, lambda w: w.inputs / "run" / "report.html", ["another run holds {inputs}/run/report.html"])),
    ("out-held-by-another-run",        "convert",     Held(held_lock, lambda w: w.out / "acts.h5", ["another run holds {out}/acts.h5"])),
]


@pytest.mark.parametrize(("command", "held"), [pytest.param(command, held, id=f"{command}-{case}") for case, command, held in HELD])
def test_class_d_files_held_by_another_process(request, net2brain, command, held):
    brk = (lambda w: merge_args(w, SHARD_0, SHARD_1)) if command == "merge" else (lambda w: None)
    run_held(request, net2brain, command, brk, held)


def test_predictions_held_by_another_run(request, net2brain):
    """`encode --predict` locks its --out as the fits lock their folder."""
    run_held(request, net2brain, "encode", volume_model,
             Held(held_lock, lambda w: w.out / "pred.nii.gz", ["another run holds {out}/pred.nii.gz"]))
