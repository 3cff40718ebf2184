"""The example pipeline of configs/pipeline: the Makefile (runs, is incremental, reruns
only what a touched config feeds, and a second run gives identical datasets) and the
SLURM scripts (array tasks simulated with SLURM's variables, the chain of submit.sh)."""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest

from net2brain_fovex.io.shards import dataset_paths
from tests.conftest import TOY_MODELS

PIPELINE = Path(__file__).parents[2] / "configs" / "pipeline"
MODEL = f"--model {TOY_MODELS}:tiny_cnn --weights random --image-size 32"
COMMANDS = {"NET2BRAIN": f"{sys.executable} -m net2brain_cli", "FOVEX": f"{sys.executable} -m fovex_cli"}
needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def run(command: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env={**os.environ, **COMMANDS, **env}, capture_output=True, text=True)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


def make(cwd: Path, *targets: str, out: str = "results") -> subprocess.CompletedProcess:
    variables = ["DATA=data", f"OUT={out}", f"MODEL={MODEL}", f"NET2BRAIN={COMMANDS['NET2BRAIN']}", f"FOVEX={COMMANDS['FOVEX']}"]
    return run(["make", "-f", str(PIPELINE / "Makefile"), *variables, *targets], cwd)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, net2brain_demo) -> Path:
    """A folder with the example data (a copy of the net2brain demo's folder) in data/."""
    folder = tmp_path_factory.mktemp("pipeline")
    shutil.copytree(net2brain_demo.folder, folder / "data")
    return folder


def datasets(path: Path) -> dict[str, np.ndarray]:
    found = {}
    with h5py.File(path, "r") as file:
        for name in dataset_paths(file):  # in the file's own order, which must agree too
            found[name] = file[name][()]
    return found


def assert_identical(first: Path, second: Path) -> None:
    """Same datasets (HDF5), data and affine (NIfTI), or text (CSV)."""
    if first.suffix == ".h5":
        a, b = datasets(first), datasets(second)
        assert list(a) == list(b), first
        for name in a:
            assert a[name].dtype == b[name].dtype, (first, name)
            np.testing.assert_array_equal(a[name], b[name], err_msg=f"{first}:{name}")
    elif first.name.endswith(".nii.gz"):
        a, b = nib.load(first), nib.load(second)
        np.testing.assert_array_equal(a.get_fdata(), b.get_fdata(), err_msg=str(first))
        np.testing.assert_array_equal(a.affine, b.affine)
    else:
        assert first.read_text() == second.read_text(), first


OUTPUTS = ["activations.h5", "rdms.h5", "rsa.csv", "searchlight/summary.csv", "fovex.h5", "gradcam.h5",
           "metrics.csv", "metrics.summary.csv", "metrics.curves.h5"]


@needs_make
def test_makefile_pipeline_is_incremental_and_reproducible(workspace):
    make(workspace)
    results = workspace / "results"
    for name in OUTPUTS + ["curves.png"]:
        assert (results / name).stat().st_size > 0, name
    with open(results / "rsa.csv", newline="") as handle:
        assert {row["roi"] for row in csv.DictReader(handle)} == {"early", "late"}

    # a second make has nothing to do
    assert "Nothing to be done" in make(workspace).stdout
    subprocess.run(["make", "-q", "-f", str(PIPELINE / "Makefile"), "DATA=data", f"MODEL={MODEL}"], cwd=workspace, check=True)

    # touching a config reruns exactly what depends on it
    before = {name: (results / name).stat().st_mtime_ns for name in OUTPUTS}
    config = PIPELINE / "rdm.yaml"
    original = config.stat()
    try:
        later = time.time() + 2
        os.utime(config, (later, later))
        planned = make(workspace, "-n").stdout
        assert all(f"-m net2brain_cli {step} " in planned for step in ("rdm", "rsa", "searchlight"))
        assert not any(f"-m {tool} {step} " in planned for tool, step in
                       (("net2brain_cli", "extract"), ("fovex_cli", "explain"), ("fovex_cli", "evaluate")))
        make(workspace)
    finally:
        os.utime(config, ns=(original.st_atime_ns, original.st_mtime_ns))
    after = {name: (results / name).stat().st_mtime_ns for name in OUTPUTS}
    changed = {name for name in OUTPUTS if after[name] != before[name]}
    assert changed == {"rdms.h5", "rsa.csv", "searchlight/summary.csv"}

    # the same inputs, configs and seeds on this CPU: identical datasets
    make(workspace, out="again")
    for name in OUTPUTS:
        assert_identical(results / name, workspace / "again" / name)
    for map_file in sorted((results / "searchlight").glob("*.nii.gz")):
        assert_identical(map_file, workspace / "again" / "searchlight" / map_file.name)

    # the page of the whole output folder, after everything it shows
    make(workspace, "report")
    page = (results / "report.html").read_text()
    assert all(f'href="{name}"' in page for name in OUTPUTS) and 'id="evaluation"' in page


def test_sbatch_array_tasks_and_merges_give_the_unsharded_outputs(workspace):
    slurm = PIPELINE / "slurm"
    environment = {"PIPELINE": str(PIPELINE), "DATA": "data", "OUT": "sharded", "MODEL": MODEL}
    for task in ("1", "0"):
        run(["bash", str(slurm / "extract.sbatch")], workspace, **environment,
            SLURM_ARRAY_TASK_ID=task, SLURM_ARRAY_TASK_MIN="0", SLURM_ARRAY_TASK_COUNT="2")
    run(["bash", str(slurm / "merge.sbatch")], workspace, **environment, STEP="extract")
    for task in ("2", "0", "1"):
        run(["bash", str(slurm / "searchlight.sbatch")], workspace, **environment,
            SLURM_ARRAY_TASK_ID=task, SLURM_ARRAY_TASK_MIN="0", SLURM_ARRAY_TASK_COUNT="3")
    run(["bash", str(slurm / "merge.sbatch")], workspace, **environment, STEP="searchlight")

    whole = workspace / "whole"
    whole.mkdir(exist_ok=True)
    net2brain = [sys.executable, "-m", "net2brain_cli"]
    run([*net2brain, "extract", "--config", str(PIPELINE / "extract.yaml"), "--stimuli", "data/stimuli",
         "--out", "whole/activations.h5", *MODEL.split()], workspace)
    run([*net2brain, "rdm", "--config", str(PIPELINE / "rdm.yaml"), "--activations", "whole/activations.h5",
         "--out", "whole/rdms.h5"], workspace)
    betas = [arg for volume in sorted((workspace / "data" / "volumes").glob("*.nii.gz")) for arg in ("--betas", str(volume))]
    run([*net2brain, "searchlight", "--config", str(PIPELINE / "searchlight.yaml"), "--model-rdms", "whole/rdms.h5",
         "--out-dir", "whole/searchlight", *betas], workspace)
    for name in ("activations.h5", "rdms.h5", "searchlight/summary.csv"):
        assert_identical(workspace / "whole" / name, workspace / "sharded" / name)
    maps = sorted((workspace / "whole" / "searchlight").glob("*.nii.gz"))
    assert maps
    for map_file in maps:
        assert_identical(map_file, workspace / "sharded" / "searchlight" / map_file.name)


def test_submit_chains_the_jobs_by_dependency(tmp_path):
    """submit.sh against a stand-in sbatch that records its arguments and returns job ids."""
    fake = tmp_path / "bin"
    fake.mkdir()
    log = tmp_path / "sbatch.log"
    (fake / "sbatch").write_text(f'#!/bin/bash\necho "$@" >> {log}\nwc -l < {log}\n')
    (fake / "sbatch").chmod(0o755)
    result = run(["bash", str(PIPELINE / "slurm" / "submit.sh"), "4", "6"], tmp_path, PATH=f"{fake}:{os.environ['PATH']}")
    calls = log.read_text().splitlines()
    assert len(calls) == 4 and "submitted: extract 1, merge 2, searchlight 3, maps 4" in result.stdout
    assert "--array=0-3" in calls[0] and calls[0].endswith("extract.sbatch")
    assert "--dependency=afterok:1" in calls[1] and "STEP=extract" in calls[1]
    assert "--dependency=afterok:2" in calls[2] and "--array=0-5" in calls[2] and calls[2].endswith("searchlight.sbatch")
    assert "--dependency=afterok:3" in calls[3] and "STEP=searchlight" in calls[3]
