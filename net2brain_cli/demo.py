"""`net2brain demo`: the pipeline on generated data with a known answer, no downloads.

Stimuli with known factors -> activations of a random ResNet-18 -> model RDMs ->
simulated brain RDMs of two ROIs, each generated from one layer's RDM plus noise -> RSA,
whose best layer per ROI must be the generating one.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from shared.activations import extract_to_file, plan_extraction
from shared.config import config_path_for, write_resolved_config
from shared.models.loading import load_model
from shared.rdm_io import rdms_from_activations, write_rdms
from shared.rsa import RESULT_COLUMNS, RSAOptions, rsa_roi, tidy_rows
from shared.stimuli import discover_stimuli
from shared.storage import check_new_output, write_csv
from shared.synthetic import shape_stimuli, simulate_brain_rdms, write_shape_stimuli

DEMO_MODEL = "resnet18"
GENERATORS = {"early": "layer1", "late": "fc"}  # simulated ROI -> the layer that generates it
SUBJECTS = 8


def run_demo(out: Path, device: str, overwrite: bool, options: dict, progress: Callable[[int, int], None]) -> str:
    """Write the demo files into `out` and return a report of what they hold."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: check_new_output(out / name, overwrite) for name in ("activations.h5", "rdms.h5", "brain_rdms.h5", "rsa.csv", "rsa.png")}
    folder = write_shape_stimuli(shape_stimuli(seed=0), out / "stimuli")
    stimuli = discover_stimuli(folder)
    loaded = load_model(DEMO_MODEL, source="torchvision", weights="random", seed=0, device=device)
    plan = plan_extraction(loaded, "top")
    extract_to_file(loaded, stimuli, plan, paths["activations.h5"], batch_size=8, overwrite=overwrite,
                    config=options, progress=progress)
    model_rdms, model = rdms_from_activations(paths["activations.h5"], None, "correlation")
    write_rdms(paths["rdms.h5"], model_rdms.stimuli, model_rdms.rdms, "correlation", model)
    brain = simulate_brain_rdms(model_rdms.rdms, GENERATORS, subjects=SUBJECTS, noise=1.0, seed=0)
    write_rdms(paths["brain_rdms.h5"], model_rdms.stimuli, brain, "simulated")
    settings = RSAOptions()
    results = [rsa_roi(model_rdms.rdms, stack, roi, settings) for roi, stack in brain.items()]
    rows = tidy_rows(results, DEMO_MODEL, settings)
    write_csv(paths["rsa.csv"], rows, [c for c in RESULT_COLUMNS if c not in ("time", "ci_low", "ci_high")])
    from net2brain_cli.plots import rsa_figure

    rsa_figure(results, paths["rsa.png"], settings.measure)
    write_resolved_config(out / "demo.config.yaml", "net2brain demo", options)
    lines = [
        f"net2brain demo: {len(stimuli)} generated stimuli (4 shapes x 3 colours x 2 positions)",
        f"  {folder}/   the images, in natural sort order; their factors in {out / 'factors.csv'}",
        f"  {paths['activations.h5']}   activations of a randomly initialised {DEMO_MODEL} (seed 0) on {loaded.device}:",
    ]
    lines += [f"      {name:<8} {' x '.join(map(str, plan.shapes[name]))} per stimulus" for name in plan.layers]
    lines += [
        f"  {paths['rdms.h5']}   correlation RDMs, 24 x 24, one per layer",
        f"  {paths['brain_rdms.h5']}   simulated brain RDMs, {SUBJECTS} subjects x 2 ROIs, each from one layer's RDM plus noise",
        f"  {paths['rsa.csv']}, {paths['rsa.png']}   RSA (spearman r^2, noise ceilings, Bonferroni over layers)",
        "RSA: best layer per ROI (the planted answer in brackets)",
    ]
    for result in results:
        best = result.layers[int(result.score.argmax())]
        verdict = "recovered" if best == GENERATORS[result.roi] else "NOT recovered"
        lines.append(
            f"  {result.roi:<6} best {best:<8} r^2 = {result.score.max():.3f} "
            f"(noise ceiling {result.lnc[0]:.3f}-{result.unc[0]:.3f})  [generated from {GENERATORS[result.roi]}: {verdict}]"
        )
    lines.append("read the files with: h5py.File(path)['layers' or 'rdms'][name][()]  (rows follow /stimuli)")
    return "\n".join(lines)
