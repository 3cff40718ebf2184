"""Shell habits of both commands (README, "The command contract" and "Shell completion"):
an output's missing folders are created when the run writes (no `mkdir -p` first),
`--version`, and the completion scripts."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from scipy.spatial.distance import pdist, squareform

import net2brain_fovex
from net2brain_fovex.brain.rdm_files import read_rdm_file, write_rdms
from net2brain_fovex.io.config import config_path_for
from tests.brain.test_rdm import write_activations
from tests.conftest import factory, write_images

RNG = np.random.default_rng(11)


def test_extract_creates_missing_folders(net2brain, tmp_path):
    stimuli = write_images(tmp_path / "stim", 3, size=16)
    out = tmp_path / "runs" / "2024" / "acts.h5"
    result = net2brain("extract", "--model", factory("tiny_cnn"), "--weights", "random", "--image-size", 16,
                       "--stimuli", stimuli, "--out", out)
    assert result.code == 0, result
    assert out.is_file() and config_path_for(out).is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == sorted([out.name, config_path_for(out).name])


def test_rdm_and_rsa_plots_create_missing_folders(net2brain, tmp_path):
    layers = {"fc": RNG.normal(size=(6, 5)).astype(np.float32)}
    write_activations(tmp_path / "acts.h5", layers, [f"s{i}" for i in range(6)])
    out, plots = tmp_path / "rdms" / "model.h5", tmp_path / "figs" / "rdm"
    result = net2brain("rdm", "--activations", tmp_path / "acts.h5", "--out", out, "--plot", plots)
    assert result.code == 0, result
    assert list(read_rdm_file(out).rdms) == ["fc"] and sorted(p.name for p in plots.iterdir()) == ["fc.png"]

    brain = {"V1": np.stack([squareform(pdist(RNG.normal(size=(6, 3)))) for _ in range(3)])}
    write_rdms(tmp_path / "brain.h5", [f"s{i}" for i in range(6)], brain, metric="correlation")
    scores, figure = tmp_path / "rsa" / "a" / "scores.csv", tmp_path / "figs" / "rsa" / "scores.png"
    result = net2brain("rsa", "--model-rdms", out, "--brain-rdms", tmp_path / "brain.h5", "--out", scores,
                       "--plot", figure)
    assert result.code == 0, result
    assert scores.is_file() and figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_explain_creates_missing_folders(fovex, tmp_path):
    pictures = write_images(tmp_path / "pictures", 2, size=36)
    out, overlays = tmp_path / "maps" / "cnn" / "maps.h5", tmp_path / "png" / "cnn"
    result = fovex("explain", "--model", factory("tiny_cnn"), "--weights", "random", "--images", pictures,
                   "--out", out, "--image-size", 32, "--method", "gradcam", "--png-dir", overlays)
    assert result.code == 0, result
    assert out.is_file() and len(list(overlays.glob("*.png"))) == 2


def test_refused_run_creates_no_folder(net2brain, tmp_path):
    out = tmp_path / "new" / "acts.h5"
    result = net2brain("extract", "--model", "resnet_19", "--stimuli", write_images(tmp_path / "stim", 2, size=16),
                       "--out", out)
    assert result.code == 2 and "unknown model" in result.err, result
    assert not (tmp_path / "new").exists()


def test_version(net2brain, fovex):
    for run, prog in ((net2brain, "net2brain"), (fovex, "fovex")):
        result = run("--version")
        assert result.code == 0, result
        assert result.out.strip() == f"{prog} {net2brain_fovex.__version__}"


def test_completion_scripts():
    """typer's completion: `--show-completion SHELL` and the `_PROG_COMPLETE` variable."""
    for prog, module in (("net2brain", "net2brain_cli.app"), ("fovex", "fovex_cli.app")):
        code = f"import sys; from {module} import main; sys.exit(main())"
        shown = subprocess.run([sys.executable, "-c", code, "--show-completion", "bash"], capture_output=True,
                               text=True, timeout=120)
        assert shown.returncode == 0, shown
        assert "complete" in shown.stdout and f"_{prog.upper()}_COMPLETE" in shown.stdout, shown.stdout
        env = {**os.environ, f"_{prog.upper()}_COMPLETE": "complete_bash", "COMP_WORDS": f"{prog} ", "COMP_CWORD": "1"}
        completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        assert completed.returncode == 0, completed
        assert "explain" in completed.stdout if prog == "fovex" else "extract" in completed.stdout, completed.stdout
