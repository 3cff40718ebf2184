"""Test set-up: no test may reach the network.

TORCH_HOME points to a fresh temporary folder and HF_HUB_OFFLINE=1 is set here, at
import time, before anything imports torch.hub users, timm or huggingface_hub.
"""
from __future__ import annotations

import os
import tempfile

_TORCH_HOME = tempfile.mkdtemp(prefix="n2b-torch-home-")
os.environ["TORCH_HOME"] = _TORCH_HOME
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HOME"] = os.path.join(_TORCH_HOME, "hf")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

import cli_common  # noqa: E402,F401  (the thread environment the commands run under)

TOY_MODELS = Path(__file__).with_name("toy_models.py")


def factory(name: str) -> str:
    """The --model spec of a factory in tests/toy_models.py."""
    return f"{TOY_MODELS}:{name}"


@pytest.fixture
def torch_home() -> Path:
    return Path(_TORCH_HOME)


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, out={self.out[-500:]!r}, err={self.err[-1500:]!r})"


def _runner(main, capsys):
    def run(*args: object) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def net2brain(capsys):
    """Run `net2brain ARGS...` in this process; returns code, stdout and stderr."""
    from net2brain_cli.app import main

    return _runner(main, capsys)


@pytest.fixture
def fovex(capsys):
    """Run `fovex ARGS...` in this process; returns code, stdout and stderr."""
    from fovex_cli.app import main

    return _runner(main, capsys)


def write_images(folder: Path, count: int, size: int = 40, seed: int = 0, names: list[str] | None = None) -> Path:
    """`count` random RGB PNG images named img_1.png ... (or `names`)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index, name in enumerate(names or [f"img_{i}.png" for i in range(1, count + 1)]):
        pixels = rng.integers(0, 256, (size, size + index % 3, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / name)
    return folder


@pytest.fixture
def images(tmp_path) -> Path:
    """A folder of 7 small random images."""
    return write_images(tmp_path / "images", 7)


class DemoRun:
    """A demo's output folder (read it, never change it: tests share it) and its stdout and stderr."""

    def __init__(self, folder: Path, out: str, err: str) -> None:
        self.folder, self.out, self.err = folder, out, err


def _demo(tool: str, folder: Path) -> DemoRun:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", f"{tool}_cli", "demo", "--out", str(folder), "--device", "cpu"],
                            capture_output=True, text=True)
    assert result.returncode == 0, f"{tool} demo failed:\n{result.stdout}\n{result.stderr[-3000:]}"
    return DemoRun(folder, result.stdout, result.stderr)


@pytest.fixture(scope="session")
def net2brain_demo(tmp_path_factory) -> DemoRun:
    """One `net2brain demo` run, shared by the tests that read its folder (it takes minutes)."""
    return _demo("net2brain", tmp_path_factory.mktemp("net2brain-demo") / "demo")


@pytest.fixture(scope="session")
def fovex_demo(tmp_path_factory) -> DemoRun:
    """One `fovex demo` run, shared by the (slow) tests that read its folder."""
    return _demo("fovex", tmp_path_factory.mktemp("fovex-demo") / "demo")
