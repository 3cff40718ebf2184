"""Evaluating attribution maps: faithfulness, localisation and agreement with human gaze.

`evaluate_maps` scores one batch of maps with any of `METRICS` (plain batched calls of
`localisation`, `faithfulness`, `complexity` and `gaze`); `evaluate_to_file` runs it over
a stimulus set for one or several attribution files (one method each), streaming per-image values and the
deletion / insertion curves into `<out stem>.curves.h5` (resumable), then writes the
per-image CSV `out` (one row per image and method) and `<out stem>.summary.csv` (mean,
SEM and the direction of "better" per method and metric).

Curves file (`kind` = "evaluation"): `/stimuli` (n,); per method label a group with
`targets` (n,), one (n,) dataset per metric and, for deletion or insertion,
`deletion_curve` / `insertion_curve` (n, steps + 1); root attributes: the metrics, step,
gaze sigma, gaze density (the data set's maps or the blurred fixations) and gaze seed
(sAUC's draws), model, the maps files and the run's provenance.
"""
from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np
import torch

from .. import __version__
from ..checks import check_range
from ..errors import ConfigError, InputError, OutputError
from ..explain.attributions import check_classifier, context_for, load_images
from ..explain.base import check_precision
from ..extraction.stimuli import Stimulus, as_stimuli, fingerprint
from ..io.config import options_output, record_options
from ..io.hdf5 import ATTRIBUTIONS_KIND, EVALUATION_KIND, json_attr, open_h5, read_stimuli
from ..io.locks import holds_outputs
from ..io.outputs import Output, check_outputs
from ..io.provenance import files_sha256, provenance_attr
from ..io.rows import DatasetSpec, RowWriter, check_partial
from ..io.shards import job_signature
from ..io.tables import write_csv
from ..models.loading import LoadedModel, as_loaded, check_model_options, model_files
from ..models.sources import AUTO
from . import complexity, faithfulness, gaze, localisation
from .ground_truth import (
    boxes_to_input,
    density_to_input,
    image_size,
    points_to_input,
    read_boxes,
    read_density_maps,
    read_fixations,
)
from .registry import BOXES, CURVES, FIXATIONS, METRICS

__all__ = ["Truth", "Evaluation", "choose_metrics", "evaluate_maps", "evaluate_to_file", "read_curves", "summarise",
           "best_means"]

log = logging.getLogger(__name__)


@dataclass
class Truth:
    """Ground truth of a batch at the input resolution; None where not given.

    Attributes
    ----------
    regions : tensor (B, H, W) bool
        The union of each image's boxes (empty where no box reaches the crop).
    counts : tensor (B, H, W)
        Human fixations per pixel.
    density : tensor (B, H, W)
        The fixation density, summing to 1 per image (0 without fixations): the blurred
        counts, or the data set's own density maps (MIT1003).
    others : tensor (B, H, W)
        Each image's sAUC negatives: the fixations of its `gaze.shuffle_partners` (> 0).
    """

    regions: torch.Tensor | None = None
    counts: torch.Tensor | None = None
    density: torch.Tensor | None = None
    others: torch.Tensor | None = None


@dataclass
class Evaluation:
    """What `evaluate_to_file` wrote: the per-image and summary rows and their files."""

    rows: list[dict]
    summary: list[dict]
    labels: list[str]
    metrics: list[str]
    paths: dict[str, Path]


def choose_metrics(names: str | Sequence[str] | None, boxes: bool, fixations: bool) -> list[str]:
    """The metrics to compute: all that the given ground truth allows when `names` is
    None, else the named ones (comma-separated or a list), checked."""
    if names is None:
        return [m.name for m in METRICS.values() if m.needs is None or (m.needs == BOXES and boxes)
                or (m.needs == FIXATIONS and fixations)]
    chosen = [n.strip() for n in names.split(",")] if isinstance(names, str) else [str(n).strip() for n in names]
    chosen = list(dict.fromkeys(n for n in chosen if n))
    if not chosen:
        raise ConfigError(f"`metrics` names no metric; choose from {', '.join(METRICS)}")
    for name in chosen:
        needs = METRICS[name].needs
        if needs == BOXES and not boxes:
            raise ConfigError(f"metric {name} needs the objects' boxes: add `boxes=boxes.csv` (image, x0, y0, x1, y1)")
        if needs == FIXATIONS and not fixations:
            raise ConfigError(f"metric {name} needs human fixations: add `fixations=FILE.csv` (image, row, col), a "
                              "folder of fixation maps or an MIT1003 folder")
    return chosen


def evaluate_maps(
    model: torch.nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor,
    *,
    black: torch.Tensor,
    names: Sequence[str],
    truth: Truth | None = None,
    step: int | None = None,
    batch: int | None = None,
    seed: int = 0,
    precision: str = "fp32",
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Every named metric of a batch of maps.

    Parameters
    ----------
    model : torch.nn.Module
        The classifier (logits).
    images : tensor (B, 3, H, W)
        Normalised as the model expects.
    maps : tensor (B, H, W)
        Attribution maps in [0, 1].
    targets : LongTensor (B,)
        The explained class per image.
    black : tensor (3,)
        A black pixel in normalised space (what average drop multiplies towards).
    names : sequence of str
        Metrics of `METRICS`.
    truth : Truth, optional
        Boxes and fixations at the input resolution, for the metrics that need them.
    step : int, optional
        Pixels per deletion / insertion step (default H * W / 224, rounded).
    batch : int, optional
        Images per forward pass (default: `net2brain_fovex.evaluate.faithfulness.default_batch`).
    seed : int, default 0
        Seed of sAUC's draws of negatives (`gaze.sauc`).
    precision : {"fp32", "bf16", "fp16"}, default "fp32"
        The model's forward passes for the faithfulness metrics (autocast; fp16 on GPUs).

    Returns
    -------
    (dict of str to tensor (B,) float64, dict of str to tensor (B, steps + 1))
        The values per image (NaN where undefined: no box inside the crop, no fixation,
        a blank map) and the deletion / insertion curves that were computed.
    """
    truth = truth or Truth()
    values: dict[str, torch.Tensor] = {}
    curves: dict[str, torch.Tensor] = {}
    if {"avg_drop", "avg_increase"} & set(names):
        change = faithfulness.confidence_change(model, images, maps, targets, black=black, batch=batch,
                                                precision=precision)
        values.update(avg_drop=change["avg_drop"], avg_increase=change["avg_increase"])
    if set(CURVES) & set(names):
        result = faithfulness.deletion_insertion(model, images, maps, targets, step=step, batch=batch,
                                                 precision=precision)
        for kind in set(CURVES) & set(names):
            values[kind], curves[f"{kind}_curve"] = result[kind], result[f"{kind}_curve"]
    if {"ebpg", "pointing_game"} & set(names):
        regions = truth.regions.to(maps.device)
        no_region = ~regions.flatten(1).any(dim=1)
        values["ebpg"] = localisation.energy_in_box(maps, regions)
        values["pointing_game"] = 100 * localisation.pointing_game(maps, regions).to(maps.dtype)
        for name in ("ebpg", "pointing_game"):
            values[name] = torch.where(no_region, torch.nan, values[name].double())
    for name in ("nss", "auc_judd", "info_gain"):  # info_gain over its default baseline, the centre bias
        if name in names:
            values[name] = getattr(gaze, name)(maps, truth.counts.to(maps.device))
    if "sauc" in names:
        if truth.others is None:
            raise ConfigError("metric sauc needs the fixations of other images as negatives: give `Truth.others` "
                              "(the fixation counts of each image's `gaze.shuffle_partners`)")
        values["sauc"] = gaze.sauc(maps, truth.counts.to(maps.device), truth.others.to(maps.device), seed=seed)
    for name in ("cc", "kld", "sim"):
        if name in names:
            values[name] = getattr(gaze, name)(maps, truth.density.to(maps.device))
    if "sparseness" in names:
        values["sparseness"] = complexity.sparseness(maps)
    return {name: values[name].double().cpu() for name in names}, {k: v.cpu() for k, v in curves.items()}


@holds_outputs
def evaluate_to_file(
    model: str | LoadedModel,
    images: str | Path | Sequence[Stimulus],
    maps: Sequence[str | Path],
    out: str | Path,
    *,
    source: str = AUTO,
    weights: str = "pretrained",
    seed: int = 42,
    device: str = "auto",
    image_size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    crop_pct: float | None = None,
    interpolation: str | None = None,
    resize_mode: str | None = None,
    metrics: str | Sequence[str] | None = None,
    boxes: str | Path | None = None,
    fixations: str | Path | None = None,
    step: int | None = None,
    gaze_sigma: float | None = None,
    batch_size: int = 16,
    precision: str = "fp32",
    plot: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    config: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Evaluate attribution files over `images` and write the CSVs and the curves file
    (see the module docstring).

    Parameters
    ----------
    model : str or LoadedModel
        The explained model as `load_model` takes it (with `source`, `weights`, `seed`,
        `device`, `image_size`, `mean`, `std`: those the maps were made with), or a
        model loaded already.
    images : path or sequence of Stimulus
        The images; every maps file must hold exactly their ids (in any order).
    maps : sequence of path
        Attribution files (`explain_to_file`), one method each.
    out : path
        The per-image CSV; the summary and curves files go beside it.
    metrics : str or sequence of str, optional
        Names of `METRICS` (default: every metric the given ground truth allows).
    boxes, fixations : path, optional
        Ground truth (`net2brain_fovex.evaluate.ground_truth`). `seed` also seeds sAUC's
        choice of partner images and its draws of negatives.
    step : int, optional
        Pixels per deletion / insertion step.
    gaze_sigma : float, optional
        Sigma of the fixation density in input pixels; default crop / 32 (7 px at
        224 px, about one degree of visual angle for an image seen 30 degrees wide).
        Where `fixations` is an MIT1003 folder and `gaze_sigma` is not given, the
        density is the data set's own (its fixMap images, carried onto the input).
    batch_size : int, default 16
        Images evaluated together.
    precision : {"fp32", "bf16", "fp16"}, default "fp32"
        The model's forward passes of avg_drop, avg_increase, deletion and insertion:
        float32, or under autocast to bfloat16 or float16 (fp16 on GPUs only).
    plot : path, optional
        A PNG of the mean deletion and insertion curves per method.
    resume, overwrite : bool
        Continue an interrupted run; replace existing outputs.
    config : dict, optional
        The resolved options, recorded in the curves file and beside the table.
    progress : callable (done, total), optional

    Returns
    -------
    Evaluation

    Raises
    ------
    ConfigError, InputError, OutputError
        Options, outputs, maps and ground truth are checked before the first image.
    """
    check_range("batch_size", batch_size)
    model_options = dict(image_size=image_size, mean=mean, std=std, crop_pct=crop_pct, interpolation=interpolation,
                         resize_mode=resize_mode)
    check_model_options(source=source, seed=seed, **model_options)
    if step is not None:
        check_range("step", step)
    if gaze_sigma is not None:
        check_range("gaze_sigma", gaze_sigma)
    check_precision(precision)
    chosen = choose_metrics(metrics, boxes is not None, fixations is not None)
    out = Path(out)
    paths = {"rows": out, "summary": out.with_name(f"{out.stem}.summary.csv"),
             "curves": out.with_name(f"{out.stem}.curves.h5")}
    if plot is not None:
        paths["plot"] = Path(plot)
    stimuli = as_stimuli(images, "images")
    # the tables an interrupted run may have begun are rewritten by a resumed one; the
    # curves file is checked below, where it is told from one an interrupted run left
    outputs = [Output("out", paths["rows"], "csv", replaceable=resume),
               Output("out", paths["summary"], "csv", replaceable=resume),
               Output("out", paths["curves"], "hdf5", replaceable=True),
               *options_output(out, config, replaceable=resume)]
    outputs += [Output("plot", paths["plot"], "figure")] if plot is not None else []
    check_partial(paths["curves"], resume=resume, overwrite=overwrite)
    check_outputs(outputs, {"images": [images if isinstance(images, (str, Path)) else None, *(s.path for s in stimuli)],
                            "maps": maps, "boxes": [boxes], "fixations": [fixations],
                            "model": model_files(model, weights)}, overwrite=overwrite)
    if resume and out.exists() and paths["summary"].exists() and not overwrite:
        raise ConfigError(f"{out} is complete already; nothing to resume (add `overwrite=True` to evaluate again)")
    if paths["curves"].exists() and not (resume or overwrite):
        if not _is_curves_file(paths["curves"]):
            raise OutputError(f"output {paths['curves']} exists already and is not an evaluation's curves file; the "
                              f"curves of `out` {out} are written there: give another `out`, or add `overwrite=True` "
                              "to replace the file")
        if not out.exists():
            raise OutputError(f"an interrupted run left {paths['curves']} without {out}: add `resume=True` to finish "
                              "it, or `overwrite=True` to start again")
        raise OutputError(f"output {paths['curves']} exists already; add `overwrite=True` to replace it")
    loaded = as_loaded(model, source=source, weights=weights, seed=seed, device=device, **model_options)
    check_classifier(loaded)
    check_precision(precision, loaded.device)
    crop = loaded.preprocessing.crop
    sigma = crop / 32 if gaze_sigma is None else float(gaze_sigma)
    sources = _open_maps(maps, stimuli, crop)
    truth_files = {"boxes": read_boxes(boxes, stimuli) if boxes is not None else None,
                   "fixations": read_fixations(fixations, stimuli) if fixations is not None else None,
                   "densities": read_density_maps(fixations, stimuli)
                   if fixations is not None and gaze_sigma is None and {"cc", "kld", "sim"} & set(chosen) else None}
    for key, found in truth_files.items():
        if found is not None and not found:
            raise InputError(f"the {key} file names none of the evaluated images")
    _check_targets(loaded, stimuli, sources)
    others = [Path(p) for p in [*(s.path for s in sources), boxes, fixations] if p is not None]
    job = {**loaded.describe(), "metrics": chosen, "step": step, "gaze_sigma": sigma, "batch_size": batch_size,
           "gaze_density": _density_source(truth_files), "gaze_seed": seed, "stimuli_sha256": fingerprint(stimuli),
           "inputs": files_sha256((str(p.resolve()), p) for p in others),
           **({"precision": precision} if precision != "fp32" else {})}  # fp32 keeps earlier runs resumable
    signature = job_signature(job)
    if resume and paths["curves"].exists():
        with open_h5(paths["curves"], EVALUATION_KIND) as file:
            if file.attrs.get("signature") != signature:
                raise ConfigError(f"{paths['curves']} was written with other options or inputs; add `overwrite=True` to "
                                  "evaluate again")
    else:
        if overwrite:  # `out`, written last, marks a complete run: none until the new one is
            out.unlink(missing_ok=True)
        _write_curves(loaded, stimuli, sources, chosen, truth_files, paths["curves"], step, sigma, seed, batch_size,
                      job, signature, resume, overwrite, config, progress, others, precision)
    values, _ = read_curves(paths["curves"])
    result = _write_tables(values, chosen, paths)
    if plot is not None and set(CURVES) & set(chosen):
        from ..figures.curves import curves_figure

        curves_figure(values, paths["plot"])
    record_options(out, config)
    return result


def _check_targets(loaded: LoadedModel, stimuli: Sequence[Stimulus], sources: Sequence[_MapsSource]) -> None:
    """Refuse class indices the model does not have (one forward pass on one image)."""
    from ..explain.attributions import count_classes

    if not stimuli:
        return
    classes = count_classes(loaded, stimuli[0])  # also a failing model, before any work
    largest = max(sources, key=lambda source: source.max_target)
    if largest.max_target < 0:
        return
    if largest.max_target >= classes:
        raise InputError(
            f"{largest.path}: /targets holds class {largest.max_target} but the model has {classes} classes "
            f"(0-{classes - 1}); evaluate with the model the maps were made for"
        )


def _is_curves_file(path: Path) -> bool:
    """Whether `path` is the curves file of an evaluation (finished or not)."""
    try:
        with h5py.File(path, "r") as file:
            return file.attrs.get("kind") == EVALUATION_KIND
    except OSError:
        return False


def read_curves(path: str | Path) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """The values of an evaluation file: per label, targets, metrics and curves; and its attributes."""
    with open_h5(path, EVALUATION_KIND) as file:
        stimuli = read_stimuli(file)
        values = {label: {name: file[label][name][()] for name in file[label]} for label in json.loads(file.attrs["labels"])}
        for label in values:
            values[label]["stimuli"] = np.array(stimuli)
        return values, dict(file.attrs)


@dataclass
class _MapsSource:
    """One attribution file: its label, path and the row of each stimulus."""

    label: str
    path: Path
    method: str
    model: str
    rows: np.ndarray
    max_target: int = -1

    def read(self, positions: slice) -> tuple[torch.Tensor, torch.Tensor]:
        """(maps, targets) of the stimuli at `positions`, checked for NaN."""
        wanted = self.rows[positions]
        order = np.argsort(wanted)
        back = np.argsort(order)
        with h5py.File(self.path, "r") as file:
            maps = file["maps"][wanted[order]][back]
            targets = file["targets"][wanted[order]][back]
        if not np.isfinite(maps).all():
            raise InputError(f"{self.path}: a map holds NaN or infinite values; recompute it with `explain_to_file`")
        return torch.from_numpy(maps.astype(np.float32)), torch.from_numpy(targets.astype(np.int64))


def _open_maps(paths: Sequence[str | Path], stimuli: Sequence[Stimulus], crop: int) -> list[_MapsSource]:
    """Check every attribution file against the images and the model's input size, up
    front: layout, dtypes, row counts, ids, map size, finite values, class indices."""
    if not paths:
        raise ConfigError("give at least one attribution file as `maps`")
    ids = [s.id for s in stimuli]
    sources, given = [], set()
    for path in map(Path, paths):
        real = os.path.realpath(path)  # not Path.resolve: it raises on a loop of links, reported by open_h5
        if real in given:
            raise ConfigError(f"`maps` {path} is given twice; give each attribution file once")
        given.add(real)
        if path.is_dir():
            raise InputError(f"`maps` {path} is a folder; give an attribution file (HDF5) written by `explain_to_file`")
        try:
            file = open_h5(path, ATTRIBUTIONS_KIND)
        except InputError as error:
            raise InputError(f"`maps`: {error}") from None
        with file:
            held, targets = _check_layout(file, path, crop)
            method, model = str(file.attrs.get("method", path.stem)), str(file.attrs.get("model", ""))
        position = {name: row for row, name in enumerate(held)}
        if len(position) != len(held):
            raise InputError(f"{path} lists a stimulus twice; recompute it with `explain_to_file`")
        missing = [i for i in ids if i not in position]
        extra = [i for i in held if i not in set(ids)]
        if missing or extra:
            which = f"lacks maps for {_first(missing)}" if missing else f"holds maps of images not given: {_first(extra)}"
            raise InputError(f"{path} {which}; the images and the maps must be the same stimuli")
        sources.append(_MapsSource(method, path, method, model, np.array([position[i] for i in ids]),
                                   int(targets.max()) if len(targets) else -1))
    _name_uniquely(sources)
    return sources


def _check_layout(file: h5py.File, path: Path, crop: int) -> tuple[list[str], np.ndarray]:
    """The ids and targets of an open attribution file, after checking its datasets and
    that every map is finite (read in blocks of bounded size)."""
    def dataset(name: str) -> h5py.Dataset | None:
        node = file.get(name)
        return node if isinstance(node, h5py.Dataset) else None

    stimuli, maps, targets = dataset("stimuli"), dataset("maps"), dataset("targets")
    if stimuli is None or maps is None or targets is None or maps.ndim != 3:
        raise InputError(f"{path} lacks /stimuli, /maps (n, H, W) or /targets; it is not an attribution file of `explain_to_file`")
    if maps.dtype.kind not in "fiu" or targets.dtype.kind not in "iu" or targets.ndim != 1:
        raise InputError(f"{path}: /maps must hold numbers and /targets class indices, found {maps.dtype} and "
                         f"{targets.dtype} {targets.shape}; recompute it with `explain_to_file`")
    if stimuli.ndim != 1 or not maps.shape[0] == targets.shape[0] == stimuli.shape[0]:
        raise InputError(f"{path} holds {stimuli.shape[0] if stimuli.ndim else 0} stimuli, {maps.shape[0]} maps and "
                         f"{targets.shape[0]} targets; the rows must match (recompute it with `explain_to_file`)")
    if maps.shape[1:] != (crop, crop):
        raise InputError(
            f"{path} holds {maps.shape[1]} x {maps.shape[2]} maps but the model's input is {crop} x {crop}; "
            "evaluate with the model and `image_size` the maps were made with"
        )
    held = read_stimuli(file)
    values = targets[()]
    if len(values) and values.min() < 0:
        raise InputError(f"{path}: /targets holds a negative class index; recompute it with `explain_to_file`")
    block = max(1, 2**24 // max(1, crop * crop))
    for start in range(0, maps.shape[0], block):
        finite = np.isfinite(maps[start:start + block]).reshape(-1, crop * crop).all(axis=1)
        if not finite.all():
            name = held[start + int(np.argmin(finite))]
            raise InputError(f"{path}: the map of {name} holds NaN or infinite values; recompute it with `explain_to_file`")
    return held, values


def _name_uniquely(sources: list[_MapsSource]) -> None:
    """Label each file by its method, or by its file name where methods repeat."""
    methods = [s.method for s in sources]
    for source in sources:
        if methods.count(source.method) > 1:
            source.label = source.path.stem
    labels = [s.label for s in sources]
    if len(set(labels)) != len(labels):
        twice = _first([label for label in labels if labels.count(label) > 1])
        raise ConfigError(f"two `maps` files share the name {twice}; rename one")


def _write_curves(loaded, stimuli, sources, chosen, truth_files, path, step, sigma, seed, batch_size, job, signature,
                  resume, overwrite, config, progress, inputs, precision="fp32") -> None:
    crop = loaded.preprocessing.crop
    points = math.ceil(crop * crop / (step or max(1, round(crop * crop / 224)))) + 1
    specs = []
    for source in sources:
        specs.append(DatasetSpec(f"{source.label}/targets", (), "int64"))
        specs += [DatasetSpec(f"{source.label}/{name}", (), "float64") for name in chosen]
        specs += [DatasetSpec(f"{source.label}/{kind}_curve", (points,), "float32") for kind in CURVES if kind in chosen]
    if overwrite and not resume:
        path.with_name(path.name + ".partial").unlink(missing_ok=True)
    for source in sources:
        if source.model and source.model != loaded.name:
            log.warning("%s explains %s, evaluated here with %s", source.path, source.model, loaded.name)
    writer = RowWriter(path, EVALUATION_KIND, [s.id for s in stimuli], specs, signature, resume, batch_rows=batch_size)
    black = context_for(loaded, 0).black
    report = progress or (lambda done, total: None)
    fixations = _input_points(stimuli, truth_files["fixations"], loaded.preprocessing)
    # every image's sAUC partners, drawn over the whole set up front: the same however it is batched or resumed
    partners = gaze.shuffle_partners([len(p) > 0 for p in fixations], seed=seed) if "sauc" in chosen else None
    with writer:
        report(writer.rows_done, len(stimuli))
        for start in range(writer.rows_done, len(stimuli), batch_size):
            batch = stimuli[start:start + batch_size]
            images = load_images(batch, loaded).to(loaded.device)
            truth = _truth(batch, start, truth_files, fixations, partners, loaded, sigma, chosen)
            rows = {}
            for source in sources:
                maps, targets = source.read(slice(start, start + batch_size))
                values, curves = evaluate_maps(loaded.module, images, maps.to(loaded.device), targets.to(loaded.device),
                                               black=black, names=chosen, truth=truth, step=step, seed=seed,
                                               precision=precision)
                rows[f"{source.label}/targets"] = targets.numpy()
                rows.update({f"{source.label}/{name}": value.numpy() for name, value in {**values, **curves}.items()})
            writer.write(start, rows)
            report(writer.rows_done, len(stimuli))
        writer.finish({
            "kind": EVALUATION_KIND, "labels": json_attr([s.label for s in sources]), "metrics": json_attr(chosen),
            "maps_files": json_attr({s.label: str(s.path) for s in sources}), "step": step or "default",
            "gaze_sigma": sigma, "gaze_density": job["gaze_density"], "gaze_seed": seed, "precision": precision,
            "model": loaded.name,
            "package_version": __version__,
            "stimuli_sha256": job["stimuli_sha256"], "inputs_sha256": job["inputs"],
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "config": json_attr(config or {}),
            "provenance": provenance_attr(
                config=config, seed=loaded.seed, device=loaded.device,
                inputs=[*((s.id, s.path) for s in stimuli), *((p.name, p) for p in inputs)]),
        })


def _input_points(stimuli: Sequence[Stimulus], fixations: dict | None, preprocessing) -> list[np.ndarray]:
    """Every stimulus's fixations (k, 2) in input pixels, in stimulus order (none without fixations)."""
    if fixations is None:
        return []
    empty = np.zeros((0, 2))
    return [points_to_input(fixations.get(s.id, empty), image_size(s.path), preprocessing) for s in stimuli]


def _density_source(truth_files: dict) -> str:
    """What the fixation density of cc, kld and sim is: the data set's maps or the blurred fixations."""
    return "data set maps" if truth_files["densities"] is not None else "blurred fixations"


def _truth(batch: Sequence[Stimulus], start: int, truth_files: dict, fixations: list[np.ndarray],
           partners: list[np.ndarray] | None, loaded: LoadedModel, sigma: float, chosen) -> Truth:
    """The ground truth of the batch of stimuli from position `start` at the input resolution."""
    crop, preprocessing = loaded.preprocessing.crop, loaded.preprocessing
    truth = Truth()
    if truth_files["boxes"] is not None and {"ebpg", "pointing_game"} & set(chosen):
        empty = np.zeros((0, 4), dtype=np.int64)
        boxes = [boxes_to_input(truth_files["boxes"].get(s.id, empty), image_size(s.path), preprocessing) for s in batch]
        truth.regions = localisation.box_regions(boxes, crop, crop)
    if fixations and any(METRICS[name].needs == FIXATIONS for name in chosen):
        truth.counts, dropped = gaze.fixation_counts(fixations[start:start + len(batch)], crop, crop)
        if int(dropped.sum()):
            log.info("%d fixations fall outside the centre crop and are left out", int(dropped.sum()))
        if truth_files["densities"] is not None:
            truth.density = torch.from_numpy(np.stack([density_to_input(truth_files["densities"][s.id], preprocessing)
                                                       for s in batch]))
        elif {"cc", "kld", "sim"} & set(chosen):
            truth.density = gaze.fixation_density(truth.counts, sigma)
        if partners is not None:  # the union of the partners' fixations; theirs outside the crop drop silently
            pools = [np.concatenate([fixations[j] for j in partners[start + i]] or [np.zeros((0, 2))])
                     for i in range(len(batch))]
            truth.others, _ = gaze.fixation_counts(pools, crop, crop)
    return truth


# the columns of the two tables: the summary's, and the per-image table's before one per metric
SUMMARY_COLUMNS = ["method", "metric", "mean", "sem", "n", "better"]
ROW_COLUMNS = ["image", "method", "target"]


def _write_tables(values: dict[str, dict[str, np.ndarray]], chosen: list[str], paths: dict[str, Path]) -> Evaluation:
    rows = []
    labels = list(values)
    stimuli = values[labels[0]]["stimuli"]
    for index, image in enumerate(stimuli):
        for label in labels:
            row = {"image": str(image), "method": label, "target": int(values[label]["targets"][index])}
            row.update({name: float(values[label][name][index]) for name in chosen})
            rows.append(row)
    summary = [summarise(label, name, values[label][name]) for label in labels for name in chosen]
    # the per-image CSV (the output named `out`) last: when it exists, the run is complete
    write_csv(paths["summary"], summary, SUMMARY_COLUMNS)
    write_csv(paths["rows"], rows, [*ROW_COLUMNS, *chosen])
    return Evaluation(rows, summary, labels, chosen, paths)


def summarise(label: str, name: str, values: np.ndarray) -> dict:
    """Mean, standard error of the mean (n - 1) and count of the finite values."""
    finite = values[np.isfinite(values)]
    mean = float(finite.mean()) if len(finite) else math.nan
    sem = float(finite.std(ddof=1) / math.sqrt(len(finite))) if len(finite) > 1 else math.nan
    if len(finite) < len(values):
        log.warning("%s %s: %d of %d images have no value (no box in the crop, no fixation, or a blank map)",
                    label, name, len(values) - len(finite), len(values))
    return {"method": label, "metric": name, "mean": mean, "sem": sem, "n": len(finite), "better": METRICS[name].better}


def best_means(summary: Sequence[dict]) -> dict[str, str]:
    """The method of the best finite mean of each metric in `summary` rows (method,
    metric, mean, better: as `summarise` writes them), by the row's direction of better;
    metrics without a finite mean are left out. Ties go to the first method listed."""
    best: dict[str, tuple[str, float]] = {}
    for row in summary:
        name, mean = row["metric"], float(row["mean"])
        if not math.isfinite(mean):
            continue
        sign = -1.0 if row["better"] == "lower" else 1.0
        if name not in best or sign * mean > sign * best[name][1]:
            best[name] = (row["method"], mean)
    return {name: method for name, (method, _) in best.items()}


def _first(names: Sequence[str], count: int = 3) -> str:
    shown = ", ".join(names[:count])
    return shown + (f" and {len(names) - count} more" if len(names) > count else "")
