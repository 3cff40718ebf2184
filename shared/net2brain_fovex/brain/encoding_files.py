"""Encoding files: `encode_to_file`, which fits `fit_encoding` per subject and layer of an
activations file (or `partition_variance` per subject) and writes maps, tables and a
summary; `merge_encoding`, which joins its shards; `predict_to_file`, which predicts new
stimuli with a saved model and puts the predictions back on the targets' grid.

An output folder holds, per subject and layer, `<subject>_<layer>_r.nii.gz` and
`<subject>_<layer>_r2.nii.gz` (4D NIfTI `betas`: the held-out Pearson r and R^2 at every
mask voxel, NaN elsewhere, on the input's grid) or `<subject>_<layer>.csv` (array
`responses`: a row per channel [and time point]); with several subjects the group maps
`group_<layer>_mean_r.nii.gz`, `_t` and `_p` (or `group_<layer>.csv`); the resolved options
`encode.config.yaml`; with `save_models`, `<subject>_<layer>_model.h5` (the model refitted
on all stimuli and, in its group `layout`, where the targets lie: the `mask`, `affine`, `header`,
`header_extensions` and `header_class` of the volumes, or the `shape` (channels[, time]) of the
arrays, for `predict_to_file`: a 4D NIfTI on the training grid, or (stimuli, channels[, time]));
and `summary.csv`, a row per (ROI, layer, subject[, time]). The folder is complete when `summary.csv` exists: it is
written last. Each file is written atomically, and a (subject, layer) is done when its
files exist, so `resume` continues an interrupted run where it stopped.

A `partition` run writes instead, per subject, `<subject>_<measure>_<spaces>.nii.gz` for
every subset's R^2, every space's unique and every combination's shared R^2 (or
`<subject>_partition.csv`), with several subjects `group_<measure>_<spaces>_mean.nii.gz`,
`_t` and `_p` (or `group_partition.csv`: a row per target, columns `<measure>_<spaces>_mean`,
`_t` and `_p`), the mean and one-sample t-test against 0 per target as for the layers' group
files, and a summary of `PARTITION_COLUMNS`; a subject is done when its files exist, so
`resume` (of the same options, as for the layers) refits only the others. Every alpha of a
partition is chosen by `inner_folds` inner folds (`inner` kfold; loo is refused).

A shard (`shard` I/N) fits a share of the work and writes no maps, only
`OUT_DIR/encode.shard-I-of-N.h5` (`ENCODE_SHARD_KIND`); `merge_encoding` turns the shards
into exactly the folder one run writes. The work units are (layer, target chunk): every
layer's targets (the mask voxels in C order, or the channels [x time points] flattened)
cut into contiguous chunks of the targets the engine solves at once (`target_chunk`:
`EncodingParameters.chunk`, fewer with many stimuli), so that a unit's fit solves the
blocks of an unsharded fit (a last chunk of a single target joins the one before), listed
layer by layer; shard I takes the units [floor(I u / N), floor((I + 1) u / N)) of the u units
(`net2brain_fovex.io.shards.Shard`), so shards differ by at most one unit, and with more
shards than units some hold none. A shard reads and checks every input, as a whole run
does, and fits its units' targets for every subject, a layer's units in one fit; a
target's r and R^2 do not depend on the other targets fitted with it, so the merged files
are the unsharded run's. The shard file holds, per layer it fitted, `scores/<layer>/r` and
`r2` (subjects, targets of the shard) float64 (for `betas` rounded to the float32 of the
maps, as a whole run keeps them) with attributes `start` and `stop` (its targets
[start, stop)); `subjects`, `layers`, `roi_names` and `roi_masks` (ROIs, targets) uint8;
for `betas` the `mask`, `affine`, `header` and `header_extensions` of the maps (attribute
`header_class`), for `responses` the `shape` (channels[, time]) and with `repetitions` the
`noise_ceiling` (subjects, targets); root attributes `kind`, the shard's (`shard_index`,
`shard_count`, `items_total`: the units; `job_sha256`: inputs and options), `targets`
(`nifti` or `array`), `chunk`, `plot` (drawn by the merge), the resolved options `config`
and `provenance`.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError
from ..io.atomic import atomic_output, check_new_output, check_output_dir, make_output_dir
from ..io.config import options_output, read_resolved_config, record_options, write_resolved_config
from ..io.hdf5 import ENCODE_SHARD_KIND, ENCODE_SHARD_NAME, check_name
from ..io.locks import holds_outputs
from ..io.outputs import Output, check_outputs
from ..io.provenance import current_command, files_sha256, input_entries, plain, provenance_attr
from ..io.shards import Shard, check_same, check_shards, job_signature, parse_shard, plan_output, read_shard
from ..io.tables import write_csv
from ..selection import ALL

__all__ = ["EncodingFiles", "encode_to_file", "merge_encoding", "predict_to_file", "best_layers", "SUMMARY_COLUMNS",
           "PARTITION_COLUMNS", "CONFIG_NAME"]

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = ["roi", "layer", "subject", "time", "mean_r", "median_r", "mean_r2", "n_targets",
                   "noise_ceiling", "pct_of_nc"]
# summary.csv of a `partition` run: a row per (ROI, subject[, time], measure, spaces)
PARTITION_COLUMNS = ["roi", "subject", "time", "measure", "spaces", "mean_r2", "median_r2", "n_targets"]
CONFIG_NAME = "encode.config.yaml"  # the resolved options in the output folder
# with `plot` for `betas`: each R^2 map's brain picture, its threshold and the map's peak (mm)
PICTURE_COLUMNS = ["plot", "plot_threshold", "peak_value", "peak_x", "peak_y", "peak_z"]
GROUP = "group"  # the subject name of the group's maps, pictures and summary rows
PICTURE_THRESHOLD = 0.0  # R^2 maps are drawn where R^2 > 0: where the model predicts better than the mean
WHOLE = "mask"  # the summary's name for every target of `betas` (the mask, or the union of the `rois`)
# options that do not change the results: a resumed run may differ in them
_RUN_OPTIONS = {"resume", "overwrite", "json", "device", "progress", "config"}


@dataclass(frozen=True)
class EncodingFiles:
    """What `encode_to_file` wrote.

    Attributes
    ----------
    out_dir : Path
    summary : list of dict
        The rows of summary.csv (`SUMMARY_COLUMNS`).
    best : dict of str to dict
        The summary row of the best layer per ROI (`best_layers`).
    files : list of Path
        The maps or tables, per subject and layer, then the group's.
    resumed : int
        (subject, layer) results found complete and kept (`resume`).
    shard_file : Path or None
        The shard's file, for a shard (`summary`, `best` and `files` are then empty).
    """

    out_dir: Path
    summary: list[dict]
    best: dict[str, dict]
    files: list[Path]
    resumed: int = 0
    shard_file: Path | None = None


@dataclass
class _Targets:
    """What is fitted: the subjects, how their targets are laid out, and how they are read."""

    subjects: list[str]
    paths: list[Path]
    kind: str  # "nifti" or "array"
    rois: dict[str, np.ndarray]  # name -> bool over the targets
    mask: np.ndarray | None = None  # nifti: (X, Y, Z) bool
    reference: object = None  # nifti: the image giving grid and header
    shape: tuple[int, ...] = ()  # array: (channels,) or (channels, time), the same for every subject
    timed: bool = False
    key: str | None = None  # array: the array inside each file
    stimuli: int = 0

    @property
    def count(self) -> int:
        """The number of targets."""
        return int(self.mask.sum()) if self.kind == "nifti" else int(np.prod(self.shape))


@holds_outputs
def encode_to_file(
    activations: str | Path,
    out_dir: str | Path,
    *,
    layers: str | Sequence[str] = ALL,
    betas: Sequence[str | Path] | None = None,
    mask: str | Path | None = None,
    rois: Sequence[str | Path] | None = None,
    responses: Sequence[str | Path] | None = None,
    key: str | None = None,
    roi: str = "responses",
    repetitions: bool = False,
    stimuli: str | Path | None = None,
    test_stimuli: str | Path | None = None,
    model: str = "ridge",
    folds: int = 5,
    alphas: str | Sequence[float] | None = None,
    inner: str = "gcv",
    inner_folds: int = 5,
    reduce: str | None = None,
    seed: int = 0,
    partition: str | Sequence[str] | None = None,
    save_models: bool = False,
    plot: str | Path | None = None,
    background: str | Path | None = None,
    device: str = "auto",
    shard: str | Shard | None = None,
    overwrite: bool = False,
    resume: bool = False,
    config: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EncodingFiles:
    """Fit a cross-validated encoding model from every layer of an activations file to
    every subject's responses (`fit_encoding`) and write maps or tables and a summary.

    Parameters
    ----------
    activations : path
        An activations file (`extract_to_file`); `layers` chooses its layers, read one at
        a time.
    out_dir : path
        The output folder (created).
    layers : str or sequence of str, default "all"
        `all` or NAME,NAME (in the order given).
    betas : sequence of path, optional
        One 4D NIfTI per subject, one volume per stimulus; subjects are named after them.
    mask : path, optional
        A 3D mask on the volumes' grid: its voxels are the targets, and each must have
        finite, non-constant responses in every subject. Default: the union of `rois`,
        else the voxels with finite, non-constant responses in every subject.
    rois : sequence of path, optional
        3D ROI masks on the volumes' grid, summarised one by one (named after their files).
    responses : sequence of path, optional
        One array file per subject (`load_responses`, `key`): stimuli x channels or
        stimuli x channels x time (every channel and time point a target); with
        `repetitions`, stimuli x channels x repetitions.
    key : str, optional
        The array inside each `responses` file.
    roi : str, default "responses"
        The summary's name of the `responses` channels.
    repetitions : bool, default False
        The last axis of `responses` holds repeated measurements: the fit uses their mean,
        and the summary gives the split-half noise ceiling (`noise_ceiling`).
    stimuli : path, optional
        The stimulus order of the brain data (list or folder); reordered to the
        activations' order. Without it, the rows are taken in the activations' order.
    test_stimuli : path, optional
        A text file of stimulus ids (one a line): a fixed split, fitted on the others and
        scored on these, instead of `folds`.
    model, folds, alphas, inner, inner_folds, reduce, seed
        As `EncodingParameters`; `alphas` may be text, `A,B,...` (default `DEFAULT_ALPHAS`).
    partition : str or sequence of str, optional
        Two or three feature spaces, `A,B[,C]`: layers of `activations`, or `FILE:LAYER` of
        other activations files (of the same stimuli, reordered to `activations`' order;
        named `<file stem>.<layer>`). Instead of the per-layer fits, `partition_variance`
        per subject (the same folds, seed and alphas; every alpha chosen by `inner_folds` inner folds, `inner`
        left out or kfold; `model` ridge, `layers` left out):
        `<subject>_partition.csv` (array `responses`) or, for `betas`, the maps
        `<subject>_r2_<spaces>.nii.gz` of every subset, `<subject>_unique_<space>.nii.gz`
        and `<subject>_shared_<a+b>.nii.gz`; with several subjects the group's mean, t and p of every
        measure (module docstring); summary.csv then has `PARTITION_COLUMNS`. `resume` keeps the subjects
        whose files exist.
    save_models : bool, default False
        Also write `<subject>_<layer>_model.h5` (`save_models`: refitted on all stimuli) for
        `predict_to_file`.
    plot : path, optional
        A figure (PNG, PDF or SVG, by its suffix): the layer profile per ROI
        (`encoding_profile_figure`), or with `partition` the unique and shared R^2 per ROI
        (`partition_figure`). With `betas` (not `partition`), also each R^2 map (and, with
        several subjects, each group mean r map) as a brain picture beside it, `<map>.png`
        (`brain_figure`), recorded in summary.csv (`PICTURE_COLUMNS`).
    background : path, optional
        A 3D NIfTI drawn under the brain pictures of maps not in MNI space (default: the mask).
    device : str, default "auto"
    shard : str or Shard, optional
        `I/N` or `auto`: fit only this share of the (layer, target chunk) units into
        `out_dir/encode.shard-I-of-N.h5` (module docstring; `merge_encoding` joins the
        shards, and draws `plot`). Not with `partition` or `save_models`.
    overwrite : bool
        Replace a complete folder (a shard: its file).
    resume : bool
        Keep the (subject, layer) results an interrupted run of the same options wrote (a
        shard: its file, when complete).
    config : dict, optional
        The resolved options, written to `encode.config.yaml` (before the first fit, so that
        `resume` can compare them).
    progress : callable (done, total), optional
        Called after every (subject, layer).

    Returns
    -------
    EncodingFiles

    Raises
    ------
    ConfigError
        Contradictory or bad options (checked before any file is read).
    InputError
        Inputs that do not fit together or cannot be fitted, all checked before any work:
        stimulus ids, counts, too few stimuli for the folds, grids, masks, constant or
        non-finite responses or activations.
    OutputError
    """
    from ..device import resolve_device
    from .encoding import DEFAULT_ALPHAS, EncodingParameters, check_solvers, fixed_split, outer_folds

    check_solvers()
    parameters = EncodingParameters(model=model, folds=folds, alphas=_alphas(alphas, DEFAULT_ALPHAS), inner=inner,
                                    inner_folds=inner_folds, reduce=reduce, seed=seed)  # validated when made
    if bool(betas) == bool(responses):
        raise ConfigError("give either `betas` (4D volumes) or `responses` (array files), not both or neither")
    if (mask is not None or rois) and not betas:
        raise ConfigError("`mask` and `rois` select voxels of `betas` volumes; give `betas` with them, or leave them out")
    if (key is not None or repetitions) and not responses:
        raise ConfigError("`key` and `repetitions` describe `responses` files; give `responses` with them, or leave "
                          "them out")
    if resume and overwrite:
        raise ConfigError("`resume` keeps an interrupted run's results and `overwrite` replaces them: give one")
    part = shard if isinstance(shard, Shard) else parse_shard(shard)
    if part is not None and partition is not None:
        raise ConfigError("`shard` divides the per-layer fits; a `partition` run fits the feature spaces of every "
                          "target together and is not sharded: run it without `shard`")
    if part is not None and save_models:
        raise ConfigError("`save_models` writes the whole model of each (subject, layer), and a `shard` fits part of "
                          "its targets: save the models in a run without `shard`")
    spaces = _partition_spaces(partition, Path(activations), layers, model, inner, save_models)
    if background is not None and (not betas or spaces is not None):
        raise ConfigError("`background` is the image under the brain pictures of `betas` maps, which a `partition` "
                          "run or a `responses` run does not draw: leave it out")
    pictured = plot is not None and bool(betas) and spaces is None  # the R^2 maps' brain pictures
    from ..figures.brain import background_path, picture_background

    background = picture_background(pictured, background)
    out_dir = check_output_dir(out_dir, "out_dir")  # created only when there is something to write
    inputs = {"activations": [activations], "betas": list(betas or ()), "mask": [mask], "rois": list(rois or ()),
              "responses": list(responses or ()), "stimuli": [stimuli], "test_stimuli": [test_stimuli],
              "partition": [space[1] for space in spaces or ()],
              "background": [None if background is None else background.get_filename()]}
    if part is None:
        outputs = _folder_outputs(out_dir, config, "out_dir")
    else:  # only the shard's file: the merge writes the folder (and checks its files then)
        plan = plan_output(out_dir / ENCODE_SHARD_NAME, part, resume=resume)
        if plan.complete:
            return EncodingFiles(out_dir, [], {}, [], shard_file=plan.path)
        outputs = [Output("out_dir", plan.path, "hdf5", folder_made=True),
                   *options_output(plan.path, config, parameter="out_dir", folder_made=True, replaceable=resume)]
    # a shard leaves the figure to the merge, but its name is checked now, before any work
    outputs += [Output("plot", Path(plot), "figure", replaceable=part is not None)] if plot is not None else []
    check_outputs(outputs, inputs, overwrite=overwrite)
    if spaces is not None:
        return _partition_run(Path(activations), out_dir, spaces, outputs, inputs, parameters, betas=betas, mask=mask,
                              rois=rois, responses=responses, key=key, roi=roi, repetitions=repetitions,
                              stimuli=stimuli, test_stimuli=test_stimuli, plot=plot, device=device,
                              overwrite=overwrite, resume=resume, config=config, progress=progress)
    names, ids = _layers_of(Path(activations), layers)
    test_sets = (fixed_split(ids, _read_ids(Path(test_stimuli))) if test_stimuli is not None
                 else outer_folds(len(ids), parameters.folds, parameters.seed))
    _check_training(test_sets, len(ids), parameters)
    order = _brain_order(ids, stimuli, activations)
    if betas:
        targets = _nifti_targets([Path(p) for p in betas], mask, list(rois or ()), len(ids), order, activations)
    else:
        targets = _array_targets([Path(p) for p in responses], key, roi, repetitions, len(ids), order, activations)
    if part is not None:
        job = {"command": "encode", "layers": names, "parameters": dataclasses.asdict(parameters), "key": key,
               "roi": roi, "repetitions": repetitions, "plot": None if plot is None else str(plot),
               "background": background_path(background),
               "inputs": {name: files_sha256(input_entries(p for p in paths if p is not None))
                          for name, paths in inputs.items()}}  # what changes the merged files
        return _shard_run(Path(activations), out_dir, plan.path, part, job, names, targets, order, parameters,
                          test_sets, repetitions=repetitions, plot=plot, background=job["background"], device=device,
                          config=config, progress=progress)
    planned = {(s, layer): _pair_paths(out_dir, s, layer, targets.kind) for s in targets.subjects for layer in names}
    group = _group_paths(out_dir, names, targets) if len(targets.subjects) > 1 else {}
    models = {pair: out_dir / f"{pair[0]}_{pair[1]}_model.h5" for pair in planned} if save_models else {}
    pictures = _pictures(planned, group, targets, plot)
    files = _result_outputs("out_dir", planned, group, targets)
    files += [Output("out_dir", path, "hdf5", replaceable=True, folder_made=True) for path in models.values()]
    files += [Output("plot", path, "png", replaceable=True, folder_made=True) for _, path in pictures.values()]
    check_outputs([*outputs, *files], inputs, overwrite=overwrite)
    if resume:
        _check_resumable(out_dir, config)
    _check_activations(Path(activations), names)  # every layer read once: NaN or constant layers stop the run here
    target = resolve_device(device)
    if betas and mask is None and not rois:
        log.info("mask: the %d voxels with finite, non-constant responses in every subject", int(targets.mask.sum()))
    out_dir = make_output_dir(out_dir, "out_dir")
    summary = check_new_output(out_dir / "summary.csv", overwrite)
    if overwrite:
        summary.unlink(missing_ok=True)  # incomplete until the new summary.csv is written
    record_options(out_dir, config, sidecar=out_dir / CONFIG_NAME)
    done = {pair for pair, paths in planned.items()
            if resume and all(p.is_file() for p in [*paths, *([models[pair]] if models else [])])}
    if done:
        log.info("resuming in %s: %d of %d (subject, layer) results are complete and kept", out_dir, len(done),
                 len(planned))
    scores: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    ceilings: dict[str, np.ndarray | None] = {}
    count = 0
    for number, subject in enumerate(targets.subjects):
        todo = [layer for layer in names if (subject, layer) not in done]
        responses_of, ceiling = (None, None)
        if todo or repetitions:
            responses_of, ceiling = _read_targets(targets, number, order, repetitions, parameters.seed)
        ceilings[subject] = ceiling
        for layer in names:
            if (subject, layer) in done:
                scores[subject, layer] = _read_scores(planned[subject, layer], targets)
            else:
                scores[subject, layer] = _fit_pair(Path(activations), layer, responses_of, parameters, test_sets, target,
                                                   targets, subject, models.get((subject, layer)))
                _write_pair(planned[subject, layer], scores[subject, layer], ceiling, targets)
            count += 1
            if progress:
                progress(count, len(planned))
    rows, group_files = _finish_folder(summary, group, names, scores, ceilings, targets, plot, repetitions, pictures,
                                       background)
    log.info("wrote %d (subject, layer) results and summary.csv to %s", len(planned), out_dir)
    written = [path for paths in planned.values() for path in paths] + list(models.values()) + group_files
    written += ([Path(plot)] if plot is not None else []) + [path for _, path in pictures.values()]
    return EncodingFiles(out_dir, rows, best_layers(rows), written, len(done))


def best_layers(rows: Sequence[dict]) -> dict[str, dict]:
    """The summary row of the layer with the highest mean r per ROI: of the group rows with
    several subjects, over every time point (`time` "mean") for time-resolved data."""
    subjects = {row["subject"] for row in rows}
    who = GROUP if GROUP in subjects else next(iter(subjects), None)
    best: dict[str, dict] = {}
    for row in rows:
        if row["subject"] != who or row.get("time", "mean") not in ("", "mean"):
            continue
        current = best.get(row["roi"])
        if current is None or (np.isfinite(row["mean_r"]) and not row["mean_r"] <= current["mean_r"]):
            best[row["roi"]] = row
    return best


# ------------------------------------------------------------------ the inputs


def _alphas(value, default) -> tuple[float, ...]:
    """The ridge penalties: numbers, or their text `A,B,...` (the command line's)."""
    if value is None:
        return tuple(float(a) for a in default)
    if isinstance(value, str):
        try:
            return tuple(float(part) for part in value.split(","))
        except ValueError:
            raise ConfigError(f"`alphas` must be numbers separated by commas (1,10,100), got {value!r}") from None
    return tuple(float(a) for a in value)


def _layers_of(path: Path, layers) -> tuple[list[str], list[str]]:
    """The chosen layers (checked as file names) and the stimulus ids of an activations file."""
    from .activation_inputs import check_activation_layers

    names, ids, _ = check_activation_layers(path, layers)
    for name in names:
        check_name(name, "a layer (it names the output files)")
    return names, ids


def _check_activations(path: Path, names: Sequence[str]) -> None:
    """Every chosen layer finite and with at least one feature that varies over the stimuli."""
    from ..io.hdf5 import ACTIVATIONS_KIND, open_h5

    with open_h5(path, ACTIVATIONS_KIND) as file:
        for name in names:
            features = _features(file, path, name)
            if not np.ptp(features, axis=0).any():
                raise InputError(f"{path}: layer {name!r} does not vary over the stimuli (every feature is constant); "
                                 "it cannot predict responses: leave it out of `layers`")


def _features(file, path: Path, name: str) -> np.ndarray:
    """A layer's activations as (stimuli, features) float32; `InputError` for NaN or infinite ones."""
    dataset = file["layers"][name]
    features = np.asarray(dataset[()], dtype=np.float32).reshape(dataset.shape[0], -1)
    if not np.isfinite(features).all():
        bad = "NaN" if np.isnan(features).any() else "infinite"
        raise InputError(f"{path}: layer {name!r} holds {bad} activations; remove or impute them (or extract the "
                         "layer again)")
    return features


def _check_training(test_sets: list[np.ndarray], n: int, parameters) -> None:
    """Every fold's training stimuli enough for the inner cross-validation that chooses
    the ridge penalties (as `fit_encoding` requires), before the first fit."""
    kfold = parameters.model == "ridge" and parameters.inner == "kfold"
    needed = 2 * parameters.inner_folds if kfold else 3 if parameters.model == "ridge" else 2
    how = (f"{parameters.inner_folds} inner folds" if kfold else f"`inner` {parameters.inner}"
           if parameters.model == "ridge" else "a fit")
    smallest = n - max(len(test) for test in test_sets)
    if smallest < needed:
        raise InputError(f"a fold has {smallest} training stimuli of {n}; choosing the ridge penalties by "
                         f"{how} needs {needed}: use more `folds` (smaller test sets), fewer test stimuli, or more "
                         "stimuli")


def _read_ids(path: Path) -> list[str]:
    """The stimulus ids of a text file, one a line (blank lines and `#` comments skipped)."""
    from ..io.paths import what_is_there

    if not path.is_file():
        raise InputError(f"`test_stimuli` {path} {what_is_there(path)}; give a text file of stimulus ids, one a line")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read `test_stimuli` {path}: {error}; give a UTF-8 text file of stimulus ids") from None
    ids = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    if len(set(ids)) != len(ids):
        raise InputError(f"`test_stimuli` {path} lists a stimulus id twice; list each once")
    return ids


def _brain_order(ids: list[str], stimuli, activations) -> np.ndarray | None:
    """Indices putting the brain data's rows (named by `stimuli`) into the activations' order."""
    if stimuli is None:
        return None
    from ..extraction.stimuli import discover_stimuli
    from .activation_inputs import order_to_activations

    given = [s.id for s in discover_stimuli(stimuli)]
    if len(given) != len(ids):
        raise InputError(f"`stimuli` {stimuli} lists {len(given)} stimuli, {activations} holds {len(ids)}; give the "
                         "responses to the stimuli of the activations, one per stimulus")
    return order_to_activations(ids, given, str(activations), str(stimuli), "the brain data (`stimuli`)")


def _subjects(paths: Sequence[Path], what: str) -> list[str]:
    from .nifti import roi_name

    subjects = [check_name(roi_name(path), f"a subject (a `{what}` file)") for path in paths]
    if len(set(subjects)) != len(subjects):
        raise InputError(f"two `{what}` files have the same name; subjects are named after their files, rename one")
    if GROUP in subjects:  # the name of the group's maps and summary rows
        raise InputError(f"a `{what}` file is named group; subjects are named after their files, rename it")
    return subjects


def _nifti_targets(paths: list[Path], mask, rois: list, n: int, order, activations) -> _Targets:
    """Check every volume's header, the masks and every volume's responses at the targets."""
    from .activation_inputs import check_stimulus_count
    from .nifti import check_dimensions, check_same_grid, load_mask, nifti_header, roi_name, usable_voxels_of

    subjects = _subjects(paths, "betas")
    first = None
    for path in paths:  # headers first: cheap, and every one before any volume is decoded
        image = nifti_header(path, "response volume")
        check_dimensions(image, 4, f"response volume {path}")
        check_stimulus_count(image.shape[3], n, None, None, activations, str(path))
        if first is not None:
            check_same_grid(image, first, what=f"{path}", reference_what=f"{first.get_filename()}")
        first = first or image
    roi_masks = {}
    for path in map(Path, rois):
        name = check_name(roi_name(path), "an ROI (a `rois` file)")
        if name in roi_masks or name == WHOLE:
            raise InputError(f"`rois` {path}: another ROI, or the whole `mask` ({WHOLE!r}), has that name; ROIs are "
                             "named after their files: rename it")
        roi_masks[name] = load_mask(path, first)
    given = load_mask(Path(mask), first) if mask is not None else None
    if given is None and roi_masks:
        given = np.logical_or.reduce(list(roi_masks.values()))
    selected = given.copy() if given is not None else np.ones(first.shape[:3], dtype=bool)
    for path in paths:  # every volume read once, so that bad responses stop the run before the first fit
        finite, usable = usable_voxels_of(path, stimuli=n, reference=first)
        if given is not None and not usable[given].all():
            voxel = tuple(int(i) for i in np.argwhere(given & ~usable)[0])
            problem = "NaN or infinite" if not finite[voxel] else "constant"
            where = "`mask`" if mask is not None else "the `rois`"
            raise InputError(f"{path}: voxel {voxel} of {where} has {problem} responses over the stimuli; an encoding "
                             "model cannot be fitted to it: fix the volume, or drop the voxel from the mask (without "
                             "`mask`, the voxels with usable responses in every subject are used)")
        selected &= usable
    if not selected.any():
        raise InputError("no voxel has finite, non-constant responses in every subject; check the volumes, or give a "
                         "`mask`")
    regions = {WHOLE: np.ones(int(selected.sum()), dtype=bool)}
    for name, region in roi_masks.items():
        inside = region[selected]
        if not inside.any():
            raise InputError(f"ROI {name!r} holds no voxel of the mask; check the ROI mask and `mask`")
        regions[name] = inside
    return _Targets(subjects, paths, "nifti", regions, mask=selected, reference=first, stimuli=n)


def _array_targets(paths: list[Path], key, roi: str, repetitions: bool, n: int, order, activations) -> _Targets:
    """Check every subject's response array (read once, before any work)."""
    from .activation_inputs import check_stimulus_count
    from .recordings import load_responses

    subjects = _subjects(paths, "responses")
    check_name(roi, "the ROI of the `responses`")
    shape, timed = None, False
    for path in paths:
        array = load_responses(path, key)
        check_stimulus_count(array.shape[0], n, None, None, activations, str(path))
        if repetitions and (array.ndim != 3 or array.shape[2] < 2):
            raise InputError(f"{path} holds responses of shape {array.shape}; with `repetitions` they must be "
                             "(stimuli, channels, repetitions), with at least 2 repetitions")
        layout = array.shape[1:2] if repetitions else array.shape[1:]
        if shape is not None and layout != shape:
            raise InputError(f"{path} holds {layout} channels [x time points], {paths[0]} {shape}; every subject needs "
                             "the same channels (and time points)")
        shape, timed = layout, len(layout) == 2
        flat = (array.mean(axis=2) if repetitions else array).reshape(array.shape[0], -1)
        constant = np.flatnonzero(np.ptp(flat, axis=0) == 0)
        if constant.size:
            where = np.unravel_index(int(constant[0]), layout)
            label = f"channel {where[0]}" + (f" at time {where[1]}" if timed else "")
            raise InputError(f"{path}: {label} has constant responses over the stimuli ({constant.size} such "
                             "targets); an encoding model cannot be fitted to them: leave them out")
    return _Targets(subjects, paths, "array", {roi: np.ones(int(np.prod(shape)), dtype=bool)}, shape=tuple(shape),
                    timed=timed, key=key, stimuli=n)


def _read_targets(targets: _Targets, number: int, order, repetitions: bool, seed: int):
    """One subject's (stimuli, targets) responses in the activations' order, and their noise
    ceiling per target with `repetitions` (else None)."""
    from .recordings import load_responses

    path = targets.paths[number]
    if targets.kind == "nifti":
        from .nifti import masked_responses

        return masked_responses(path, stimuli=targets.stimuli, mask=targets.mask, order=order,
                                reference=targets.reference), None
    array = load_responses(path, targets.key)
    if order is not None:
        array = array[order]
    if not repetitions:
        return array.reshape(array.shape[0], -1), None
    from .encoding import noise_ceiling

    return array.mean(axis=2), noise_ceiling(array, seed=seed)


def _check_resumable(out_dir: Path, config: dict | None) -> None:
    """A resumed run must have the options of the run it continues (those that change results)."""
    sidecar = out_dir / CONFIG_NAME
    if config is None or not sidecar.is_file():
        return
    recorded, _ = read_resolved_config(sidecar)
    for name, value in config.items():
        if name in _RUN_OPTIONS:
            continue
        before = recorded.get(name.replace("_", "-"))
        if plain(value) != before:
            raise InputError(f"`out_dir` {out_dir} holds the results of a run with `{name}` {before!r}, not "
                             f"{plain(value)!r}; resume it with its options, or add `overwrite=True` to start again")


# ------------------------------------------------------------------ fitting and writing


def _fit_pair(path: Path, layer: str, responses: np.ndarray, parameters, test_sets, device, targets: _Targets,
              subject: str, model_path: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(r, R^2) per target of one layer's encoding model of one subject; with `model_path`,
    the model refitted on all stimuli written there (`save_models`)."""
    from ..io.hdf5 import ACTIVATIONS_KIND, open_h5
    from . import encoding

    with open_h5(path, ACTIVATIONS_KIND) as file:
        features = _features(file, path, layer)
    try:
        result = encoding.fit_encoding(features, responses, parameters, test_sets=test_sets, device=str(device),
                                       layer=layer, keep_predictions=False)  # the scores suffice: memory bounded
        if model_path is not None:
            encoding.save_models(model_path, features, responses, parameters, result, device=str(device), layer=layer,
                                 layout=_target_layout(targets))
    except InputError as error:
        raise InputError(f"subject {subject!r}, layer {layer!r}: {error}") from None
    # the scores as stored (maps are float32), so that group maps and summary are the same whether a
    # pair was fitted now or read back by `resume`
    stored = np.float32 if targets.kind == "nifti" else np.float64
    return tuple(np.asarray(values, dtype=stored).astype(np.float64) for values in (result.r, result.r2))


def _pair_paths(out_dir: Path, subject: str, layer: str, kind: str) -> list[Path]:
    if kind == "nifti":
        return [out_dir / f"{subject}_{layer}_r.nii.gz", out_dir / f"{subject}_{layer}_r2.nii.gz"]
    return [out_dir / f"{subject}_{layer}.csv"]


def _group_paths(out_dir: Path, names: Sequence[str], targets: _Targets) -> dict[str, list[Path]]:
    if targets.kind == "nifti":
        return {layer: [out_dir / f"group_{layer}_{kind}.nii.gz" for kind in ("mean_r", "t", "p")] for layer in names}
    return {layer: [out_dir / f"group_{layer}.csv"] for layer in names}


def _folder_outputs(out_dir: Path, config: dict | None, parameter: str) -> list[Output]:
    """The folder, its summary.csv and its resolved options, as checked outputs; the options
    of a folder without summary.csv (an interrupted run's) are replaced."""
    leftover = not (out_dir / "summary.csv").exists()
    return [Output(parameter, out_dir, "folder"), Output(parameter, out_dir / "summary.csv", "csv", folder_made=True),
            *options_output(out_dir, config, out_dir / CONFIG_NAME, parameter, folder_made=True, replaceable=leftover)]


def _result_outputs(parameter: str, planned: dict, group: dict, targets: _Targets) -> list[Output]:
    """The (subject, layer) and group maps or tables, as checked outputs (those an interrupted run left are
    replaced)."""
    return [Output(parameter, path, "nifti" if targets.kind == "nifti" else "csv", replaceable=True, folder_made=True)
            for paths in [*planned.values(), *group.values()] for path in paths]


def _target_labels(targets: _Targets) -> list[dict]:
    """The channel (and time) of every array target, in target order."""
    index = np.indices(targets.shape).reshape(len(targets.shape), -1).T
    return [{"channel": int(i[0]), **({"time": int(i[1])} if targets.timed else {})} for i in index]


def _table_columns(targets: _Targets, *values: str) -> list[str]:
    return ["channel", *(["time"] if targets.timed else []), *values]


def _write_pair(paths: list[Path], scores, ceiling, targets: _Targets) -> None:
    """One (subject, layer)'s files, each atomically (the r2 map last: the pair is done when it exists)."""
    r, r2 = scores
    if targets.kind == "nifti":
        from .nifti import save_map

        save_map(r, targets.mask, paths[0], reference=targets.reference)
        save_map(r2, targets.mask, paths[1], reference=targets.reference)
        return
    rows = [label | {"r": r[j], "r2": r2[j], **({"noise_ceiling": ceiling[j]} if ceiling is not None else {})}
            for j, label in enumerate(_target_labels(targets))]
    write_csv(paths[0], rows, _table_columns(targets, "r", "r2", *(["noise_ceiling"] if ceiling is not None else [])))


def _read_scores(paths: list[Path], targets: _Targets) -> tuple[np.ndarray, np.ndarray]:
    """(r, R^2) of a (subject, layer) written by an earlier run."""
    if targets.kind == "nifti":
        return _read_map(paths[0], targets), _read_map(paths[1], targets)
    rows = _read_table(paths[0], targets)
    try:
        return tuple(np.array([float(row[column] or "nan") for row in rows]) for column in ("r", "r2"))
    except (KeyError, ValueError) as error:
        raise InputError(f"cannot resume from {paths[0]} ({error}); add `overwrite=True` to start again") from None


def _read_map(path: Path, targets: _Targets) -> np.ndarray:
    """An earlier run's map at the mask voxels, float64 of its float32."""
    from .nifti import check_same_grid, load_nifti

    image = load_nifti(path, "an earlier run's map")
    check_same_grid(image, targets.reference, what=f"{path}", reference_what="the volumes")
    return np.asarray(image.get_fdata(dtype=np.float32), dtype=np.float64)[targets.mask]


def _read_table(path: Path, targets: _Targets) -> list[dict]:
    """An earlier run's rows of a table of every array target."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"cannot resume from {path} ({error}); add `overwrite=True` to start again") from None
    if len(rows) != int(np.prod(targets.shape)):
        raise InputError(f"{path} holds {len(rows)} targets, not {int(np.prod(targets.shape))}; add "
                         "`overwrite=True` to start again")
    return rows


def _write_group(group: dict[str, list[Path]], names: Sequence[str], scores, targets: _Targets) -> list[Path]:
    """Group mean r, one-sample t and p (against 0, per target) of every layer."""
    stats = [stat for stat, _ in _GROUP_STATS]
    written = []
    for layer in names:  # a layer at a time: one layer's statistics in memory
        if layer not in group:
            continue
        files = (dict(zip(group[layer], [(layer, stat) for stat in stats], strict=True)) if targets.kind == "nifti"
                 else {group[layer][0]: {column: (layer, stat) for column, stat in zip(("mean_r", "t", "p"), stats,
                                                                                       strict=True)}})
        written += _write_group_tests({layer: np.stack([scores[s, layer][0] for s in targets.subjects])}, files,
                                      targets)
    return written


_GROUP_STATS = [("mean", 0), ("t", 2), ("p", 3)]  # the group files' statistics: indices into `one_sample_t`


def _write_group_tests(samples: dict, files: dict, targets: _Targets) -> list[Path]:
    """The group mean, one-sample t and p (against 0, per target) of every (subjects, targets) array of
    `samples`, written to `files`: {map: (key, stat)} for volumes, {table: {column: (key, stat)}} for arrays."""
    from .statistics import one_sample_t

    tests = {}
    for key, values in samples.items():
        result = one_sample_t(values)
        tests |= {(key, stat): result[index] for stat, index in _GROUP_STATS}
    if targets.kind == "nifti":
        from .nifti import save_map

        return [save_map(tests[which], targets.mask, path, reference=targets.reference) for path, which in files.items()]
    labels = _target_labels(targets)
    return [write_csv(path, [label | {column: tests[which][j] for column, which in columns.items()}
                             for j, label in enumerate(labels)], _table_columns(targets, *columns))
            for path, columns in files.items()]


def _summary_rows(names, scores, ceilings, targets: _Targets) -> list[dict]:
    """A row per (ROI, layer, subject[, time]), and the group's with several subjects."""
    import warnings

    subjects = list(targets.subjects) + ([GROUP] if len(targets.subjects) > 1 else [])
    times = list(range(targets.shape[1])) if targets.timed else [None]
    rows = []
    for roi, region in targets.rois.items():
        for layer in names:
            for subject in subjects:
                if subject == GROUP:
                    r = np.mean([scores[s, layer][0] for s in targets.subjects], axis=0)
                    r2 = np.mean([scores[s, layer][1] for s in targets.subjects], axis=0)
                    ceiling = None
                    if all(ceilings.get(s) is not None for s in targets.subjects):
                        ceiling = np.mean([ceilings[s] for s in targets.subjects], axis=0)
                else:
                    (r, r2), ceiling = scores[subject, layer], ceilings.get(subject)
                for time in [*times, *(["mean"] if targets.timed else [])]:
                    inside = region.copy()
                    if isinstance(time, int):
                        inside &= np.indices(targets.shape)[1].ravel() == time
                    with warnings.catch_warnings():  # an ROI of NaN scores: its row is NaN, as said in the docs
                        warnings.simplefilter("ignore", RuntimeWarning)
                        row = {"roi": roi, "layer": layer, "subject": subject, "time": "" if time is None else time,
                               "mean_r": float(np.nanmean(r[inside])), "median_r": float(np.nanmedian(r[inside])),
                               "mean_r2": float(np.nanmean(r2[inside])), "n_targets": int(inside.sum())}
                        if ceiling is not None:
                            nc = float(np.nanmean(ceiling[inside]))
                            row["noise_ceiling"] = nc
                            row["pct_of_nc"] = row["mean_r"] / nc * 100 if nc > 0 else float("nan")
                    rows.append(row)
    return rows


def _finish_folder(summary: Path, group: dict, names: Sequence[str], scores, ceilings, targets: _Targets, plot,
                   repetitions: bool, pictures: dict, background=None) -> tuple[list[dict], list[Path]]:
    """The group maps or tables, the figures and, last, summary.csv of a folder whose (subject, layer) files are
    written: (the summary rows, the group files)."""
    group_files = _write_group(group, names, scores, targets)
    rows = _summary_rows(names, scores, ceilings, targets)
    if plot is not None:
        from ..figures.encoding import encoding_profile_figure

        encoding_profile_figure(rows, names, Path(plot))
    _draw_pictures(pictures, rows, targets, background)
    write_csv(summary, rows, [c for c in SUMMARY_COLUMNS if (c != "time" or targets.timed)
                              and (c not in ("noise_ceiling", "pct_of_nc") or repetitions)]
              + (PICTURE_COLUMNS if pictures else []))  # last: complete
    return rows, group_files


def _pictures(planned: dict, group: dict, targets: _Targets, plot) -> dict:
    """(subject, layer) -> (its R^2 map, the brain picture beside it) when `plot` is given for
    `betas`; with several subjects also (GROUP, layer) -> the group's mean r map and its picture."""
    if plot is None or targets.kind != "nifti":
        return {}
    maps = {pair: paths[1] for pair, paths in planned.items()}
    maps.update({(GROUP, layer): paths[0] for layer, paths in group.items()})  # group_<layer>_mean_r.nii.gz
    return {pair: (path, path.with_name(path.name[: -len(".nii.gz")] + ".png")) for pair, path in maps.items()}


def _draw_pictures(pictures: dict, rows: list[dict], targets: _Targets, background=None) -> None:
    """Draw each R^2 map and group mean r map (positive values only: `PICTURE_THRESHOLD`;
    maps not in MNI space over `background`, else the mask) and record the picture and the
    map's peak in its subject's (the group's) row of every target (`WHOLE`)."""
    if not pictures:
        return
    import nibabel as nib

    from ..figures.brain import brain_figure

    fallback = nib.Nifti1Image(targets.mask.astype(np.float32), targets.reference.affine)
    by_pair = {(row["subject"], row["layer"]): row for row in rows if row["roi"] == WHOLE and row["time"] == ""}
    for (subject, layer), (map_path, picture) in pictures.items():
        what = "mean r" if subject == GROUP else "R^2"
        _, peak, _ = brain_figure(nib.load(str(map_path)), picture, threshold=PICTURE_THRESHOLD,
                                  title=f"{subject} {layer} {what}", background=background, fallback=fallback)
        row = by_pair[subject, layer]
        row.update({"plot": picture.name, "plot_threshold": PICTURE_THRESHOLD})
        if peak is not None:
            row.update({"peak_value": peak.value, "peak_x": peak.mm[0], "peak_y": peak.mm[1], "peak_z": peak.mm[2]})


# ------------------------------------------------------------------ shards


def _units(names: Sequence[str], count: int, chunk: int) -> list[tuple[str, int, int]]:
    """The work units a shard takes a share of, (layer, start, stop), layer by layer: every
    layer's `count` targets cut at the multiples of `chunk` (module docstring)."""
    starts = list(range(0, count, chunk))
    if len(starts) > 1 and count - starts[-1] == 1:
        # numpy sums one column pairwise but several column by column: a fit of a single target would
        # differ in its last bits from the same target fitted among others
        starts.pop()
    return [(layer, start, stop) for layer in names for start, stop in zip(starts, [*starts[1:], count], strict=True)]


def _ranges(units: Sequence[tuple[str, int, int]]) -> dict[str, tuple[int, int]]:
    """The targets [start, stop) of each layer of a shard's units (contiguous: units are listed layer by layer)."""
    ranges: dict[str, tuple[int, int]] = {}
    for layer, start, stop in units:
        ranges[layer] = (ranges.get(layer, (start, stop))[0], stop)
    return ranges


def _shard_run(activations: Path, out_dir: Path, shard_file: Path, part: Shard, job: dict, names: list[str],
               targets: _Targets, order, parameters, test_sets, *, repetitions: bool, plot, background, device,
               config, progress) -> EncodingFiles:
    """`encode_to_file` with `shard`: every layer checked as a whole run checks it, this shard's units fitted for
    every subject (a layer's units in one fit) and its file written."""
    from ..device import resolve_device
    from .encoding import target_chunk

    _check_activations(activations, names)  # every layer read once: NaN or constant layers stop every shard
    target = resolve_device(device)
    # the engine's blocks, so that a unit's fit solves the blocks of an unsharded fit
    chunk = target_chunk(parameters, targets.stimuli)
    units = _units(names, targets.count, chunk)
    taken = part.take(units)
    ranges = _ranges(taken)
    out_dir = make_output_dir(out_dir, "out_dir")
    scores: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    ceilings: dict[str, np.ndarray | None] = {}
    for number, subject in enumerate(targets.subjects):
        if not ranges and not repetitions:
            continue  # an empty shard: its inputs are checked, and it has nothing to fit
        responses_of, ceilings[subject] = _read_targets(targets, number, order, repetitions, parameters.seed)
        for layer, (start, stop) in ranges.items():
            scores[subject, layer] = _fit_pair(activations, layer, np.ascontiguousarray(responses_of[:, start:stop]),
                                               parameters, test_sets, target, targets, subject)
            if progress:
                progress(len(scores), len(ranges) * len(targets.subjects))
    _write_encode_shard(shard_file, part, len(units), job, names, targets, ranges, scores, ceilings, chunk=chunk,
                        plot=plot, background=background, config=config,
                        provenance=provenance_attr(config=config, seed=parameters.seed, device=target))
    record_options(shard_file, config)
    log.info("wrote shard %s (%d of %d (layer, target chunk) units: %s) to %s", part, len(taken), len(units),
             _describe(ranges), shard_file)
    return EncodingFiles(out_dir, [], {}, [], shard_file=shard_file)


def _describe(ranges: dict[str, tuple[int, int]]) -> str:
    """The layers and targets of a shard, for messages: `a[0:100], b[0:40]`, or `none`."""
    return ", ".join(f"{layer}[{start}:{stop}]" for layer, (start, stop) in ranges.items()) or "none"


def _write_encode_shard(path: Path, part: Shard, units: int, job: dict, names: list[str], targets: _Targets,
                        ranges: dict[str, tuple[int, int]], scores, ceilings, *, chunk: int, plot, background,
                        config, provenance: str) -> None:
    """One shard's scores with all that the merge needs to write the folder (module docstring), atomically."""
    import h5py

    strings = h5py.string_dtype()
    layout = _target_layout(targets)
    attrs = {"header_class": layout.pop("header_class").decode()} if "header_class" in layout else {}
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as file:
        file.create_dataset("subjects", data=targets.subjects, dtype=strings)
        file.create_dataset("layers", data=names, dtype=strings)
        file.create_dataset("roi_names", data=list(targets.rois), dtype=strings)
        file.create_dataset("roi_masks", data=np.stack(list(targets.rois.values())).astype(np.uint8),
                            compression="gzip")
        for name, values in layout.items():
            file.create_dataset(name, data=values, **({"compression": "gzip"} if name == "mask" else {}))
        if any(ceiling is not None for ceiling in ceilings.values()):
            file.create_dataset("noise_ceiling", data=np.stack([ceilings[s] for s in targets.subjects]))
        for layer, (start, stop) in ranges.items():
            group = file.create_group(f"scores/{layer}")
            group.attrs.update({"start": start, "stop": stop})
            for number, name in enumerate(("r", "r2")):
                group.create_dataset(name, data=np.stack([scores[s, layer][number] for s in targets.subjects]))
        file.attrs.update({
            "kind": ENCODE_SHARD_KIND, **part.attrs(units), "job_sha256": job_signature(job), "targets": targets.kind,
            "chunk": chunk, "plot": "" if plot is None else str(plot),
            "background": background or "", "config": json.dumps(config, default=str),
            "command": current_command() or "python", "provenance": provenance, **attrs,
        })


def _target_layout(targets: _Targets) -> dict[str, np.ndarray]:
    """How the targets lie, as arrays: a volume's mask (uint8), affine, header and its
    class (`header_bytes`), enough to write maps on its grid; or an array's shape."""
    if targets.kind != "nifti":
        return {"shape": np.asarray(targets.shape, dtype=np.int64)}
    from .nifti import header_bytes

    header_class, header, extensions = header_bytes(targets.reference)
    return {"mask": targets.mask.astype(np.uint8), "affine": np.asarray(targets.reference.affine, dtype=np.float64),
            "header": np.frombuffer(header, dtype=np.uint8), "header_extensions": np.frombuffer(extensions, dtype=np.uint8),
            "header_class": np.bytes_(header_class)}


def _shard_layout(file) -> dict:
    """What the merge needs of an encode shard file, all but the scores."""
    layout = {
        "subjects": list(file["subjects"].asstr()[()]), "layers": list(file["layers"].asstr()[()]),
        "roi_names": list(file["roi_names"].asstr()[()]), "roi_masks": file["roi_masks"][()],
        "targets": str(file.attrs["targets"]), "chunk": int(file.attrs["chunk"]), "plot": str(file.attrs["plot"]),
        "background": str(file.attrs.get("background", "")),  # shards written before `background`: none
        "noise_ceiling": file["noise_ceiling"][()] if "noise_ceiling" in file else None,
        "ranges": {layer: (int(group.attrs["start"]), int(group.attrs["stop"]))
                   for layer, group in file.get("scores", {}).items()},
        "shapes": {layer: (group["r"].shape, group["r2"].shape) for layer, group in file.get("scores", {}).items()},
    }
    if layout["targets"] == "nifti":
        layout |= {"mask": file["mask"][()], "affine": file["affine"][()], "header": file["header"][()].tobytes(),
                   "extensions": file["header_extensions"][()].tobytes(),
                   "header_class": str(file.attrs["header_class"])}
    else:
        layout["shape"] = tuple(int(size) for size in file["shape"][()])
    return layout


def _shard_scores(file) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """An encode shard's (r, R^2), (subjects, targets of the shard) per layer."""
    return {layer: (group["r"][()], group["r2"][()]) for layer, group in file.get("scores", {}).items()}


@holds_outputs
def merge_encoding(paths: Sequence[str | Path], out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Join the shard files of one sharded `encode_to_file` run into the files the unsharded
    run writes in `out_dir`: the (subject, layer) maps or tables, the group's, the figure
    (`plot` of the run), `encode.config.yaml` (shard 0's options, `shard` none and `out_dir`
    this folder) and, last, summary.csv; returns `out_dir`.

    Parameters
    ----------
    paths : sequence of path
        The shard files, every shard of the run once, in any order (empty shards
        included).
    out_dir : path
        The output folder, created (with its parents) when missing; usually the one the
        shards lie in.
    overwrite : bool, default False
        Replace the files of a complete folder (one with summary.csv) and the figure.

    Returns
    -------
    Path
        `out_dir`.

    Raises
    ------
    ConfigError
        No `paths`.
    InputError
        Missing, duplicate or foreign shards (other options, inputs or shard count:
        `net2brain_fovex.io.shards.check_shards`), or shards whose targets, layouts or
        scores do not fit together. Nothing is written then.
    OutputError
        `out_dir` cannot be created (the message names `out`, as the merge calls it), it
        holds a summary.csv or the figure exists, and `overwrite` is False.
    """
    from .nifti import image_from_header

    shards = check_shards(paths, ENCODE_SHARD_KIND)
    attrs = shards[0][1]
    total, count = int(attrs["items_total"]), int(attrs["shard_count"])
    parts = [(path, read_shard(path, _shard_layout, "encode shard")) for path, _ in shards]
    first_path, first = parts[0]
    keys = ["subjects", "layers", "roi_names", "roi_masks", "targets", "chunk", "plot", "background", "noise_ceiling"]
    keys += ["mask", "affine", "header", "extensions", "header_class"] if first["targets"] == "nifti" else ["shape"]
    check_same(parts, keys)
    subjects, names, n = first["subjects"], first["layers"], first["roi_masks"].shape[1]
    units = _units(names, n, first["chunk"])
    if len(units) != total:
        raise InputError(f"{first_path} holds {n} targets of {len(names)} layers in chunks of {first['chunk']}: "
                         f"{len(units)} units, not the {total} of its run; rerun that shard")
    for number, (path, part) in enumerate(parts):
        expected = _ranges(Shard(number, count).take(units))
        if part["ranges"] != expected:
            raise InputError(f"{path} holds the scores of {_describe(part['ranges'])}; shard {number}/{count} of "
                             f"{total} units needs {_describe(expected)}; rerun that shard")
        for layer, (start, stop) in expected.items():
            if part["shapes"][layer] != ((len(subjects), stop - start),) * 2:
                raise InputError(f"{path}: the scores of layer {layer!r} are {part['shapes'][layer][0]}, not "
                                 f"(subjects, targets) {(len(subjects), stop - start)}; rerun that shard")
    nifti = first["targets"] == "nifti"
    targets = _Targets(subjects, [], first["targets"], dict(zip(first["roi_names"], first["roi_masks"].astype(bool),
                                                                strict=True)),
                       mask=first["mask"].astype(bool) if nifti else None,
                       reference=image_from_header(first["header_class"], first["header"], first["extensions"],
                                                   first["affine"]) if nifti else None,
                       shape=() if nifti else first["shape"], timed=not nifti and len(first["shape"]) == 2)
    scores = {(s, layer): (np.empty(n), np.empty(n)) for s in subjects for layer in names}
    for path, part in parts:
        for layer, (r, r2) in read_shard(path, _shard_scores, "encode shard").items():
            start, stop = part["ranges"][layer]
            for number, subject in enumerate(subjects):
                scores[subject, layer][0][start:stop], scores[subject, layer][1][start:stop] = r[number], r2[number]
    ceiling = first["noise_ceiling"]
    ceilings = {s: None if ceiling is None else ceiling[number] for number, s in enumerate(subjects)}
    out_dir, plot = Path(out_dir), first["plot"] or None
    config = json.loads(attrs["config"])
    if config is not None:  # the options of the run in out_dir, as one unsharded run records them
        config = {**config, **({"shard": None} if "shard" in config else {}), "out_dir": str(out_dir)}
    planned = {(s, layer): _pair_paths(out_dir, s, layer, targets.kind) for s in subjects for layer in names}
    group = _group_paths(out_dir, names, targets) if len(subjects) > 1 else {}
    pictures = _pictures(planned, group, targets, plot)
    from ..figures.brain import recorded_background

    background = recorded_background(bool(pictures), first["background"] or None, first_path)
    outputs = [*_folder_outputs(out_dir, config, "out"), *([Output("plot", Path(plot), "figure")] if plot else []),
               *_result_outputs("out", planned, group, targets),
               *[Output("plot", path, "png", replaceable=True) for _, path in pictures.values()]]
    check_outputs(outputs, {"shards": [path for path, _ in parts]}, overwrite=overwrite)
    out_dir = make_output_dir(out_dir, "out")
    summary = check_new_output(out_dir / "summary.csv", overwrite)
    if overwrite:
        summary.unlink(missing_ok=True)  # incomplete until the new summary.csv is written
    if config is not None:  # the options are those of the encode run, whatever command merges them
        write_resolved_config(out_dir / CONFIG_NAME, attrs.get("command") or current_command() or "python", config)
    for (subject, layer), files in planned.items():
        _write_pair(files, scores[subject, layer], ceilings[subject], targets)
    _finish_folder(summary, group, names, scores, ceilings, targets, plot, ceiling is not None, pictures, background)
    log.info("merged %d shards: wrote %d (subject, layer) results and summary.csv to %s", count, len(planned),
             out_dir)
    return out_dir


# ------------------------------------------------------------------ variance partitioning


def _partition_spaces(partition, activations: Path, layers, model: str, inner: str,
                      save_models: bool) -> list[tuple[str, Path, str]] | None:
    """The feature spaces of `partition` as (name, file, layer), and the options it excludes."""
    if partition is None:
        return None
    parts = [part.strip() for part in (partition.split(",") if isinstance(partition, str) else partition)]
    if not 2 <= len(parts) <= 3 or not all(parts):
        raise ConfigError(f"`partition` takes two or three feature spaces, A,B[,C] (layers of `activations`, or "
                          f"FILE:LAYER), got {partition!r}")
    if model != "ridge":
        raise ConfigError("`partition` fits banded ridge models; leave `model` at ridge")
    if inner == "loo":  # the default gcv cannot be told from one not given: both mean "not chosen"
        raise ConfigError("`partition` chooses every alpha by `inner_folds` inner folds (banded ridge has no "
                          "leave-one-out); leave `inner` out, or give kfold")
    if layers != ALL:
        raise ConfigError("`partition` names the layers it fits; leave `layers` out (or run the per-layer fits "
                          "separately)")
    if save_models:
        raise ConfigError("`save_models` keeps the per-layer models, which `partition` does not fit: give one")
    spaces = []
    for part in parts:
        file, _, layer = part.rpartition(":")
        path = Path(file) if file else activations
        same = not file or (path.exists() and path.resolve() == activations.resolve())
        name = layer if same else f"{path.stem}.{layer}"
        if not layer:
            raise ConfigError(f"`partition` {part!r} names no layer; give LAYER or FILE:LAYER")
        spaces.append((name, path, layer))
    names = [space[0] for space in spaces]
    if len(set(names)) != len(names):
        raise ConfigError(f"`partition` names a feature space twice ({', '.join(names)}); give each once")
    return spaces


def _partition_features(spaces, activations: Path, ids: list[str]) -> dict[str, np.ndarray]:
    """Every space's (stimuli, features) in the activations' stimulus order, checked."""
    from ..io.hdf5 import ACTIVATIONS_KIND, open_h5
    from .activation_inputs import order_to_activations

    features = {}
    for name, path, layer in spaces:
        check_name(name, "a `partition` feature space (it names the output files)")
        _, their_ids = _layers_of(path, layer)
        order = None
        if path != activations:
            if len(their_ids) != len(ids):
                raise InputError(f"`partition` file {path} holds {len(their_ids)} stimuli, {activations} {len(ids)}; "
                                 "give activations of the same stimuli")
            order = order_to_activations(ids, their_ids, str(activations), str(path), f"`partition` file {path}")
        _check_activations(path, [layer])
        with open_h5(path, ACTIVATIONS_KIND) as file:
            values = _features(file, path, layer)
        features[name] = values if order is None else values[order]
    return features


def _measures(spaces: list[str]) -> list[tuple[str, str]]:
    """(measure, spaces) of a partition, in output order: r2 of every subset, unique, shared."""
    import itertools

    subsets = [c for size in range(1, len(spaces) + 1) for c in itertools.combinations(spaces, size)]
    return ([("r2", "+".join(c)) for c in subsets] + [("unique", s) for s in spaces]
            + [("shared", "+".join(c)) for c in subsets if len(c) > 1])


def _partition_values(result) -> dict[tuple[str, str], np.ndarray]:
    values = {("r2", "+".join(c)): v for c, v in result.subsets.items()}
    values |= {("unique", s): v for s, v in result.unique.items()}
    values |= {("shared", "+".join(c)): v for c, v in result.shared.items()}
    return {key: np.asarray(v, dtype=np.float64) for key, v in values.items()}


def _partition_paths(out_dir: Path, subject: str, measures, kind: str) -> dict:
    if kind == "nifti":
        return {m: out_dir / f"{subject}_{m[0]}_{m[1]}.nii.gz" for m in measures}
    return {"table": out_dir / f"{subject}_partition.csv"}


def _partition_run(activations: Path, out_dir: Path, spaces, outputs, inputs, parameters, *, betas, mask, rois,
                   responses, key, roi, repetitions, stimuli, test_stimuli, plot, device, overwrite, resume, config,
                   progress) -> EncodingFiles:
    """`encode_to_file` with `partition`: `partition_variance` per subject, maps or tables,
    the group's with several subjects, summary; `resume` keeps the subjects whose files exist."""
    import warnings

    from ..device import resolve_device
    from . import encoding

    _, ids = _layers_of(activations, ALL)
    test_sets = (encoding.fixed_split(ids, _read_ids(Path(test_stimuli))) if test_stimuli is not None
                 else encoding.outer_folds(len(ids), parameters.folds, parameters.seed))
    # every alpha of a partition is chosen by inner folds, whatever `inner` says (`partition_variance`)
    _check_training(test_sets, len(ids), dataclasses.replace(parameters, inner="kfold"))
    names = [space[0] for space in spaces]
    measures = _measures(names)
    order = _brain_order(ids, stimuli, activations)
    if betas:
        targets = _nifti_targets([Path(p) for p in betas], mask, list(rois or ()), len(ids), order, activations)
    else:
        targets = _array_targets([Path(p) for p in responses], key, roi, repetitions, len(ids), order, activations)
    planned = {s: _partition_paths(out_dir, s, measures, targets.kind) for s in targets.subjects}
    group = _partition_group_paths(out_dir, measures, targets) if len(targets.subjects) > 1 else {}
    files = [Output("out_dir", path, "nifti" if targets.kind == "nifti" else "csv", replaceable=True, folder_made=True)
             for paths in [*planned.values(), group] for path in paths.values()]
    check_outputs([*outputs, *files], inputs, overwrite=overwrite)
    if resume:
        _check_resumable(out_dir, config)
    features = _partition_features(spaces, activations, ids)  # every space read and checked before the first fit
    target = resolve_device(device)
    out_dir = make_output_dir(out_dir, "out_dir")
    summary = check_new_output(out_dir / "summary.csv", overwrite)
    if overwrite:
        summary.unlink(missing_ok=True)
    record_options(out_dir, config, sidecar=out_dir / CONFIG_NAME)
    done = {s for s, paths in planned.items() if resume and all(p.is_file() for p in paths.values())}
    if done:
        log.info("resuming in %s: %d of %d subjects are complete and kept", out_dir, len(done), len(planned))
    values = {}
    for number, subject in enumerate(targets.subjects):
        if subject in done:
            values[subject] = _read_partition(planned[subject], measures, targets)
        else:
            responses_of, _ = _read_targets(targets, number, order, repetitions, parameters.seed)
            try:
                result = encoding.partition_variance(features, responses_of, parameters, test_sets=test_sets,
                                                     device=str(target))
            except InputError as error:
                raise InputError(f"subject {subject!r}: {error}") from None
            # as stored (maps are float32), so that the group and summary are the same fitted now or resumed
            stored = np.float32 if targets.kind == "nifti" else np.float64
            values[subject] = {m: v.astype(stored).astype(np.float64) for m, v in _partition_values(result).items()}
            _write_partition(planned[subject], values[subject], measures, targets)
        if progress:
            progress(number + 1, len(targets.subjects))
    group_files = _write_partition_group(group, values, list(targets.subjects), measures, targets)
    subjects = list(targets.subjects)
    if len(subjects) > 1:
        values[GROUP] = {m: np.mean([values[s][m] for s in subjects], axis=0) for m in measures}
        subjects.append(GROUP)
    times = list(range(targets.shape[1])) if targets.timed else [None]
    rows = []
    for name, region in targets.rois.items():
        for subject in subjects:
            for time in [*times, *(["mean"] if targets.timed else [])]:
                inside = region.copy()
                if isinstance(time, int):
                    inside &= np.indices(targets.shape)[1].ravel() == time
                for measure, which in measures:
                    vector = values[subject][measure, which][inside]
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        rows.append({"roi": name, "subject": subject, "time": "" if time is None else time,
                                     "measure": measure, "spaces": which, "mean_r2": float(np.nanmean(vector)),
                                     "median_r2": float(np.nanmedian(vector)), "n_targets": int(inside.sum())})
    if plot is not None:
        from ..figures.encoding import partition_figure

        partition_figure(rows, Path(plot))
    write_csv(summary, rows, [c for c in PARTITION_COLUMNS if c != "time" or targets.timed])  # last: complete
    log.info("wrote the variance partitioning of %s for %d subjects and summary.csv to %s", "+".join(names),
             len(targets.subjects), out_dir)
    written = [path for paths in planned.values() for path in paths.values()] + group_files
    return EncodingFiles(out_dir, rows, {}, written + ([Path(plot)] if plot is not None else []), len(done))


def _partition_column(measure: tuple[str, str]) -> str:
    """`unique_a`, `shared_a+b`, `r2_a+b`: a measure's column of the partition tables."""
    return f"{measure[0]}_{measure[1]}"


def _write_partition(paths: dict, values: dict, measures, targets: _Targets) -> None:
    if targets.kind == "nifti":
        from .nifti import save_map

        for measure in measures:
            save_map(values[measure], targets.mask, paths[measure], reference=targets.reference)
        return
    rows = [label | {_partition_column(m): values[m][j] for m in measures} for j, label in enumerate(_target_labels(targets))]
    write_csv(paths["table"], rows, _table_columns(targets, *map(_partition_column, measures)))


def _read_partition(paths: dict, measures, targets: _Targets) -> dict:
    """A subject's partition values per measure as an earlier run wrote them (`resume`)."""
    if targets.kind == "nifti":
        return {m: _read_map(paths[m], targets) for m in measures}
    rows = _read_table(paths["table"], targets)
    try:
        return {m: np.array([float(row[_partition_column(m)] or "nan") for row in rows]) for m in measures}
    except (KeyError, ValueError) as error:
        raise InputError(f"cannot resume from {paths['table']} ({error}); add `overwrite=True` to start again") from None


def _partition_group_paths(out_dir: Path, measures, targets: _Targets) -> dict:
    if targets.kind == "nifti":
        return {(m, stat): out_dir / f"group_{_partition_column(m)}_{stat}.nii.gz" for m in measures
                for stat, _ in _GROUP_STATS}
    return {"table": out_dir / "group_partition.csv"}


def _write_partition_group(paths: dict, values: dict, subjects: list[str], measures, targets: _Targets) -> list[Path]:
    """The group mean, one-sample t and p (against 0, per target) of every measure."""
    if not paths:
        return []
    files = ({path: which for which, path in paths.items()} if targets.kind == "nifti"
             else {paths["table"]: {f"{_partition_column(m)}_{stat}": (m, stat) for m in measures
                                    for stat, _ in _GROUP_STATS}})
    return _write_group_tests({m: np.stack([values[s][m] for s in subjects]) for m in measures}, files, targets)


# ------------------------------------------------------------------ predictions of saved models


@holds_outputs
def predict_to_file(model: str | Path, activations: str | Path, out: str | Path, *, layers: str | Sequence[str] = ALL,
                    overwrite: bool = False, config: dict | None = None) -> Path:
    """Predict the responses to new stimuli with a model `encode_to_file(save_models=True)` wrote.

    Parameters
    ----------
    model : path
        A `<subject>_<layer>_model.h5` file.
    activations : path
        The new stimuli's activations; the layer is the model's (`layers` "all") or the one
        `layers` names.
    out : path
        The predictions, put back where the targets lie: `.nii.gz` / `.nii` (a model of
        `betas`): a 4D float32 NIfTI, a volume per new stimulus (in the activations' order),
        NaN outside the mask, on the training volumes' grid, affine and header; `.npy`: an
        array (stimuli, targets) for `betas` (the mask voxels in C order), (stimuli,
        channels[, time]) for `responses`; `.h5`: the same array as dataset `predictions`,
        with `stimuli` and the attributes `model` and `layer`.
    layers : str, default "all"
    overwrite : bool
    config : dict, optional
        The resolved options, recorded beside `out`.

    Returns
    -------
    Path
    """
    import h5py

    from ..io.atomic import atomic_output
    from ..io.hdf5 import ACTIVATIONS_KIND, open_h5
    from ..io.outputs import suffix_of
    from .encoding import ENCODING_MODEL_KIND, check_solvers, model_layout, predict

    check_solvers()
    out = Path(out)
    kinds = {".npy": "npy", ".h5": "hdf5", ".hdf5": "hdf5", ".nii": "nifti", ".nii.gz": "nifti"}
    kind = kinds.get(suffix_of(out))
    if kind is None:
        raise ConfigError(f"`out` {out} must end in .nii.gz or .nii (a model of volumes), .npy or .h5 (the "
                          "predictions)")
    chosen = [part.strip() for part in layers.split(",")] if isinstance(layers, str) else list(layers)
    if len(chosen) != 1:
        raise ConfigError(f"a model predicts from one layer; give `layers` one name (or leave it out), got {layers!r}")
    outputs = [Output("out", out, kind), *options_output(out, config)]
    check_outputs(outputs, {"predict": [model], "activations": [activations]}, overwrite=overwrite)
    with open_h5(model, ENCODING_MODEL_KIND) as file:
        layer = str(file.attrs["layer"])
    layout = model_layout(model)
    if kind == "nifti" and "mask" not in layout:
        raise ConfigError(f"`out` {out} is a NIfTI, but {model} models {'channels' if layout else 'targets'} of no "
                          "volume; write .npy or .h5")
    if chosen != [ALL]:
        layer = chosen[0]
    _, ids = _layers_of(Path(activations), layer)
    with open_h5(activations, ACTIVATIONS_KIND) as file:
        features = _features(file, Path(activations), layer)
    predictions = predict(model, features)
    if "shape" in layout:  # the channels [x time points] of array responses
        predictions = predictions.reshape(len(predictions), *(int(size) for size in layout["shape"]))
    if kind == "nifti":
        from .nifti import image_from_header, save_series

        reference = image_from_header(layout["header_class"].decode(), layout["header"].tobytes(),
                                      layout["header_extensions"].tobytes(), layout["affine"])
        save_series(predictions, layout["mask"].astype(bool), out, reference=reference)
    else:
        with atomic_output(out) as tmp:
            if kind == "npy":
                with open(tmp, "wb") as handle:
                    np.save(handle, predictions)
            else:
                with h5py.File(tmp, "w") as file:
                    file.attrs["kind"] = "predictions"
                    file.attrs["model"] = str(model)
                    file.attrs["layer"] = layer
                    file["predictions"] = predictions
                    file["stimuli"] = np.array(ids, dtype=h5py.string_dtype())
    record_options(out, config)
    log.info("wrote the predictions of %s for %d stimuli x %d targets to %s", model, len(predictions),
             predictions[0].size if len(predictions) else 0, out)
    return out
