"""Searchlight files: `searchlight_to_file` and what it writes.

An output folder holds `<subject>_<layer>.nii.gz` per subject and layer, with several
subjects `group_<layer>_mean.nii.gz`, `_t` and `_p` (and `_fdrQ` masks), the resolved
options `searchlight.config.yaml` and `summary.csv`, a row per map. The folder is
complete when `summary.csv` exists: it is written last.

A shard (`shard`) writes no maps but `OUT_DIR/searchlight.shard-I-of-N.h5`: its block of
scores with the mask, the reference affine and header, and the map options;
`merge_searchlight` turns the shards into the folder one run writes. Net2Brain's
precomputed searchlight RDMs (`searchlight_rdms`) give the same maps.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError
from ..io.atomic import atomic_output, check_new_output, check_output_dir, make_output_dir
from ..io.config import options_output, record_options, write_resolved_config
from ..io.hdf5 import SEARCHLIGHT_SHARD_KIND, SEARCHLIGHT_SHARD_NAME, check_name
from ..io.locks import holds_outputs
from ..io.outputs import Output, check_outputs
from ..io.provenance import current_command, files_sha256
from ..io.shards import Shard, check_same, check_shards, job_signature, parse_shard, read_shard
from ..io.tables import write_csv
from ..selection import ALL
from .nifti import header_bytes, image_from_header, roi_name, save_binary, save_map
from .parameters import SearchlightParameters
from .statistics import fdr_mask, one_sample_t

__all__ = ["SearchlightFiles", "searchlight_to_file", "write_searchlight_folder", "merge_searchlight",
           "SUMMARY_COLUMNS", "PLOT_COLUMNS", "CONFIG_NAME"]

log = logging.getLogger(__name__)

# summary.csv with `plot`: the picture of each drawn map and the value it is thresholded at
PLOT_COLUMNS = ["plot", "plot_threshold"]
SUMMARY_COLUMNS = ["map", "subject", "layer", "statistic", "peak_value", "peak_i", "peak_j", "peak_k",
                   "peak_x", "peak_y", "peak_z", "threshold", "n_above", "n_fdr"]
CONFIG_NAME = "searchlight.config.yaml"  # the resolved options in the output folder


@dataclass(frozen=True)
class SearchlightFiles:
    """What `searchlight_to_file` wrote.

    Attributes
    ----------
    out_dir : Path
    summary : list of dict
        The rows of summary.csv (none for a shard).
    maps : list of Path
        The maps, in summary order (none for a shard).
    shard_file : Path or None
        The shard's file, for a shard.
    centre_range : tuple of int
        The block of mask voxels (C order) the run scored: all of them but for a shard.
    mask_voxels : int
    """

    out_dir: Path
    summary: list[dict]
    maps: list[Path]
    shard_file: Path | None = None
    centre_range: tuple[int, int] = (0, 0)
    mask_voxels: int = 0


@holds_outputs
def searchlight_to_file(
    model_rdms: str | Path,
    out_dir: str | Path,
    *,
    betas: Sequence[str | Path] = (),
    mask: str | Path | None = None,
    layers: str | Sequence[str] = ALL,
    radius: float | None = None,
    stimuli: str | Path | None = None,
    metric: str = SearchlightParameters.metric,
    compare: str = SearchlightParameters.compare,
    min_voxels: int = SearchlightParameters.min_voxels,
    batch_size: int = SearchlightParameters.batch_size,
    precision: str = SearchlightParameters.precision,
    device: str = "cpu",
    threshold: float = SearchlightParameters.threshold,
    alpha: float = SearchlightParameters.alpha,
    fdr: float | None = SearchlightParameters.fdr,
    searchlight_rdms: str | Path | None = None,
    centres: str | Path | None = None,
    reference: str | Path | None = None,
    shard: str | Shard | None = None,
    plot: bool = False,
    background: str | Path | None = None,
    overwrite: bool = False,
    config: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SearchlightFiles:
    """Searchlight RSA of 4D volumes (or Net2Brain's precomputed searchlight RDMs) against
    model RDMs: a map per subject and layer, group maps, and a summary, in `out_dir`.

    Parameters
    ----------
    model_rdms : path
        Model RDMs (`rdms_to_file`, or a MATLAB struct array); `layers` chooses them.
    out_dir : path
        The output folder (created).
    betas : sequence of path
        One 4D NIfTI per subject (one volume per stimulus), with `radius`.
    mask : path, optional
        A 3D brain mask (default: the voxels with usable responses in every subject).
    stimuli : path, optional
        The stimulus order of the volumes (list or folder); reordered to the model's.
    radius, metric, compare, min_voxels, batch_size, precision, threshold, alpha, fdr
        As `SearchlightParameters`.
    device : str, default "cpu"
    searchlight_rdms, centres, reference : path, optional
        Precomputed RDMs (.npz / .npy: searchlights x subjects x n x n), their centre
        voxels (or an array `centres` inside the .npz) and a NIfTI on their grid,
        instead of `betas`.
    shard : str or Shard, optional
        `I/N` or `auto`: score only this block of the mask's centres into a shard file
        (`merge_searchlight` joins the shards).
    plot : bool
        Also draw a brain picture (`brain_figure`) beside each drawn map, `<map>.png`: with
        several subjects the group's mean (above `threshold`) and t maps (above the FDR level
        with `fdr`, else the t of p = `alpha`), with one subject its score maps (above
        `threshold`); recorded in summary.csv (`plot`, `plot_threshold`). With `shard`, the
        merge draws them (each shard checks nilearn and `background` before its work).
    background : path, optional
        A 3D NIfTI drawn under maps that are not in MNI space (default: the mask).
    overwrite : bool
        Replace a complete folder.
    config : dict, optional
        The resolved options, written to `searchlight.config.yaml`.
    progress : callable (done, total), optional
        Called after every batch of centres.

    Returns
    -------
    SearchlightFiles

    Raises
    ------
    ConfigError
        Contradictory or bad options (checked before any volume is read).
    InputError, OutputError
    """
    from ..device import resolve_device
    from ..extraction.stimuli import discover_stimuli
    from ..figures.brain import background_path, picture_background
    from .rdm_files import choose_rdms, read_model_rdms, reorder_index
    from .searchlight import run_searchlight

    parameters = SearchlightParameters(radius, metric, compare, min_voxels, batch_size, precision, threshold, alpha, fdr)
    part = parse_shard(shard) if isinstance(shard, str) else shard
    if bool(betas) == bool(searchlight_rdms):
        raise ConfigError("give either `betas` (4D volumes) or `searchlight_rdms` (precomputed), not both or neither")
    if part is not None and searchlight_rdms:
        raise ConfigError("`shard` divides the centres of `betas` volumes; a `searchlight_rdms` run is not sharded, "
                          "run it without `shard`")
    if betas:
        if radius is None:
            raise ConfigError("give the sphere `radius` in millimetres for `betas` volumes")
        if centres is not None or reference is not None:
            raise ConfigError("`centres` and `reference` describe `searchlight_rdms`; leave them out with `betas`")
    elif reference is None:
        raise ConfigError("`searchlight_rdms` needs `reference` (a NIfTI on the grid of the centres) to write maps")
    background = picture_background(plot, background)
    out_dir = check_output_dir(out_dir, "out_dir")  # created only when there is something to write
    shard_file = None if part is None else part.path(out_dir / SEARCHLIGHT_SHARD_NAME)
    inputs = {"betas": betas, "mask": [mask], "model_rdms": [model_rdms], "stimuli": [stimuli],
              "searchlight_rdms": [searchlight_rdms], "centres": [centres], "reference": [reference],
              "background": [None if background is None else background.get_filename()]}
    # a complete folder (it has summary.csv), or this shard's file, is refused before any work; the first
    # output is the one locked: a shard's own file, so that the shards of an array write one folder at once
    if part is None:  # a folder without summary.csv is an interrupted run's: its files are replaced
        leftover = not (out_dir / "summary.csv").exists()
        outputs = [Output("out_dir", out_dir, "folder"), Output("out_dir", out_dir / "summary.csv", "csv", folder_made=True),
                   *options_output(out_dir, config, out_dir / CONFIG_NAME, "out_dir", folder_made=True,
                                   replaceable=leftover)]
    else:
        outputs = [Output("out_dir", shard_file, "hdf5", folder_made=True), Output("out_dir", out_dir, "folder"),
                   *options_output(shard_file, config, parameter="out_dir", folder_made=True)]
    check_outputs(outputs, inputs, overwrite=overwrite)
    model = read_model_rdms(model_rdms)
    model.rdms = choose_rdms(model, layers)
    if betas and part is None:  # the maps too; those an interrupted run left are replaced
        subjects = [check_name(roi_name(Path(path)), "a subject (a `betas` file)") for path in betas]
        if len(set(subjects)) != len(subjects):
            raise InputError("two `betas` files have the same name; subjects are named after their files, rename one")
        maps = [Output("out_dir", path, "nifti", replaceable=True, folder_made=True)
                for path in _map_paths(out_dir, subjects, list(model.rdms), fdr)]
        maps += [Output("out_dir", path, "png", replaceable=True, folder_made=True)
                 for path in (_plot_paths(out_dir, subjects, list(model.rdms)) if plot else [])]
        check_outputs([*outputs, *maps], inputs, overwrite=overwrite)
    target = resolve_device(device)
    if not betas:
        subjects, values, reference_image, in_mask = _precomputed(searchlight_rdms, centres, reference, model, compare)
        return write_searchlight_folder(out_dir, subjects, list(model.rdms), values, in_mask, reference_image,
                                        parameters, overwrite=overwrite, config=config, plot=plot,
                                        background=background)
    order = None
    if stimuli is not None:
        ids = [s.id for s in discover_stimuli(stimuli)]
        if model.stimuli is None:
            raise ConfigError(f"`stimuli` needs model RDMs that name their stimuli; {model_rdms} does not")
        order = reorder_index(model.stimuli, ids, wanted_source=str(model_rdms), given_source=str(stimuli))
    result = run_searchlight(list(betas), model.rdms, parameters, mask=mask, order=order, device=target,
                             progress=progress, shard=part)
    if part is None:
        return write_searchlight_folder(out_dir, result.subjects, result.layers, result.values, result.mask,
                                        result.reference, parameters, overwrite=overwrite, config=config, plot=plot,
                                        background=background)
    make_output_dir(out_dir, "out_dir")
    # how the merge writes and draws the maps
    maps = {"threshold": float(threshold), "alpha": float(alpha), "fdr": None if fdr is None else float(fdr),
            "plot": bool(plot), "background": background_path(background)}
    job = {  # everything that changes the maps; the shards of one run must agree on it
        "command": "searchlight", "betas_sha256": files_sha256((Path(p).name, p) for p in betas),
        "model_rdms_sha256": files_sha256([(Path(model_rdms).name, model_rdms)]), "layers": list(model.rdms),
        "radius": float(radius), "metric": metric, "compare": compare, "min_voxels": int(min_voxels),
        "precision": precision, "mask_sha256": None if mask is None else files_sha256([(Path(mask).name, mask)]),
        "order": None if order is None else np.asarray(order).tolist(), **maps,
    }
    _write_shard(shard_file, part, result, job, config or {}, maps)
    record_options(shard_file, config)
    start, stop = result.centre_range
    log.info("wrote shard %s (mask voxels %d to %d of %d) to %s; when every shard is done, merge them into %s",
             part, start, stop - 1, int(result.mask.sum()), shard_file, out_dir)
    return SearchlightFiles(out_dir, [], [], shard_file, result.centre_range, int(result.mask.sum()))


def write_searchlight_folder(
    out_dir: Path, subjects: Sequence[str], layers: Sequence[str], values: np.ndarray, mask: np.ndarray, reference,
    parameters: SearchlightParameters, *, overwrite: bool = False, config: dict | None = None, plot: bool = False,
    background=None,
) -> SearchlightFiles:
    """The maps, `searchlight.config.yaml` (when `config` is given) and, last,
    summary.csv of scores `values` (subjects, layers, mask voxels in C order) on the
    grid of `reference`; `parameters` gives the summary's threshold, alpha and FDR;
    `plot` draws the brain pictures (over the image `background`, else the mask)."""
    out_dir = make_output_dir(out_dir, "out_dir")
    rows, maps = _write_maps(out_dir, subjects, layers, values, mask, reference, parameters, overwrite,
                             plot=plot, background=background)
    record_options(out_dir, config, sidecar=out_dir / CONFIG_NAME)
    columns = SUMMARY_COLUMNS + (PLOT_COLUMNS if plot else [])
    write_csv(check_new_output(out_dir / "summary.csv", overwrite), rows, columns)  # last: complete
    log.info("wrote %d maps and summary.csv to %s", len(rows), out_dir)
    return SearchlightFiles(out_dir, rows, maps, None, (0, int(mask.sum())), int(mask.sum()))


@holds_outputs
def merge_searchlight(paths: Sequence[str | Path], out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Join the shard files of one sharded `searchlight_to_file` run into the maps,
    summary.csv and resolved options an unsharded run writes in `out_dir`; returns
    `out_dir`.

    The options recorded are shard 0's, without `shard` and with `out_dir`. The brain
    pictures are drawn when the run asked for them (`plot`, over its `background`).
    summary.csv is written last: a folder that has it is complete.

    Parameters
    ----------
    paths : sequence of path
        The shard files, every shard of the run once, in any order.
    out_dir : path
        The output folder, created (with its parents) when missing.
    overwrite : bool, default False
        Replace the maps and summary.csv of a complete folder.

    Returns
    -------
    Path
        `out_dir`.

    Raises
    ------
    ConfigError
        No `paths`.
    InputError
        Missing, duplicate or foreign shards (`net2brain_fovex.io.shards.check_shards`),
        or shards whose centres, masks or grids do not fit together.
    OutputError
        `out_dir` cannot be created (the message names `out`, as the merge calls it), or it
        holds a summary.csv and `overwrite` is False.
    """
    from ..figures.brain import recorded_background

    shards = check_shards(paths, SEARCHLIGHT_SHARD_KIND)
    total, count = int(shards[0][1]["items_total"]), int(shards[0][1]["shard_count"])
    parts = [_read_shard(path) for path, _ in shards]  # all but the scores
    first_path, first = shards[0][0], parts[0]
    if int(first["mask"].sum()) != total:
        raise InputError(f"{first_path}: its mask holds {int(first['mask'].sum())} voxels, not the {total} centres "
                         "of the run; rerun that shard")
    for number, ((path, _), part) in enumerate(zip(shards, parts, strict=True)):
        start, stop = Shard(number, count).bounds(total)
        expected = (len(first["subjects"]), len(first["layers"]), stop - start)
        if part["shape"] != expected:
            raise InputError(f"{path} holds scores of shape {part['shape']}; shard {number}/{count} of {total} "
                             f"centres needs {expected}; rerun that shard")
    check_same([(path, part) for (path, _), part in zip(shards, parts, strict=True)],
               ("subjects", "layers", "mask", "affine", "header", "extensions", "header_class", "maps"))
    maps = first["maps"]
    plot = bool(maps.get("plot", False))  # shards written before pictures were merged have no "plot"
    background = recorded_background(plot, maps.get("background"), first_path)
    values = np.empty((len(first["subjects"]), len(first["layers"]), total))
    for number, (path, _) in enumerate(shards):
        start, stop = Shard(number, count).bounds(total)
        values[:, :, start:stop] = _read_shard(path, scores=True)
    reference = image_from_header(first["header_class"], first["header"], first["extensions"], first["affine"])
    parameters = SearchlightParameters(threshold=maps["threshold"], alpha=maps["alpha"], fdr=maps["fdr"])
    out_dir = make_output_dir(out_dir, "out")
    config = json.loads(shards[0][1]["config"])  # shard 0's options, as one run in out_dir
    config.pop("shard", None)
    config["out_dir"] = str(out_dir)
    rows, _ = _write_maps(out_dir, first["subjects"], first["layers"], values, first["mask"].astype(bool), reference,
                          parameters, overwrite, plot=plot, background=background)
    # the options are those of the searchlight run, whatever command merges them
    write_resolved_config(out_dir / CONFIG_NAME, shards[0][1].get("command") or current_command() or "python", config)
    write_csv(check_new_output(out_dir / "summary.csv", overwrite), rows,
              SUMMARY_COLUMNS + (PLOT_COLUMNS if plot else []))  # last: complete
    log.info("wrote %d maps and summary.csv to %s", len(rows), out_dir)
    return out_dir


def _write_maps(out_dir: Path, subjects, layers, values, mask, reference, parameters: SearchlightParameters,
                overwrite: bool, *, plot: bool = False, background=None) -> tuple[list[dict], list[Path]]:
    """Subject maps, group mean / t / p (and FDR) maps with several subjects; summary rows.

    A folder is complete when its summary.csv exists (the callers write it last, after
    the maps and the resolved config): a complete folder is replaced only with
    `overwrite`, which removes its summary.csv before the first map; maps in a folder
    without summary.csv are left by an interrupted run and are replaced.
    """
    threshold, alpha, fdr = parameters.threshold, parameters.alpha, parameters.fdr
    coordinates = np.argwhere(mask)
    planned = _map_paths(out_dir, subjects, layers, fdr)
    summary = check_new_output(out_dir / "summary.csv", overwrite)  # refuse before writing anything
    leftovers = [path for path in planned if check_new_output(path, overwrite=True).exists()]
    if overwrite:
        summary.unlink(missing_ok=True)  # incomplete until the new summary.csv is written
    elif leftovers:
        log.info("%s has no summary.csv: replacing %d maps left by an interrupted run", out_dir, len(leftovers))
    rows, paths = [], []

    def summarise(path, subject, layer, statistic, vector, above, drawn=None):
        paths.append(path)
        rows.append({
            "map": path.name, "subject": subject, "layer": layer, "statistic": statistic,
            **_peak(vector, coordinates, reference.affine), **above,
        })
        if plot and drawn is not None:  # the picture beside the map, thresholded at `drawn`
            rows[-1].update(_draw(path, drawn, f"{subject} {layer} {statistic}", mask, reference, background))

    for s, subject in enumerate(subjects):
        for number, layer in enumerate(layers):
            path = save_map(values[s, number], mask, out_dir / f"{subject}_{layer}.nii.gz", reference=reference)
            summarise(path, subject, layer, "score", values[s, number],
                      {"threshold": f"> {threshold:g}", "n_above": int(np.sum(values[s, number] > threshold))},
                      threshold if len(subjects) == 1 else None)
    if len(subjects) > 1:
        for number, layer in enumerate(layers):
            mean, _, t, p = one_sample_t(values[:, number])
            significant = None if fdr is None else fdr_mask(p, fdr) & (t > 0)
            summarise(save_map(mean, mask, out_dir / f"group_{layer}_mean.nii.gz", reference=reference), "group", layer, "mean",
                      mean, {"threshold": f"> {threshold:g}", "n_above": int(np.sum(mean > threshold))}, threshold)
            summarise(save_map(t, mask, out_dir / f"group_{layer}_t.nii.gz", reference=reference), "group", layer, "t",
                      t, {"threshold": f"p < {alpha:g}", "n_above": int(np.sum((p < alpha) & (t > 0)))},
                      _t_level(t, significant, alpha, len(subjects)) if plot else None)
            save_map(p, mask, out_dir / f"group_{layer}_p.nii.gz", reference=reference)
            if fdr is not None:
                selected = np.zeros(mask.shape, dtype=bool)
                selected[mask] = significant
                save_binary(selected, out_dir / f"group_{layer}_fdr{fdr:g}.nii.gz", reference=reference)
                rows[-1]["n_fdr"] = int(selected.sum())
    return rows, paths


def _map_paths(out_dir: Path, subjects: Sequence[str], layers: Sequence[str], fdr: float | None) -> list[Path]:
    """The maps a folder of these subjects and layers holds (the group maps with several subjects)."""
    paths = [out_dir / f"{s}_{layer}.nii.gz" for s in subjects for layer in layers]
    if len(subjects) > 1:
        kinds = ("mean", "t", "p") + ((f"fdr{fdr:g}",) if fdr is not None else ())
        paths += [out_dir / f"group_{layer}_{kind}.nii.gz" for layer in layers for kind in kinds]
    return paths


def _plot_paths(out_dir: Path, subjects: Sequence[str], layers: Sequence[str]) -> list[Path]:
    """The brain pictures of `plot`: the group's mean and t maps with several subjects, else the subject's maps."""
    if len(subjects) > 1:
        return [out_dir / f"group_{layer}_{kind}.png" for layer in layers for kind in ("mean", "t")]
    return [out_dir / f"{s}_{layer}.png" for s in subjects for layer in layers]


def _t_level(t: np.ndarray, significant: np.ndarray | None, alpha: float, subjects: int) -> float:
    """The t a t map is drawn above: the smallest t of the FDR-significant voxels (with `fdr`:
    exactly those are drawn; infinite when none is), else the one-sided t of two-sided p = alpha."""
    from scipy.stats import t as student

    if significant is not None:
        return float(np.min(t[significant])) if significant.any() else float("inf")
    return float(student.ppf(1 - alpha / 2, subjects - 1))


def _draw(path: Path, level: float, title: str, mask: np.ndarray, reference, background) -> dict:
    """The brain picture of the map at `path` beside it (`brain_figure`, over `background` or the mask)."""
    import nibabel as nib

    from ..figures.brain import brain_figure

    picture = path.with_name(path.name[: -len(".nii.gz")] + ".png")
    # the map as written, so that the picture shows the file; >= level: the FDR level is a value of the map
    below = np.nextafter(level, -np.inf) if np.isfinite(level) else level
    brain_figure(nib.load(str(path)), picture, threshold=below, title=title, background=background,
                 fallback=nib.Nifti1Image(mask.astype(np.float32), reference.affine))
    return {"plot": picture.name, "plot_threshold": level}


def _peak(values: np.ndarray, coordinates: np.ndarray, affine: np.ndarray) -> dict:
    """The largest finite value, its voxel (i, j, k) and its position in mm (`find_peak`)."""
    from ..figures.brain import find_peak

    peak = find_peak(values, coordinates, affine)
    if peak is None:
        return {"peak_value": float("nan"), "peak_i": "", "peak_j": "", "peak_k": "", "peak_x": "", "peak_y": "", "peak_z": ""}
    (i, j, k), (x, y, z) = peak.voxel, peak.mm
    return {"peak_value": peak.value, "peak_i": i, "peak_j": j, "peak_k": k, "peak_x": x, "peak_y": y, "peak_z": z}


# ------------------------------------------------------------------ shard files


def _write_shard(path: Path, shard: Shard, result, job: dict, options: dict, maps: dict) -> Path:
    """One shard's scores with all that the merge needs to write the maps (atomically)."""
    import h5py

    header_class, header, extensions = header_bytes(result.reference)
    strings = h5py.string_dtype()
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as file:
        file.create_dataset("scores", data=result.values.astype(np.float64))  # (subjects, layers, centres of the shard)
        file.create_dataset("mask", data=result.mask.astype(np.uint8), compression="gzip")
        file.create_dataset("affine", data=np.asarray(result.reference.affine, dtype=np.float64))
        file.create_dataset("header", data=np.frombuffer(header, dtype=np.uint8))
        file.create_dataset("header_extensions", data=np.frombuffer(extensions, dtype=np.uint8))
        file.create_dataset("subjects", data=result.subjects, dtype=strings)
        file.create_dataset("layers", data=result.layers, dtype=strings)
        start, stop = result.centre_range
        file.attrs.update({
            "kind": SEARCHLIGHT_SHARD_KIND, **shard.attrs(int(result.mask.sum())), "job_sha256": job_signature(job),
            "centre_start": start, "centre_stop": stop, "header_class": header_class,
            "maps": json.dumps(maps), "config": json.dumps(options, default=str),
            "command": current_command() or "python",
        })
    return path


def _read_shard(path: Path, scores: bool = False):
    """What the merge needs of a searchlight shard file (the scores' shape, not the
    scores), or its scores."""
    def read(file):
        if scores:
            return file["scores"][()]
        return {
            "shape": file["scores"].shape, "mask": file["mask"][()], "affine": file["affine"][()],
            "header": file["header"][()].tobytes(), "extensions": file["header_extensions"][()].tobytes(),
            "subjects": list(file["subjects"].asstr()[()]), "layers": list(file["layers"].asstr()[()]),
            "header_class": str(file.attrs["header_class"]), "maps": json.loads(file.attrs["maps"]),
        }

    return read_shard(path, read, "searchlight shard")


# ------------------------------------------------------------------ precomputed searchlight RDMs


def _precomputed(path: Path, centres: Path | None, reference: Path, model, compare: str):
    """Score Net2Brain's precomputed searchlight RDMs: (subjects, scores, reference, mask)."""
    from .nifti import load_nifti
    from .searchlight import precomputed_scores

    rdms, coordinates = _read_precomputed(Path(path), centres)
    values = precomputed_scores(rdms, model.rdms, compare)  # (subjects, layers, searchlights)
    image = load_nifti(reference, "reference volume")
    shape = image.shape[:3]
    if coordinates.shape != (rdms.shape[0], 3) or (coordinates < 0).any() or (coordinates >= np.array(shape)).any():
        raise InputError(f"the centres must be {rdms.shape[0]} voxel coordinates inside the reference grid {shape}")
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(coordinates.T)] = True
    if mask.sum() != len(coordinates):
        raise InputError("two precomputed searchlights share a centre voxel")
    order = np.lexsort(coordinates.T[::-1])  # the maps list mask voxels in C order
    return [f"sub-{i + 1:02d}" for i in range(rdms.shape[1])], values[:, :, order], image, mask


def _read_precomputed(path: Path, centres: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """The RDM array (the first array not named centres / centers / coordinates) and the centres."""
    import zipfile

    for given in (path, centres):
        if given is not None and not Path(given).is_file():
            state = "is a folder" if Path(given).is_dir() else "does not exist"
            raise InputError(f"{given} {state}; give the .npz (or .npy) file of the precomputed searchlight RDMs")
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as data:
                keys = ("centres", "centers", "coordinates")
                arrays = [k for k in data.files if k not in keys]
                if not arrays:
                    raise InputError(f"{path} holds no searchlight RDM array")
                rdms = data[arrays[0]]
                inside = next((data[k] for k in keys if k in data.files), None)
        else:
            rdms, inside = np.load(path, allow_pickle=False), None
        coordinates = inside if centres is None else np.load(centres, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        files = str(path) if centres is None else f"{path}, {centres}"
        hint = "; save plain numeric arrays (pickled objects are refused)" if "allow_pickle" in str(error) else ""
        raise InputError(f"cannot read the precomputed searchlight RDMs ({files}): {error}{hint}") from None
    if coordinates is None:
        raise InputError(f"{path} has no 'centres' array; give `centres=FILE.npy` (searchlights x 3 voxel indices)")
    rdms = np.asarray(rdms)
    if rdms.dtype.kind not in "fiu" or rdms.ndim != 4 or rdms.shape[-1] != rdms.shape[-2]:
        raise InputError(f"{path}: the searchlight RDMs are {rdms.dtype} of shape {rdms.shape}; expected numbers shaped "
                         "(searchlights, subjects, n, n)")
    return rdms.astype(float), np.asarray(coordinates).astype(int)
