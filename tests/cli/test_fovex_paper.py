"""configs/pipeline/fovex-paper: the FovEx paper's comparison in one run. Its configs use
only options of their commands and methods and metrics that exist, every method of the
Makefile has its config, and the Makefile runs on the fovex demo's task (a trained tiny
CNN, its images, boxes and synthetic fixations) into the table with every method."""
from __future__ import annotations

import csv
import inspect
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fovex_cli import app as fovex_app
from net2brain_fovex.evaluate.registry import METRICS
from net2brain_fovex.explain.registry import METHODS
from net2brain_fovex.io.config import load_config
from tests.cli.test_pipeline import COMMANDS, run

PAPER = Path(__file__).parents[2] / "configs" / "pipeline" / "fovex-paper"
needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def makefile_methods(kind: str) -> list[str]:
    text = (PAPER / "Makefile").read_text()
    return re.search(rf"^{kind}_METHODS := (.*)$", text, re.M).group(1).split()


def test_every_method_of_the_makefile_has_a_config_of_its_method():
    methods = set(makefile_methods("CNN")) | set(makefile_methods("VIT"))
    assert {p.stem.removeprefix("explain-") for p in PAPER.glob("explain-*.yaml")} == methods
    options = set(inspect.signature(fovex_app.explain_command).parameters) - {"ctx", "config"}
    for method in methods:
        config = load_config(PAPER / f"explain-{method}.yaml")
        assert config["method"] == method and method in METHODS, method
        assert set(config) <= options, (method, set(config) - options)


def test_the_evaluation_config_names_metrics_that_exist():
    config = load_config(PAPER / "evaluate.yaml")
    options = set(inspect.signature(fovex_app.evaluate_command).parameters) - {"ctx", "config"}
    assert set(config) <= options
    assert all(name in METRICS for name in config["metrics"].split(","))


def first_rows(source: Path, target: Path, names: set[str]) -> Path:
    """The rows of a CSV of images (boxes, fixations) for the images `names`."""
    with open(source, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [row for row in reader if row["image"] in names]
    with open(target, "w", newline="") as handle:
        writer = csv.DictWriter(handle, reader.fieldnames)
        writer.writeheader()
        writer.writerows(rows)
    return target


@pytest.mark.slow  # about 2.5 minutes on 2 cores: the demo's training and every method
@needs_make
def test_the_paper_table_on_the_demo_task(tmp_path, fovex_demo):
    demo = fovex_demo.folder
    images = sorted((demo / "images").glob("*.png"))[:4]  # four images: every method runs, quickly
    (tmp_path / "images").mkdir()
    for image in images:
        shutil.copy(image, tmp_path / "images" / image.name)
    names = {image.name for image in images}
    model = (f"--model net2brain_fovex.demo.localisation_task:tiny_cnn --weights {demo / 'tiny_cnn.safetensors'} "
             "--image-size 64 --crop-pct 1.0")
    variables = [f"IMAGES={tmp_path / 'images'}", f"BOXES={first_rows(demo / 'boxes.csv', tmp_path / 'boxes.csv', names)}",
                 f"FIXATIONS={first_rows(demo / 'gaze_synthetic.csv', tmp_path / 'gaze.csv', names)}",
                 f"MODEL={model}", "FLAGS=--device cpu", "OUT=paper", f"FOVEX={COMMANDS['FOVEX']}"]
    result = run(["make", "-f", str(PAPER / "Makefile"), *variables], tmp_path)
    methods = makefile_methods("CNN")
    assert all((tmp_path / "paper" / f"{method}.h5").is_file() for method in methods)
    rows = list(csv.DictReader(open(tmp_path / "paper" / "table.summary.csv")))
    metrics = load_config(PAPER / "evaluate.yaml")["metrics"].split(",")
    assert {(row["method"], row["metric"]) for row in rows} == {(m, n) for m in methods for n in metrics}
    assert "explanation metrics" in result.stderr and "*" in result.stderr  # the table, the best of each row marked
    again = subprocess.run(["make", "-q", "-f", str(PAPER / "Makefile"), *variables], cwd=tmp_path)
    assert again.returncode == 0  # nothing left to do
