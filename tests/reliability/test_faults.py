"""Reliability under faults: whatever happens, a command either produces a correct output or
exits with a clear message, and never leaves a corrupt or half-written file that a later step
could mistake for a good one.

The long-running commands (`net2brain extract`, `rdm` on streamed layers, `searchlight`,
`fovex explain`, `fovex evaluate`) run as subprocesses and are killed (SIGKILL, SIGTERM) or
interrupted (SIGINT, Ctrl-C) at points chosen from their progress lines (the environment sets
NET2BRAIN_LOG_INTERVAL=0 / FOVEX_LOG_INTERVAL=0: one line per batch, written after the batch)
or from the files they write. After each fault

(a) no file exists under an output name unless it is complete: only `<out>.partial` or hidden
    temporary files `.<out>.*` are left; a searchlight folder has no summary.csv (its
    completion marker); an unfinished `.partial` file is refused as an input;
(b) `--resume` (extract, explain, evaluate) or a plain rerun (rdm, searchlight, without
    --overwrite) finishes with outputs identical to an uninterrupted run: every HDF5 dataset
    (np.array_equal), NIfTI data arrays, CSV text.

A full disk (RLIMIT_FSIZE in the subprocess: Python ignores SIGXFSZ, so writes fail with
EFBIG) and an unwritable output folder exit 2 with one line and leave no output file.

The slow toy model (tests/toy_models.py `slow_cnn`) sleeps in every forward pass of the
killed runs (SLOW_CNN_SLEEP) and not in the in-process reference and resumed runs. The
default run keeps one case per command and fault; `-m slow` adds more kill points, SIGTERM
and the full disk of every command.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest

from tests.conftest import factory, write_images

N_IMAGES = 8
SLEEP = "0.25"  # seconds per forward pass of slow_cnn in the runs that are killed
MODEL = ["--model", factory("slow_cnn"), "--weights", "random", "--image-size", 16, "--batch-size", 2]
EXPLAIN = ["--method", "gradcam"]
EVALUATE = ["--step", 64]
RDM = ["--memory", 1, "--metric", "manhattan"]  # 1 MB: every layer streams in 8 chunks
SEARCHLIGHT = ["--radius", 6, "--batch-size", 64]
PROGRESS = re.compile(r": (\d+)/(\d+)[ (]")
KILLED = {signal.SIGKILL: -signal.SIGKILL, signal.SIGTERM: -signal.SIGTERM, signal.SIGINT: 130}


# ------------------------------------------------------------------------------ helpers


@contextlib.contextmanager
def environment(**values: str):
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def call(tool: str, *args) -> int:
    """Run a command in this process, without the model's sleep; returns the exit code."""
    if tool == "net2brain":
        from net2brain_cli.app import main
    else:
        from fovex_cli.app import main
    with environment(SLOW_CNN_SLEEP="0"):
        return main([str(a) for a in args])


@pytest.fixture(autouse=True)
def no_sleep_in_process(monkeypatch):
    """In-process runs (the `net2brain` / `fovex` fixtures) do not sleep; subprocesses say so."""
    monkeypatch.setenv("SLOW_CNN_SLEEP", "0")


class Watched:
    """A command in a subprocess that logs a progress line per batch; its stderr is read
    line by line by a thread, so that a test can act on the line it waits for."""

    def __init__(self, tool: str, *args, sleep: str = SLEEP) -> None:
        env = {**os.environ, "NET2BRAIN_LOG_INTERVAL": "0", "FOVEX_LOG_INTERVAL": "0", "SLOW_CNN_SLEEP": sleep}
        command = [sys.executable, "-m", f"{tool}_cli", *map(str, args)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                        env=env)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line)

    @property
    def err(self) -> str:
        return "".join(self.lines)

    def done(self) -> int:
        """Work done by the last progress line (0 before the first)."""
        counts = [int(m[1]) for line in list(self.lines) if (m := PROGRESS.search(line))]
        return counts[-1] if counts else 0

    def wait_until(self, condition, what: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None:
                self.reader.join(5)
                pytest.fail(f"the command ended (exit {self.process.returncode}) before {what}:\n{self.err[-3000:]}")
            if time.monotonic() > deadline:
                self.process.kill()
                pytest.fail(f"no {what} within {timeout} s:\n{self.err[-3000:]}")
            time.sleep(0.001)

    def stop(self, sig: signal.Signals) -> str:
        """Send `sig`, wait for the end, check the exit status; returns stderr."""
        self.process.send_signal(sig)
        try:
            code = self.process.wait(120)
        finally:
            self.process.kill()
        self.reader.join(10)
        assert code == KILLED[sig], f"exit {code} after {sig.name}:\n{self.err[-3000:]}"
        if sig == signal.SIGINT:
            assert "interrupted" in self.err, self.err[-3000:]
            assert "Traceback" not in self.err and "Exception ignored" not in self.err, self.err[-3000:]
        return self.err


def case(sig: signal.Signals, point, slow: bool = False):
    """A (signal, kill point) parameter: `SIGKILL-2`, `SIGINT-maps-3` ..."""
    name = "-".join(map(str, (sig.name, *(point if isinstance(point, tuple) else (point,)))))
    return pytest.param(sig, point, marks=[pytest.mark.slow] if slow else [], id=name)


def kill_at(watched: Watched, point, sig: signal.Signals) -> str:
    """Wait for the kill point, then send `sig`: an int is a progress count (the first
    progress line with at least that much done), a callable a condition."""
    try:
        if callable(point):
            watched.wait_until(point, "the kill point")
        else:
            watched.wait_until(lambda: watched.done() >= point, f"progress {point}")
    except BaseException:
        watched.process.kill()
        raise
    return watched.stop(sig)


def same_array(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))


def h5_datasets(path: Path) -> dict[str, np.ndarray]:
    found = {}
    with h5py.File(path, "r") as file:
        file.visititems(lambda name, node: found.__setitem__(name, node[()]) if isinstance(node, h5py.Dataset) else None)
    return found


def assert_same_h5(got: Path, expected: Path) -> None:
    """Every dataset of the two files is identical (attributes such as times may differ)."""
    a, b = h5_datasets(got), h5_datasets(expected)
    assert sorted(a) == sorted(b), (sorted(a), sorted(b))
    for name in a:
        assert same_array(a[name], b[name]), f"{got}: dataset {name} differs"


def assert_same_nifti(got: Path, expected: Path) -> None:
    a, b = nib.load(got), nib.load(expected)
    assert same_array(np.asarray(a.dataobj), np.asarray(b.dataobj)), got
    assert same_array(a.affine, b.affine) and a.header.binaryblock == b.header.binaryblock, got


def assert_same_folder(got: Path, expected: Path) -> None:
    """A searchlight folder: the same files, maps with the same data, the same summary.csv."""
    names = sorted(p.name for p in got.iterdir() if not p.name.startswith("."))
    assert names == sorted(p.name for p in expected.iterdir() if not p.name.startswith(".")), names
    for name in names:
        if name.endswith(".nii.gz"):
            assert_same_nifti(got / name, expected / name)
    assert (got / "summary.csv").read_text() == (expected / "summary.csv").read_text()


def assert_only_leftovers(folder: Path, outputs: list[str], before: set[str]) -> list[str]:
    """No file under an output name; what appeared besides is `<out>.partial` or a hidden
    temporary `.<out>.*`. Returns the new names."""
    for name in outputs:
        assert not (folder / name).exists(), f"{name} exists after the fault"
    new = sorted({p.name for p in folder.iterdir()} - before)
    allowed = [n for n in new if any(n == f"{o}.partial" or n.startswith(f".{o}.") for o in outputs)]
    assert new == allowed, f"unexpected files after the fault: {new}"
    return new


def rows_done(partial: Path) -> int | None:
    """The row counter of a partial file; None when the kill damaged the file (while it was
    being made: then --resume starts again)."""
    try:
        with h5py.File(partial, "r", locking=False) as file:
            return int(file["_rows_done"][()])
    except (OSError, KeyError):
        return None


def error_line(err: str, tool: str) -> str:
    """The one error line of a failed command (and no traceback)."""
    assert "Traceback" not in err and "Exception ignored" not in err, err
    lines = [line for line in err.splitlines() if line.startswith(f"{tool}: error: ")]
    assert len(lines) == 1, err
    return lines[0]


# ------------------------------------------------------------------------------ data


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """Inputs of every command and the outputs of uninterrupted runs (in this process)."""
    root = tmp_path_factory.mktemp("faults")
    paths = {"root": root, "images": write_images(root / "images", N_IMAGES, size=20)}
    ref = root / "reference"
    ref.mkdir()
    assert call("net2brain", "extract", *MODEL, "--stimuli", paths["images"], "--out", ref / "acts.h5") == 0
    assert call("fovex", "explain", *MODEL, *EXPLAIN, "--images", paths["images"], "--out", ref / "maps.h5") == 0
    assert call("fovex", "evaluate", *MODEL, *EVALUATE, "--images", paths["images"], "--maps", ref / "maps.h5",
                "--out", ref / "metrics.csv") == 0
    # activations with three layers of 8 channels x 400 features for 400 stimuli
    paths["acts"] = root / "big_acts.h5"
    rng = np.random.default_rng(0)
    with h5py.File(paths["acts"], "w") as file:
        file.attrs.update({"kind": "activations", "model": "toy", "source": "test", "weights": "random"})
        file.create_dataset("stimuli", data=np.array([f"s{i:03d}" for i in range(400)], dtype=h5py.string_dtype()))
        layers = file.create_group("layers", track_order=True)
        for name in ("conv1", "conv2", "conv3"):
            layers.create_dataset(name, data=rng.normal(size=(400, 8, 400)).astype(np.float32), chunks=(16, 8, 400))
    assert call("net2brain", "rdm", "--activations", paths["acts"], *RDM, "--out", ref / "rdms.h5") == 0
    # 3 subjects' volumes (16 x 16 x 12 voxels, 16 stimuli) and 3 model RDMs
    from net2brain_fovex.brain.rdm import compute_rdm
    from net2brain_fovex.brain.rdm_files import write_rdms
    from net2brain_fovex.demo.synthetic import simulate_volumes

    rdms = {name: compute_rdm(rng.normal(size=(16, 40)), precision="double") for name in "abc"}
    volumes, affine = simulate_volumes(rdms, {"a": (4, 8, 6), "b": (11, 8, 6)}, subjects=3, noise=0.5, seed=3)
    betas = []
    for number, volume in enumerate(volumes):
        betas.append(root / f"sub-{number + 1}.nii")
        nib.save(nib.Nifti1Image(volume.astype(np.float32), affine), betas[-1])
    paths["betas"] = [arg for path in betas for arg in ("--betas", path)]
    paths["model_rdms"] = root / "model_rdms.h5"
    write_rdms(paths["model_rdms"], [f"s{i:02d}" for i in range(16)], rdms, metric="correlation")
    assert call("net2brain", "searchlight", *paths["betas"], "--model-rdms", paths["model_rdms"], *SEARCHLIGHT,
                "--out-dir", ref / "searchlight") == 0
    paths["ref"] = ref
    return paths


def files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


# ------------------------------------------------------------------------------ extract


def extract_args(data, out: Path) -> list:
    return ["extract", *MODEL, "--stimuli", data["images"], "--out", out]


def check_extract(net2brain, data, work: Path, before: set[str]) -> None:
    out = work / "acts.h5"
    left = assert_only_leftovers(work, ["acts.h5", "acts.config.yaml"], before)
    partial = work / "acts.h5.partial"
    if partial.exists():
        done = rows_done(partial)
        assert done is None or 0 <= done <= N_IMAGES  # all rows may be in, the file not finished
        result = net2brain("rdm", "--activations", partial, "--out", work / "rdms.h5")  # a later step is not fooled
        assert result.code == 2 and "is the unfinished file of an interrupted run" in result.err, result
        result = net2brain(*extract_args(data, out))  # nor is the partial file thrown away
        assert result.code == 2 and "add --resume to continue it" in result.err, result
    result = net2brain(*extract_args(data, out), "--resume")
    assert result.code == 0, result
    assert_same_h5(out, data["ref"] / "acts.h5")
    # hidden files the kill left may stay (a temporary file), or be taken and removed (the run's lock)
    new = files(work) - before
    assert {"acts.h5", "acts.config.yaml"} <= new <= {"acts.h5", "acts.config.yaml"} | {n for n in left if n.startswith(".")}
    assert ".acts.h5.lock" not in new


@pytest.mark.parametrize(("sig", "point"), [
    case(signal.SIGKILL, 2),
    case(signal.SIGKILL, 6, slow=True),
    case(signal.SIGTERM, 4, slow=True),
    case(signal.SIGINT, 2, slow=True),
    case(signal.SIGINT, 6, slow=True),
    case(signal.SIGKILL, "partial", slow=True),  # as soon as the partial file exists
])
def test_extract_interrupted_then_resumed(net2brain, data, tmp_path, sig, point):
    before = files(tmp_path)
    if point == "partial":
        point = (tmp_path / "acts.h5.partial").exists
    kill_at(Watched("net2brain", *extract_args(data, tmp_path / "acts.h5")), point, sig)
    assert (tmp_path / "acts.h5.partial").exists()  # killed mid-run
    check_extract(net2brain, data, tmp_path, before)


@pytest.mark.slow
def test_extract_killed_at_its_last_line(net2brain, data, tmp_path):
    """Killed while it finishes: the output is either absent or complete."""
    before = files(tmp_path)
    kill_at(Watched("net2brain", *extract_args(data, tmp_path / "acts.h5")), N_IMAGES, signal.SIGKILL)
    if (tmp_path / "acts.h5").exists():
        assert_same_h5(tmp_path / "acts.h5", data["ref"] / "acts.h5")
    else:
        check_extract(net2brain, data, tmp_path, before)


# ------------------------------------------------------------------------------ rdm


def rdm_args(data, out: Path) -> list:
    return ["rdm", "--activations", data["acts"], *RDM, "--out", out]


def check_rdm(net2brain, data, work: Path, before: set[str]) -> None:
    assert_only_leftovers(work, ["rdms.h5", "rdms.config.yaml"], before)
    result = net2brain(*rdm_args(data, work / "rdms.h5"))  # a plain rerun, without --overwrite
    assert result.code == 0, result
    assert_same_h5(work / "rdms.h5", data["ref"] / "rdms.h5")


@pytest.mark.parametrize(("sig", "point"), [
    case(signal.SIGKILL, 1),  # after the first layer: while the second streams its chunks
    case(signal.SIGKILL, 2, slow=True),
    case(signal.SIGTERM, 1, slow=True),
    case(signal.SIGINT, 1, slow=True),
    case(signal.SIGINT, 2, slow=True),
])
def test_rdm_interrupted_then_rerun(net2brain, data, tmp_path, sig, point):
    before = files(tmp_path)
    kill_at(Watched("net2brain", *rdm_args(data, tmp_path / "rdms.h5")), point, sig)
    check_rdm(net2brain, data, tmp_path, before)


@pytest.mark.slow
def test_rdm_killed_while_writing(net2brain, tmp_path):
    """Killed while the temporary file of 27 MB of RDMs is written: a hidden temporary
    is left, no rdms.h5, and a rerun writes the file an uninterrupted run writes."""
    acts = tmp_path / "inputs" / "acts.h5"
    acts.parent.mkdir()
    rng = np.random.default_rng(1)
    with h5py.File(acts, "w") as file:
        file.attrs["kind"] = "activations"
        file.create_dataset("stimuli", data=np.array([f"s{i}" for i in range(1500)], dtype=h5py.string_dtype()))
        for name in ("a", "b", "c"):
            file.create_dataset(f"layers/{name}", data=rng.normal(size=(1500, 50)).astype(np.float32))
    assert net2brain("rdm", "--activations", acts, "--out", acts.parent / "reference.h5").code == 0
    work = tmp_path / "work"
    work.mkdir()
    writing = lambda: any(name.startswith(".rdms.h5.") for name in os.listdir(work))  # noqa: E731
    kill_at(Watched("net2brain", "rdm", "--activations", acts, "--out", work / "rdms.h5"), writing, signal.SIGKILL)
    assert [name.startswith(".rdms.h5.") for name in assert_only_leftovers(work, ["rdms.h5"], set())] == [True]
    assert net2brain("rdm", "--activations", acts, "--out", work / "rdms.h5").code == 0
    assert_same_h5(work / "rdms.h5", acts.parent / "reference.h5")


# ------------------------------------------------------------------------------ searchlight


def searchlight_args(data, out_dir: Path) -> list:
    return ["searchlight", *data["betas"], "--model-rdms", data["model_rdms"], *SEARCHLIGHT, "--out-dir", out_dir]


def maps_written(out_dir: Path, count: int):
    def condition() -> bool:
        return out_dir.is_dir() and sum(1 for n in os.listdir(out_dir) if n.endswith(".nii.gz") and n[0] != ".") >= count
    return condition


def check_searchlight(net2brain, data, out_dir: Path) -> None:
    reference = data["ref"] / "searchlight"
    out_dir.mkdir(exist_ok=True)  # killed before it had anything to write, there is no folder
    assert not (out_dir / "summary.csv").exists()  # the folder is not complete
    for path in out_dir.iterdir():  # complete maps of the reference's names, the config, hidden temporaries
        assert (path.name.startswith(".") or path.name == "searchlight.config.yaml"
                or (path.name.endswith(".nii.gz") and (reference / path.name).exists())), path
    leftovers = [p for p in out_dir.iterdir() if p.name.endswith(".nii.gz") and not p.name.startswith(".")]
    result = net2brain(*searchlight_args(data, out_dir))  # a plain rerun: not blocked by the leftover maps
    assert result.code == 0, result
    if leftovers:
        assert f"replacing {len(leftovers)} maps left by an interrupted run" in result.err
    assert_same_folder(out_dir, reference)


@pytest.mark.parametrize(("sig", "point"), [
    case(signal.SIGKILL, ("maps", 2)),  # in the middle of writing the maps
    case(signal.SIGKILL, ("maps", 10), slow=True),  # the group maps
    case(signal.SIGKILL, ("centres", 3000), slow=True),  # computing
    case(signal.SIGTERM, ("maps", 5), slow=True),
    case(signal.SIGINT, ("maps", 3), slow=True),
    case(signal.SIGINT, ("centres", 6000), slow=True),
])
def test_searchlight_interrupted_then_rerun(net2brain, data, tmp_path, sig, point):
    out_dir = tmp_path / "searchlight"
    kind, count = point
    point = maps_written(out_dir, count) if kind == "maps" else count
    kill_at(Watched("net2brain", *searchlight_args(data, out_dir)), point, sig)
    if kind == "maps":  # killed half-way through the maps: the case a rerun used to refuse
        assert maps_written(out_dir, count)() and not (out_dir / "summary.csv").exists()
    check_searchlight(net2brain, data, out_dir)


@pytest.mark.slow
def test_searchlight_overwrite_killed_leaves_no_summary(net2brain, data, tmp_path):
    """--overwrite of a complete folder removes its summary.csv before the first new map:
    killed half-way, the folder mixes old and new maps and says it is incomplete."""
    out_dir = tmp_path / "searchlight"
    shutil.copytree(data["ref"] / "searchlight", out_dir)
    result = net2brain(*searchlight_args(data, out_dir))
    assert result.code == 2 and "summary.csv exists already; add --overwrite" in result.err, result
    watched = Watched("net2brain", *searchlight_args(data, out_dir), "--overwrite")
    first = out_dir / "sub-1_a.nii.gz"
    stamp = first.stat().st_mtime_ns
    kill_at(watched, lambda: not (out_dir / "summary.csv").exists() and first.stat().st_mtime_ns != stamp, signal.SIGKILL)
    check_searchlight(net2brain, data, out_dir)


def test_searchlight_leftover_maps_are_replaced_and_a_complete_folder_is_kept(net2brain, data, tmp_path):
    """The rule without a kill: maps in a folder without summary.csv are an interrupted
    run's and a rerun replaces them; a folder with summary.csv needs --overwrite."""
    out_dir = tmp_path / "searchlight"
    shutil.copytree(data["ref"] / "searchlight", out_dir)
    (out_dir / "summary.csv").unlink()
    (out_dir / "group_c_t.nii.gz").unlink()
    (out_dir / "sub-2_b.nii.gz").write_bytes(b"half a map")  # whatever it holds, it is replaced
    result = net2brain(*searchlight_args(data, out_dir))
    assert result.code == 0, result
    assert_same_folder(out_dir, data["ref"] / "searchlight")
    result = net2brain(*searchlight_args(data, out_dir))
    assert result.code == 2 and "summary.csv exists already; add --overwrite" in result.err
    assert "centres" not in result.err  # refused before any work


# ------------------------------------------------------------------------------ fovex explain


def explain_args(data, out: Path, *extra) -> list:
    return ["explain", *MODEL, *(extra or EXPLAIN), "--images", data["images"], "--out", out]


def check_explain(fovex, data, work: Path, before: set[str], reference: Path, *extra) -> None:
    assert_only_leftovers(work, ["maps.h5", "maps.config.yaml"], before)
    partial = work / "maps.h5.partial"
    if partial.exists():
        result = fovex("evaluate", *MODEL, "--images", data["images"], "--maps", partial, "--out", work / "m.csv")
        assert result.code == 2 and "is the unfinished file of an interrupted run" in result.err, result
    result = fovex(*explain_args(data, work / "maps.h5", *extra), "--resume")
    assert result.code == 0, result
    assert_same_h5(work / "maps.h5", reference)


@pytest.mark.parametrize(("sig", "point"), [
    case(signal.SIGINT, 2),
    case(signal.SIGKILL, 2, slow=True),
    case(signal.SIGKILL, 6, slow=True),
    case(signal.SIGTERM, 4, slow=True),
    case(signal.SIGINT, 6, slow=True),
])
def test_explain_interrupted_then_resumed(fovex, data, tmp_path, sig, point):
    before = files(tmp_path)
    kill_at(Watched("fovex", *explain_args(data, tmp_path / "maps.h5")), point, sig)
    assert (tmp_path / "maps.h5.partial").exists()  # killed mid-run
    check_explain(fovex, data, tmp_path, before, data["ref"] / "maps.h5")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=lambda sig: sig.name)
def test_fovex_method_interrupted_then_resumed(fovex, data, tmp_path, sig):
    fast = ["--scanpath-length", 2, "--optimization-steps", 2, "--blur-filter-size", 5, "--blur-sigma", 2]
    reference = tmp_path / "reference" / "maps.h5"
    reference.parent.mkdir()
    assert fovex(*explain_args(data, reference, *fast)).code == 0
    work = tmp_path / "work"
    work.mkdir()
    kill_at(Watched("fovex", *explain_args(data, work / "maps.h5", *fast), sleep="0.05"), 4, sig)
    check_explain(fovex, data, work, set(), reference, *fast)


# ------------------------------------------------------------------------------ fovex evaluate

EVALUATION_OUTPUTS = ["metrics.csv", "metrics.summary.csv", "metrics.curves.h5", "metrics.config.yaml"]


def evaluate_args(data, out: Path) -> list:
    return ["evaluate", *MODEL, *EVALUATE, "--images", data["images"], "--maps", data["ref"] / "maps.h5", "--out", out]


def check_evaluate(fovex, data, work: Path, before: set[str]) -> None:
    ref = data["ref"]
    if (work / "metrics.csv").exists():  # killed after its last write: complete
        assert (work / "metrics.summary.csv").exists()
    else:
        assert not (work / "metrics.summary.csv").exists() or (work / "metrics.curves.h5").exists()
        if not (work / "metrics.curves.h5").exists():
            assert_only_leftovers(work, EVALUATION_OUTPUTS, before)
        result = fovex(*evaluate_args(data, work / "metrics.csv"))
        assert result.code == 2 and "--resume" in result.err, result  # nothing is thrown away by accident
        result = fovex(*evaluate_args(data, work / "metrics.csv"), "--resume")
        assert result.code == 0, result
    assert_same_h5(work / "metrics.curves.h5", ref / "metrics.curves.h5")
    for name in ("metrics.csv", "metrics.summary.csv"):
        assert (work / name).read_text() == (ref / name).read_text(), name


@pytest.mark.parametrize(("sig", "point"), [
    case(signal.SIGKILL, 2),
    case(signal.SIGKILL, 6, slow=True),
    case(signal.SIGTERM, 4, slow=True),
    case(signal.SIGINT, 2, slow=True),
    case(signal.SIGKILL, "curves", slow=True),  # the curves are done, the tables not yet
])
def test_evaluate_interrupted_then_resumed(fovex, data, tmp_path, sig, point):
    before = files(tmp_path)
    if point == "curves":
        point = (tmp_path / "metrics.curves.h5").exists
    kill_at(Watched("fovex", *evaluate_args(data, tmp_path / "metrics.csv")), point, sig)
    if isinstance(point, int):  # killed mid-run
        assert (tmp_path / "metrics.curves.h5.partial").exists()
    check_evaluate(fovex, data, tmp_path, before)


@pytest.mark.slow
def test_evaluate_overwrite_killed_leaves_no_old_table(fovex, data, tmp_path):
    """--overwrite removes the old metrics.csv (written last: the mark of a complete run)
    before the new curves replace the old ones: killed half-way, old tables never sit
    beside new curves as if they belonged together."""
    for name in EVALUATION_OUTPUTS:
        shutil.copy(data["ref"] / name, tmp_path / name)
    kill_at(Watched("fovex", *evaluate_args(data, tmp_path / "metrics.csv"), "--overwrite"), 2, signal.SIGKILL)
    assert not (tmp_path / "metrics.csv").exists() and (tmp_path / "metrics.curves.h5.partial").exists()
    assert fovex(*evaluate_args(data, tmp_path / "metrics.csv"), "--resume").code == 0
    check_evaluate(fovex, data, tmp_path, set())


# ------------------------------------------------------------------------------ full disk


def file_size_limit(size: int):
    """preexec_fn: writes past `size` bytes fail with EFBIG (Python ignores SIGXFSZ)."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))


def run_limited(tool: str, size: int, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"{tool}_cli", *map(str, args)], capture_output=True, text=True,
                          preexec_fn=file_size_limit(size), timeout=300,
                          env={**os.environ, "SLOW_CNN_SLEEP": "0"})


FULL_DISK = {  # command -> (tool, arguments for a work folder, file-size limit, reference output)
    "rdm": ("net2brain", lambda data, work: rdm_args(data, work / "rdms.h5"), 20_000, "rdms.h5"),
    "extract": ("net2brain", lambda data, work: extract_args(data, work / "acts.h5"), 20_000, "acts.h5"),
    "explain": ("fovex", lambda data, work: explain_args(data, work / "maps.h5"), 3_000, "maps.h5"),
    "evaluate": ("fovex", lambda data, work: evaluate_args(data, work / "metrics.csv"), 3_000, "metrics.curves.h5"),
}


@pytest.mark.parametrize("command", [
    "rdm", *(pytest.param(c, marks=pytest.mark.slow) for c in ("extract", "explain", "evaluate")),
])
def test_full_disk_exits_2_and_leaves_no_output(data, tmp_path, command):
    tool, arguments, limit, reference = FULL_DISK[command]
    before = files(tmp_path)
    result = run_limited(tool, limit, *arguments(data, tmp_path))
    assert result.returncode == 2, result.stderr
    assert "file too large" in error_line(result.stderr, tool)
    assert files(tmp_path) == before  # nothing, not even a partial file: there is nothing to resume
    assert call(tool, *arguments(data, tmp_path)) == 0  # a later run is not blocked
    assert_same_h5(tmp_path / reference, data["ref"] / reference)


def test_full_disk_while_converting_leaves_no_activations(tmp_path):
    source = tmp_path / "features"
    source.mkdir()
    for index in range(3):
        np.savez_compressed(source / f"img_{index}.png.npz", fc=np.random.default_rng(index).normal(size=(1, 20_000)))
    out = tmp_path / "out"
    result = run_limited("net2brain", 100_000, "convert", source, "--out", out / "acts.h5")
    assert result.returncode == 2, result.stderr
    assert "file too large" in error_line(result.stderr, "net2brain")
    assert files(out) == set()  # no file, no temporary file, no folder
    assert call("net2brain", "convert", source, "--out", out / "acts.h5") == 0


def test_full_disk_while_writing_a_report_leaves_no_page(data, tmp_path):
    page = tmp_path / "report.html"
    result = run_limited("net2brain", 20_000, "report", data["root"] / "reference", "--out", page)
    assert result.returncode == 2, result.stderr
    assert "file too large" in error_line(result.stderr, "net2brain")
    assert files(tmp_path) == set()  # no page, no temporary file
    assert call("net2brain", "report", data["root"] / "reference", "--out", page) == 0


@pytest.mark.slow
def test_full_disk_in_the_searchlight_maps(data, tmp_path):
    out_dir = tmp_path / "searchlight"
    result = run_limited("net2brain", 6_000, *searchlight_args(data, out_dir))
    assert result.returncode == 2, result.stderr
    assert "file too large" in error_line(result.stderr, "net2brain")
    assert not (out_dir / "summary.csv").exists()
    assert all(not p.name.startswith(".") for p in out_dir.iterdir())  # no temporary left
    assert call("net2brain", *searchlight_args(data, out_dir)) == 0
    assert_same_folder(out_dir, data["ref"] / "searchlight")


def test_disk_full_during_extraction_keeps_the_partial_file_for_resume(net2brain, data, tmp_path, monkeypatch):
    """The disk fills up after the first batch (the 4th flush: creation, then rows and counter
    of batch 1): exit 2, the partial file keeps batch 1, and --resume finishes the file."""
    real_flush, calls = h5py.File.flush, []

    def flush(self):
        calls.append(1)
        if len(calls) == 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_flush(self)

    monkeypatch.setattr(h5py.File, "flush", flush)
    out = tmp_path / "acts.h5"
    result = net2brain(*extract_args(data, out))
    assert result.code == 2, result
    line = error_line(result.err, "net2brain")
    assert "no space left on the device while writing" in line and "rerun with --resume" in line
    assert not out.exists() and rows_done(tmp_path / "acts.h5.partial") == 2
    monkeypatch.setattr(h5py.File, "flush", real_flush)
    result = net2brain(*extract_args(data, out), "--resume")
    assert result.code == 0 and "resuming" in result.err, result
    assert_same_h5(out, data["ref"] / "acts.h5")


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs (root only); yields (folder, remount(size))."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small file system needs root")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], capture_output=True)
    if made.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")

    def remount(size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True)

    try:
        yield folder, remount
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.slow
def test_a_real_full_disk(net2brain, tmp_path, small_disk):
    """ENOSPC from a file system that is full (not a simulated limit): an activation file of
    3.4 MB on 256 KiB fails before any work (its space is reserved when it is made); with
    the reservation switched off it fails in a write, keeps its rows for --resume, and
    --resume on a larger disk gives the uninterrupted file. An RDM file fails cleanly too."""
    disk, remount = small_disk
    images = write_images(tmp_path / "images", 16, size=64)
    args = ["extract", "--model", factory("slow_cnn"), "--weights", "random", "--image-size", 64, "--batch-size", 2,
            "--stimuli", images]
    assert net2brain(*args, "--out", tmp_path / "reference.h5").code == 0
    result = net2brain(*args, "--out", disk / "acts.h5")
    assert result.code == 2 and "no space left on the device" in error_line(result.err, "net2brain")
    assert not PROGRESS.search(result.err) and not any(disk.iterdir())
    script = ("import sys, net2brain_fovex.io.rows as s; s.reserve_space = lambda path: None; "
              "s.check_room = lambda *a, **k: None; from net2brain_cli.app import main; sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", script, *map(str, args), "--out", disk / "acts.h5"],
                          capture_output=True, text=True, env={**os.environ, "SLOW_CNN_SLEEP": "0"}, timeout=300)
    assert done.returncode == 2, done.stderr
    line = error_line(done.stderr, "net2brain")
    assert "no space left on the device" in line and "rerun with --resume" in line
    assert not (disk / "acts.h5").exists() and 0 <= rows_done(disk / "acts.h5.partial") < 16
    remount("16m")
    result = net2brain(*args, "--out", disk / "acts.h5", "--resume")
    assert result.code == 0, result
    assert_same_h5(disk / "acts.h5", tmp_path / "reference.h5")
    for path in disk.iterdir():
        path.unlink()
    remount("256k")
    acts = tmp_path / "big_acts.h5"
    with h5py.File(acts, "w") as file:
        file.attrs["kind"] = "activations"
        file.create_dataset("stimuli", data=np.array([f"s{i}" for i in range(300)], dtype=h5py.string_dtype()))
        file.create_dataset("layers/a", data=np.random.default_rng(0).normal(size=(300, 20)))
    result = net2brain("rdm", "--activations", acts, "--out", disk / "rdms.h5", "--precision", "double")
    assert result.code == 2 and "no space left on the device" in error_line(result.err, "net2brain")
    assert not any(disk.iterdir())


# ------------------------------------------------------------------------------ unwritable folders


def unwritable_cases(data, folder: Path) -> dict[str, tuple[str, list]]:
    """Each command with its outputs in `folder`."""
    return {
        "extract": ("net2brain", extract_args(data, folder / "acts.h5")),
        "rdm": ("net2brain", rdm_args(data, folder / "rdms.h5")),
        "searchlight": ("net2brain", searchlight_args(data, folder / "searchlight")),
        "explain": ("fovex", explain_args(data, folder / "maps.h5")),
        "evaluate": ("fovex", evaluate_args(data, folder / "metrics.csv")),
        "report": ("net2brain", ["report", data["root"] / "reference", "--out", folder / "report.html"]),
    }


def run_tool(net2brain, fovex, tool, args):
    return (net2brain if tool == "net2brain" else fovex)(*args)


@pytest.mark.parametrize("command", ["extract", "rdm", "searchlight", "explain", "evaluate", "report"])
def test_output_below_a_regular_file(net2brain, fovex, data, tmp_path, command):
    """Works as root too: nobody can create files inside a regular file."""
    (tmp_path / "plain.txt").write_text("not a folder")
    tool, args = unwritable_cases(data, tmp_path / "plain.txt")[command]
    result = run_tool(net2brain, fovex, tool, args)
    assert result.code == 2, result
    assert "plain.txt" in error_line(result.err, tool) and not PROGRESS.search(result.err)  # before any work
    assert files(tmp_path) == {"plain.txt"} and (tmp_path / "plain.txt").read_text() == "not a folder"


def _read_only_folder() -> Path | None:
    """A folder that refuses new files even to root (sysfs), or None."""
    folder = Path("/sys")
    if not folder.is_dir():
        return None
    try:
        (folder / "net2brain-probe").open("w").close()
    except OSError:
        return folder
    (folder / "net2brain-probe").unlink()
    return None


@pytest.mark.parametrize("command", ["extract", "rdm", "searchlight", "explain", "evaluate", "report"])
def test_read_only_location(net2brain, fovex, data, command):
    folder = _read_only_folder()
    if folder is None:
        pytest.skip("no read-only folder here")
    tool, args = unwritable_cases(data, folder)[command]
    if command == "searchlight":
        args = args[:-1] + [folder]  # the folder itself is the --out-dir
    result = run_tool(net2brain, fovex, tool, args)
    assert result.code == 2, result
    line = error_line(result.err, tool)
    assert "cannot write" in line or "cannot create" in line, line
    assert not PROGRESS.search(result.err)  # refused before any work


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
@pytest.mark.parametrize("command", ["extract", "rdm", "searchlight", "explain", "evaluate", "report"])
def test_folder_without_write_permission(net2brain, fovex, data, tmp_path, command):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        tool, args = unwritable_cases(data, folder)[command]
        if command == "searchlight":
            args = args[:-1] + [folder]
        result = run_tool(net2brain, fovex, tool, args)
        assert result.code == 2, result
        assert "not writable" in error_line(result.err, tool)
        assert not any(folder.iterdir())
    finally:
        folder.chmod(0o755)


# ------------------------------------------------------------------------------ Ctrl-C


def test_ctrl_c_swallowed_by_a_finaliser_still_interrupts(capsys):
    """Python cannot raise a KeyboardInterrupt that arrives in a finaliser or weakref
    callback ("Exception ignored in ..."; seen when SIGINT hit rdm in h5py's weakrefs):
    the run raises it at its next progress update and exits 130, without that traceback."""
    from cli_common.progress import progress_bar
    from cli_common.runner import make_app, run

    app, reached = make_app("toolx", "A test tool."), []

    class Finalised:
        def __del__(self):
            raise KeyboardInterrupt

    @app.command("count")
    def count(more: bool = True) -> None:
        with progress_bar("count") as update:
            update(1, 3)
            Finalised()  # released at once: its KeyboardInterrupt is swallowed
            reached.append("after the finaliser")
            if more:
                update(2, 3)
                reached.append("after the next update")

    @app.command("other")
    def other() -> None:
        """A second command, so that `count` is not the default."""

    capsys.readouterr()
    assert run(app, "toolx", ["count"]) == 130
    err = capsys.readouterr().err
    assert reached == ["after the finaliser"] and "toolx: interrupted" in err
    assert "Exception ignored" not in err and "Traceback" not in err
    assert run(app, "toolx", ["count", "--no-more"]) == 130  # it got to its end: still interrupted
    assert "toolx: interrupted" in capsys.readouterr().err
    assert run(app, "toolx", ["other"]) == 0  # the next run starts afresh


# ------------------------------------------------------------------------------ the progress hook


def test_log_interval_variable(monkeypatch, caplog):
    """NET2BRAIN_LOG_INTERVAL=0 logs a line per update (what the kills above wait for); a
    value that is not a number of seconds is a warning and the default applies."""
    from cli_common import progress
    from cli_common.runner import state

    monkeypatch.setattr(state, "prog_name", "net2brain")
    monkeypatch.setattr(state, "quiet", False)
    monkeypatch.setattr(progress, "_isatty", lambda stream: False)

    def lines(value: str) -> list[str]:
        monkeypatch.setenv("NET2BRAIN_LOG_INTERVAL", value)
        caplog.clear()
        with caplog.at_level("INFO", logger="cli_common.progress"), progress.progress_bar("count") as update:
            for done in range(51):
                update(done, 50)
        return [r.getMessage() for r in caplog.records]

    assert len(lines("0")) == 50
    logged = lines("soon")
    assert "NET2BRAIN_LOG_INTERVAL=soon is not a number of seconds" in logged[0] and len(logged) == 1 + 10
    monkeypatch.setattr(state, "prog_name", "fovex")
    monkeypatch.delenv("FOVEX_LOG_INTERVAL", raising=False)
    assert len(lines("0")) == 10  # fovex reads FOVEX_LOG_INTERVAL: the default, a line per tenth
