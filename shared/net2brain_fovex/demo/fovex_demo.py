"""`fovex demo`: explanations on a task with known ground truth, no downloads.

A tiny CNN is trained (about 35 s on 2 CPU cores) to tell circles, squares and
triangles apart on cluttered 64 px images; the object's box is known, so a good
explanation must point at it. Held-out images are explained with FovEx, Grad-CAM and RISE, overlays are written,
and the pointing-game hit rate (the map's maximum inside the box) is printed per method.
The three methods are then scored with every metric of `fovex evaluate`; the gaze
metrics use fixations generated from the boxes (synthetic, labelled as such).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image

from ..device import resolve_device
from ..evaluate.evaluation import evaluate_to_file
from ..evaluate.localisation import pointing_game, points_in_boxes
from ..evaluate.registry import METRICS
from ..explain.attributions import explain_to_file, read_attributions
from ..extraction.stimuli import discover_stimuli
from ..io.atomic import atomic_output, check_new_output, check_output_dir
from ..io.config import record_options
from ..io.locks import holds_outputs
from ..io.tables import write_csv
from ..models.loading import load_model
from ..models.preprocessing import Preprocessing
from .localisation_task import make_localisation_set, save_checkpoint, synthetic_fixations, train_tiny_cnn

__all__ = ["run_fovex_demo"]

SIZE, TRAIN, HELD_OUT, OVERLAYS = 64, 4000, 48, 8
METHODS = {"fovex": {"patience": 0}, "gradcam": {"layer": None},
           "rise": {"masks": 2000, "grid": 7, "p_keep": 0.5, "mask_batch": 100}}


@holds_outputs
def run_fovex_demo(
    out: str | Path, *, device: str = "auto", overwrite: bool = False, config: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> str:
    """Write the demo files into `out` and return a report.

    Parameters
    ----------
    out : path
        The demo's folder (created).
    device : str, default "auto"
    overwrite : bool
        Replace earlier demo outputs.
    config : dict, optional
        The resolved options, written to `demo.config.yaml`.
    progress : callable (done, total), optional
        The progress of each explanation and of the evaluation.
    """
    out = Path(out)
    resolve_device(device)  # a bad device fails before the training, not after it
    _check_out(out, overwrite)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "overlays").mkdir(exist_ok=True)
    maps = {method: check_new_output(out / f"{method}.h5", overwrite) for method in METHODS}
    checkpoint = check_new_output(out / "tiny_cnn.safetensors", overwrite)
    train, held_out = make_localisation_set(TRAIN, SIZE, seed=0), make_localisation_set(HELD_OUT, SIZE, seed=1)
    save_checkpoint(train_tiny_cnn(train, seed=0), checkpoint)
    for index, pixels in enumerate(held_out.images):
        with atomic_output(out / "images" / f"image_{index:02d}.png") as tmp:
            Image.fromarray(pixels).save(tmp, format="PNG")
    boxes = {f"image_{i:02d}.png": [int(v) for v in box] for i, box in enumerate(held_out.boxes)}
    write_csv(out / "boxes.csv", [{"image": k, "x0": b[0], "y0": b[1], "x1": b[2], "y1": b[3]} for k, b in boxes.items()],
              ["image", "x0", "y0", "x1", "y1"])
    gaze = synthetic_fixations(held_out.boxes, SIZE, seed=2)
    write_csv(out / "gaze_synthetic.csv",
              [{"image": f"image_{i:02d}.png", "row": int(r), "col": int(c)} for i, points in enumerate(gaze) for r, c in points],
              ["image", "row", "col"])
    loaded = load_model("net2brain_fovex.demo.localisation_task:tiny_cnn", weights=str(checkpoint), device=device)
    # the images are already the model's size: no resize, no crop, so boxes stay valid
    loaded = dataclasses.replace(loaded, preprocessing=Preprocessing(resize=SIZE, crop=SIZE))
    stimuli = discover_stimuli(out / "images")
    lines = [
        f"fovex demo: a tiny CNN trained on {TRAIN} generated {SIZE} px images (circle / square / triangle on clutter; "
        f"the shape decides the class), saved to {checkpoint}",
        f"  {out / 'images'}/ and {out / 'boxes.csv'}: {HELD_OUT} held-out images and their objects' boxes",
    ]
    from ..figures.overlays import write_overlays

    correct = None
    for method, parameters in METHODS.items():
        path = explain_to_file(loaded, stimuli, maps[method], method=method, parameters=parameters, seed=42,
                               batch_size=16, overwrite=overwrite, progress=progress).path
        content = read_attributions(path)
        if correct is None:
            correct = content["targets"] == held_out.labels
            lines.append(f"  the model classifies {int(correct.sum())} of {HELD_OUT} held-out images correctly")
        boxes_tensor = torch.as_tensor(held_out.boxes)
        hits = pointing_game(torch.as_tensor(content["maps"]), boxes_tensor).numpy()
        line = (f"  {method:<8} {path}: map peaks inside the object's box in {hits[correct].mean():.0%} "
                f"of the correctly classified images")
        if "fixations" in content:
            first = points_in_boxes(torch.as_tensor(content["fixations"][:, 0]), boxes_tensor).numpy()
            line += f"; first fixation inside the box in {first[correct].mean():.0%}"
        lines.append(line)
        folder = out / "overlays" / method
        folder.mkdir(exist_ok=True)
        write_overlays(path, stimuli[:OVERLAYS], folder, preprocessing=loaded.preprocessing, overwrite=overwrite,
                       boxes=boxes)
    lines.append(f"  overlays of the first {OVERLAYS} images per method (box in white): {out / 'overlays'}/")
    evaluation = evaluate_to_file(loaded, stimuli, list(maps.values()), out / "metrics.csv", boxes=out / "boxes.csv",
                                  fixations=out / "gaze_synthetic.csv", plot=out / "curves.png", overwrite=overwrite,
                                  progress=progress)
    lines.append(f"  {out / 'metrics.csv'} (per image) and {evaluation.paths['summary']}: every metric of the evaluation; "
                 f"nss, auc_judd, cc, kld and sim against SYNTHETIC fixations ({out / 'gaze_synthetic.csv'}, "
                 "drawn around the boxes), not human gaze")
    lines += _metrics_lines(evaluation)
    lines.append(f"  mean deletion and insertion curves: {out / 'curves.png'}")
    record_options(out, config, sidecar=out / "demo.config.yaml")
    return "\n".join(lines)

def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse, before any work, an `out` that is not a folder or cannot be created, and
    earlier demo outputs (without `overwrite`)."""
    check_output_dir(out, "out")
    if out.is_dir():
        for name in (*(f"{method}.h5" for method in METHODS), "tiny_cnn.safetensors", "metrics.csv",
                     "metrics.summary.csv", "metrics.curves.h5", "curves.png"):
            check_new_output(out / name, overwrite)


def _metrics_lines(evaluation) -> list[str]:
    """The summary as plain text: metrics as rows, methods as columns, the best starred."""
    cells = {(row["method"], row["metric"]): row["mean"] for row in evaluation.summary}
    lines = ["    " + f"{'metric':<15}{'better':<8}" + "".join(f"{label:>12}" for label in evaluation.labels)]
    for name in evaluation.metrics:
        means = [cells[label, name] for label in evaluation.labels]
        best = (min if METRICS[name].better == "lower" else max)(means)
        row = "".join(f"{mean:>11.3f}" + ("*" if mean == best else " ") for mean in means)
        lines.append("    " + f"{name:<15}{METRICS[name].better:<8}" + row)
    return lines
