"""`net2brain demo`: the pipeline on generated stimuli, with no downloads.

Later steps (RDMs, RSA, searchlight) extend the same folder.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from shared.activations import extract_to_file, plan_extraction
from shared.config import config_path_for, write_resolved_config
from shared.models.loading import load_model
from shared.stimuli import discover_stimuli
from shared.storage import check_new_output, open_h5, ACTIVATIONS_KIND
from shared.synthetic import shape_stimuli, write_shape_stimuli

DEMO_MODEL = "resnet18"


def run_demo(out: Path, device: str, overwrite: bool, options: dict, progress: Callable[[int, int], None]) -> str:
    """Write the demo files into `out` and return a report of what they hold."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    activations = check_new_output(out / "activations.h5", overwrite)
    folder = write_shape_stimuli(shape_stimuli(seed=0), out / "stimuli")
    stimuli = discover_stimuli(folder)
    loaded = load_model(DEMO_MODEL, source="torchvision", weights="random", seed=0, device=device)
    plan = plan_extraction(loaded, "top")
    extract_to_file(loaded, stimuli, plan, activations, batch_size=8, overwrite=overwrite, config=options, progress=progress)
    write_resolved_config(config_path_for(activations), "net2brain demo", options)
    lines = [
        f"net2brain demo: {len(stimuli)} generated stimuli (4 shapes x 3 colours x 2 positions)",
        f"  {folder}/            the images, in natural sort order",
        f"  {out / 'factors.csv'}       shape, colour and position of each image",
        f"  {activations}   activations of a randomly initialised {DEMO_MODEL} (seed 0) on {loaded.device}:",
    ]
    with open_h5(activations, ACTIVATIONS_KIND) as file:
        for name, dataset in file["layers"].items():
            lines.append(f"      /layers/{name:<10} {dataset.dtype} {' x '.join(map(str, dataset.shape))}")
    lines.append("  read them with: h5py.File(path)['layers'][name][()]  (rows follow /stimuli)")
    return "\n".join(lines)
