"""Benchmark: a whole-brain searchlight (`run_searchlight`) and its per-centre speed
against rsatoolbox.

Data: a real brain mask, nilearn's MNI152 brain mask at 2 mm (235,375 voxels on its
99 x 117 x 95 grid; without nilearn, an ellipsoid of that size on the 91 x 109 x 91
grid with a 2 mm diagonal affine), 92 stimuli, radius 6 mm (123 voxels per full sphere), one model RDM (92 x 92, `scipy` `pdist` of
seeded random points), correlation-distance RDMs compared by Spearman's rho, CPU. The
responses are seeded float32 noise plus, in a smooth blob, the model's latent patterns,
so that the scores spread over a range instead of all being near zero.

Measured:

* whole brain: the 4D volume (and the mask) are written as .nii.gz beforehand (not
  timed), then `run_searchlight([volume], {"model": rdm}, 6.0, mask=mask)` runs in
  a fresh Python process limited to 2 threads. Time is the wall time of that process
  (interpreter start, imports, reading and decompressing the volume, the searchlight);
  peak memory is the process's high-water resident set (`VmHWM` from
  /proc/self/status, printed by the child; `getrusage(RUSAGE_CHILDREN).ru_maxrss` is
  printed too, but on Linux it can also count the parent's memory at fork/exec time).
  The load average is printed: on a busy machine the timings mean little.
  Targets: at most 43 s (the time before the batches ran in parallel; the goal is 20 s)
  and 1.5 GB.
* per centre: `searchlight_scores` against rsatoolbox's `get_searchlight_RDMs` +
  `evaluate_models_searchlight(..., eval_fixed, method="spearman")` on the same 2,000
  centres spread evenly over the mask (both on 2 threads; ours with the batch size of
  the whole-brain run, `run_searchlight`'s default). To compute the same spheres,
  rsatoolbox's neighbour lists are our spheres (`SphereIndex.neighbours`, rows without
  -1, as mask-voxel indices into the (stimuli, mask voxels) data). rsatoolbox's own
  `get_volume_searchlight` is not used: it takes a radius in voxels with a strict `<`
  (radius 3 gives 93 voxels, not 123) and its per-centre Python loop would be timed
  neither. Building the neighbour lists is not timed for either side (ours
  recomputes them inside `searchlight_scores`, so that favours rsatoolbox).
  `evaluate_models_searchlight` runs with its default `n_jobs=1` (joblib), and
  `eval_fixed` also computes a noise ceiling for every centre, as it does in a real
  rsatoolbox searchlight. rsatoolbox's "spearman" ranks with average ties
  (`scipy.stats.rankdata`), as ours does; the two score vectors must agree to 1e-4.
  Targets: ours at least 40x faster per centre, and the whole net2brain process (imports
  and reading included) at least 40x rsatoolbox's per-centre time over the whole mask
  (its reading not counted). Ours is the best of six runs, three
  before and three after rsatoolbox's single run (about 7 s).

Run with:

    pytest tests/benchmarks/test_searchlight_speed.py -m benchmark -s
"""
from __future__ import annotations

import inspect
import json
import os
import resource
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist, squareform

from net2brain_fovex.brain.comparisons import upper_triangle
from net2brain_fovex.brain.searchlight import SphereIndex, run_searchlight, searchlight_scores

pytestmark = pytest.mark.benchmark

SHAPE, VOXEL_MM, TARGET_VOXELS = (91, 109, 91), 2.0, 235_000
N_STIMULI, RADIUS_MM, LATENT = 92, 6.0, 10
THREADS, N_SUBSET, REPEATS = 2, 2_000, 3
# the whole brain must not be slower than before the ranks' integer sort and the batches in parallel (43 s);
# the performance issue's goal, 20 s, is printed beside it (README, Benchmarks: what bounds it)
TIME_TARGET_S, TIME_GOAL_S, MEMORY_TARGET_GB, RSATOOLBOX_TARGET = 43.0, 20.0, 1.5, 40.0
REPO = Path(__file__).resolve().parents[2]
# the per-centre timing uses the batch size of the whole-brain run: run_searchlight's default
BATCH_SIZE = inspect.signature(run_searchlight).parameters["batch_size"].default


def brain_mask() -> tuple[np.ndarray, np.ndarray, str]:
    """(mask, affine, what it is): nilearn's MNI152 brain mask at 2 mm (a real brain's
    shape, bundled with nilearn); without nilearn, an ellipsoid of its size (below)."""
    try:
        from nilearn.datasets import load_mni152_brain_mask
    except ImportError:
        affine = np.diag([VOXEL_MM, VOXEL_MM, VOXEL_MM, 1.0])
        affine[:3, 3] = [-90.0, -126.0, -72.0]  # MNI152 2 mm origin
        return ellipsoid_mask(), affine, "an ellipsoid with the MNI152 brain's proportions (nilearn is not installed)"
    image = load_mni152_brain_mask(resolution=2)
    return np.asarray(image.dataobj) > 0, image.affine, "nilearn's MNI152 brain mask"


def ellipsoid_mask() -> np.ndarray:
    """An ellipsoid with the MNI152 brain's proportions (half-axes 70, 87, 76 mm), scaled
    by bisection so that it holds about TARGET_VOXELS voxels."""
    grid = np.indices(SHAPE, dtype=np.float32)
    centre, axes = np.array([45.0, 54.0, 40.0]), np.array([35.0, 43.5, 38.0])
    radius2 = sum(((grid[i] - centre[i]) / axes[i]) ** 2 for i in range(3))  # ellipsoid "radius" squared
    low, high = 0.5, 1.5
    for _ in range(40):
        scale = (low + high) / 2
        low, high = (scale, high) if (radius2 <= scale**2).sum() < TARGET_VOXELS else (low, scale)
    return radius2 <= high**2


def make_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """(mask, affine, patterns (mask voxels, stimuli) float32, model RDM (n, n), what the mask is)."""
    mask, affine, source = brain_mask()
    rng = np.random.default_rng(0)
    latent = rng.standard_normal((N_STIMULI, LATENT))  # the stimuli's "true" representations
    model = squareform(pdist(latent + rng.standard_normal(latent.shape) * 0.5, "euclidean"))
    coordinates = np.argwhere(mask).astype(np.float32)
    blob = np.exp(-((coordinates - [60.0, 40.0, 45.0]) ** 2).sum(axis=1) / (2 * 12.0**2))  # signal strength, 0..1
    loadings = rng.standard_normal((LATENT, len(coordinates)), dtype=np.float32)
    patterns = rng.standard_normal((len(coordinates), N_STIMULI), dtype=np.float32) * np.float32(2.0)
    patterns += (latent.astype(np.float32) @ loadings).T * blob[:, None].astype(np.float32)
    return mask, affine, patterns, model, source


@pytest.fixture(scope="module")
def data():
    return make_data()


CHILD = textwrap.dedent(
    """
    import json, sys, time
    start = time.perf_counter()
    import numpy as np
    import torch
    torch.set_num_threads({threads})
    from net2brain_fovex.brain.searchlight import run_searchlight
    imported = time.perf_counter()
    result = run_searchlight([{volume!r}], {{"model": np.load({model!r})}}, {radius}, mask={mask!r})
    done = time.perf_counter()
    hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    scores = result.values[0, 0]
    print(json.dumps({{
        "import_s": imported - start, "run_s": done - imported, "hwm_kb": hwm,
        "shape": list(result.values.shape), "finite": int(np.isfinite(scores).sum()),
        "min": float(np.nanmin(scores)), "max": float(np.nanmax(scores)),
    }}))
    """
)


def whole_brain(mask, affine, patterns, model, folder: Path) -> dict:
    """Writes the inputs (untimed), runs the whole searchlight in a child process."""
    import nibabel as nib

    volume = np.zeros((*mask.shape, N_STIMULI), dtype=np.float32)
    volume[mask] = patterns
    volume_path, mask_path, model_path = folder / "sub-01.nii.gz", folder / "mask.nii.gz", folder / "model.npy"
    nib.save(nib.Nifti1Image(volume, affine), volume_path)
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), mask_path)
    np.save(model_path, model)
    del volume
    script = CHILD.format(
        threads=THREADS, volume=str(volume_path), model=str(model_path), radius=RADIUS_MM, mask=str(mask_path)
    )
    environment = dict(os.environ, OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS),
                       OPENBLAS_NUM_THREADS=str(THREADS), PYTHONPATH=str(REPO))
    start = time.perf_counter()
    completed = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=environment, capture_output=True, text=True)
    wall = time.perf_counter() - start
    assert completed.returncode == 0, completed.stderr[-4000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    report["wall_s"] = wall
    report["rusage_children_kb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # kB on Linux
    return report


def rsatoolbox_scores(patterns, centres, spheres, model) -> np.ndarray:
    import rsatoolbox.inference
    import rsatoolbox.model
    import rsatoolbox.rdm
    from rsatoolbox.util.searchlight import evaluate_models_searchlight, get_searchlight_RDMs

    fixed = rsatoolbox.model.ModelFixed("model", rsatoolbox.rdm.RDMs(model[None]))
    events = np.arange(N_STIMULI)
    rdms = get_searchlight_RDMs(patterns.T, centres, spheres, events, method="correlation")
    results = evaluate_models_searchlight(rdms, fixed, rsatoolbox.inference.eval_fixed, method="spearman")
    return np.array([float(np.squeeze(result.evaluations)) for result in results])


def test_searchlight_speed(data, tmp_path, monkeypatch):
    mask, affine, patterns, model, source = data
    n_voxels = int(mask.sum())
    assert abs(n_voxels - TARGET_VOXELS) <= 0.02 * TARGET_VOXELS
    index = SphereIndex.build(mask, affine, RADIUS_MM)
    sphere_size = len(index.offsets)

    load_before = os.getloadavg()[0]  # timings need a quiet machine: a busy one shows here
    # whole brain first, while this process is still small
    whole = whole_brain(mask, affine, patterns, model, tmp_path)
    assert whole["shape"] == [1, 1, n_voxels]
    peak_gb = whole["hwm_kb"] * 1024 / 1e9

    # per centre, on the same spheres
    try:
        import rsatoolbox  # noqa: F401
    except ImportError:
        rsatoolbox = None
    candidates = np.linspace(0, n_voxels - 1, N_SUBSET).round().astype(int)
    neighbours = index.neighbours(candidates)
    centres = candidates[(neighbours >= 0).sum(axis=1) >= 10]  # min_voxels: both sides compute every centre
    spheres = [row[row >= 0] for row in index.neighbours(centres)]
    model_vectors = upper_triangle(model[None])

    def ours():
        return searchlight_scores(patterns, index, model_vectors, batch_size=BATCH_SIZE, centres=centres)[0]

    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    try:
        ours()  # warm-up
        our_times = []
        for repeat in range(2 * REPEATS):  # half before rsatoolbox's run, half after: a busy moment favours neither
            if repeat == REPEATS and rsatoolbox is not None:
                start = time.perf_counter()
                theirs = rsatoolbox_scores(patterns, centres, spheres, model)
                t_theirs = time.perf_counter() - start
            start = time.perf_counter()
            mine = ours()
            our_times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    t_ours = min(our_times)
    assert np.isfinite(mine).all()

    lines = [
        f"\nsearchlight benchmark: {n_voxels:,}-voxel mask ({source}, {'x'.join(map(str, mask.shape))}, {VOXEL_MM:g} mm), "
        f"{N_STIMULI} stimuli, radius {RADIUS_MM:g} mm ({sphere_size} voxels per sphere), 1 model RDM, CPU x{THREADS}, "
        f"batch {BATCH_SIZE} (load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after)",
        f"  net2brain whole brain   {whole['wall_s']:6.1f} s  (target <= {TIME_TARGET_S:g} s, goal {TIME_GOAL_S:g} s; imports "
        f"{whole['import_s']:.1f} s, run_searchlight {whole['run_s']:.1f} s: "
        f"{whole['run_s'] / n_voxels * 1e3:.3f} ms per centre), peak memory {peak_gb:.2f} GB "
        f"(target <= {MEMORY_TARGET_GB:g} GB; ru_maxrss of children {whole['rusage_children_kb'] * 1024 / 1e9:.2f} GB)",
        f"  scores: {whole['finite']:,} finite, {whole['min']:.3f} to {whole['max']:.3f}",
    ]
    if rsatoolbox is not None:
        difference = np.abs(mine - theirs).max()
        agreement = np.corrcoef(mine, theirs)[0, 1]
        per_ours, per_theirs = t_ours / len(centres) * 1e3, t_theirs / len(centres) * 1e3
        lines += [
            f"  per centre: net2brain {per_ours:.3f} ms, rsatoolbox {per_theirs:.2f} ms on {len(centres):,} centres: "
            f"{per_theirs / per_ours:.0f}x faster (target >= {RSATOOLBOX_TARGET:g}x; ours best of {2 * REPEATS}, "
            f"rsatoolbox 1 run, n_jobs=1)",
            f"  scores agree: max |difference| {difference:.1e}, correlation {agreement:.7f}",
            f"  rsatoolbox whole brain (extrapolated, without reading): {per_theirs * n_voxels / 1e3 / 60:.0f} min, "
            f"{per_theirs * n_voxels / 1e3 / whole['wall_s']:.0f}x the whole net2brain process "
            f"(target >= {RSATOOLBOX_TARGET:g}x)",
        ]
    else:
        lines.append("  rsatoolbox not installed (pip install rsatoolbox): per-centre comparison skipped")
    print("\n".join(lines))

    assert whole["wall_s"] <= TIME_TARGET_S
    assert peak_gb <= MEMORY_TARGET_GB
    if rsatoolbox is None:
        pytest.skip("rsatoolbox is not installed, its comparison was skipped: pip install rsatoolbox")
    np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-4)
    assert per_theirs / per_ours >= RSATOOLBOX_TARGET
    assert per_theirs * n_voxels / 1e3 / whole["wall_s"] >= RSATOOLBOX_TARGET
