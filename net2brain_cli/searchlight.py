"""`net2brain searchlight`: searchlight RSA maps from 4D volumes (or precomputed RDMs)."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import typer

from cli_common.config import require, resolved_options, with_config
from cli_common.options import ConfigFile, Device, Overwrite, ShardSpec
from cli_common.output import Json, print_json
from cli_common.progress import progress_bar

log = logging.getLogger("net2brain")

SHARD_KIND = "searchlight-shard"
SHARD_NAME = "searchlight.h5"  # shards are out_dir / searchlight.shard-I-of-N.h5
SUMMARY_COLUMNS = ["map", "subject", "layer", "statistic", "peak_value", "peak_i", "peak_j", "peak_k",
                   "peak_x", "peak_y", "peak_z", "threshold", "n_above", "n_fdr"]


@with_config
def searchlight_command(
    ctx: typer.Context,
    betas: Annotated[list[Path] | None, typer.Option(
        help="A subject's 4D NIfTI, one volume per stimulus (repeat per subject).")] = None,
    mask: Annotated[Path | None, typer.Option(
        help="3D brain mask; default: voxels with finite, non-constant responses in every subject.")] = None,
    model_rdms: Annotated[Path | None, typer.Option(help="Model RDMs (`net2brain rdm` output or .mat).")] = None,
    layers: Annotated[str, typer.Option(help="all, or NAME,NAME of the model RDMs.")] = "all",
    radius: Annotated[float | None, typer.Option(help="Sphere radius in mm (voxels at distance <= radius).")] = None,
    out_dir: Annotated[Path | None, typer.Option(help="Folder for the maps and summary.csv (created).")] = None,
    stimuli: Annotated[Path | None, typer.Option(
        help="The stimulus order of the volumes (list file or folder); reordered to the model RDMs' order.")] = None,
    metric: Annotated[Literal["correlation", "euclidean", "sqeuclidean", "cosine"], typer.Option(
        help="Dissimilarity of the sphere patterns.")] = "correlation",
    compare: Annotated[Literal["spearman", "pearson", "kendall"], typer.Option(
        help="Comparison with the model RDMs (kendall: tau-a, slow).")] = "spearman",
    min_voxels: Annotated[int, typer.Option(help="Centres with fewer voxels in their sphere get NaN.")] = 10,
    batch_size: Annotated[int, typer.Option(help="Centres per batch (memory ~ batch x sphere x stimuli).")] = 512,
    precision: Annotated[Literal["single", "double"], typer.Option(help="float32 or float64 arithmetic.")] = "single",
    device: Device = "cpu",
    threshold: Annotated[float, typer.Option(help="Score maps: count voxels above this value in summary.csv.")] = 0.1,
    alpha: Annotated[float, typer.Option(help="t maps: count voxels with uncorrected p below this.")] = 0.001,
    fdr: Annotated[float | None, typer.Option(help="Also write a mask of the voxels significant at this FDR (q).")] = None,
    searchlight_rdms: Annotated[Path | None, typer.Option(
        help="Net2Brain's precomputed searchlight RDMs (.npz/.npy: searchlights x subjects x n x n).")] = None,
    centres: Annotated[Path | None, typer.Option(
        help="Voxel coordinates (searchlights x 3) of the precomputed RDMs (.npy), unless in the .npz as 'centres'.")] = None,
    reference: Annotated[Path | None, typer.Option(
        help="A NIfTI on the grid of the precomputed centres, for writing their maps.")] = None,
    shard: ShardSpec = None,  # a block of the mask's centres -> OUT_DIR/searchlight.shard-I-of-N.h5
    json: Json = False,
    overwrite: Overwrite = False,
    config: ConfigFile = None,
) -> None:
    """Searchlight RSA: a map per subject and layer, group mean / t / p maps, and a summary."""
    from shared.config import config_path_for, write_resolved_config
    from shared.device import resolve_device
    from shared.errors import ConfigError
    from shared.rdm_io import read_model_rdms, reorder_index
    from shared.searchlight import run_searchlight
    from shared.shards import parse_shard
    from shared.stimuli import discover_stimuli
    from shared.provenance import files_sha256
    from shared.storage import check_output_dir, make_output_dir, write_csv

    options = resolved_options(ctx)
    require(options, "model_rdms", "out_dir")
    part = parse_shard(shard)
    if bool(betas) == bool(searchlight_rdms):
        raise ConfigError("give either --betas (4D volumes) or --searchlight-rdms (precomputed), not both or neither")
    if part is not None and searchlight_rdms:
        raise ConfigError("--shard divides the centres of --betas volumes; a --searchlight-rdms run is not sharded, "
                          "run it without --shard")
    if betas:
        require(options, "radius")
        if centres is not None or reference is not None:
            raise ConfigError("--centres and --reference describe --searchlight-rdms; leave them out with --betas")
    elif reference is None:
        raise ConfigError("--searchlight-rdms needs --reference (a NIfTI on the grid of the centres) to write maps")
    if fdr is not None and not 0 < fdr < 1:
        raise ConfigError(f"--fdr must be between 0 and 1, got {fdr}")
    check_output_dir(out_dir, "--out-dir")  # created only when there is something to write
    shard_file = None if part is None else part.path(out_dir / SHARD_NAME)
    if out_dir.is_dir():  # a complete folder (it has summary.csv), or this shard's file, is refused before any work
        _new(out_dir / "summary.csv" if part is None else shard_file, overwrite)
    model = read_model_rdms(model_rdms)
    model.rdms = _chosen_layers(model, layers, model_rdms)
    target = resolve_device(device)
    with progress_bar("searchlight", unit="centres") as update:
        if betas:
            order = None
            if stimuli is not None:
                ids = [s.id for s in discover_stimuli(stimuli)]
                if model.stimuli is None:
                    raise ConfigError(f"--stimuli needs model RDMs that name their stimuli; {model_rdms} does not")
                order = reorder_index(model.stimuli, ids, str(model_rdms), str(stimuli))
            result = run_searchlight(
                list(betas), model.rdms, radius, mask, order, metric, compare, min_voxels, batch_size, target,
                precision, update, shard=part,
            )
            subjects, values, reference_image, in_mask = result.subjects, result.values, result.reference, result.mask
        else:
            subjects, values, reference_image, in_mask = _precomputed(searchlight_rdms, centres, reference, model, compare)
    make_output_dir(out_dir, "--out-dir")
    if part is not None:
        _new(shard_file, overwrite)
        maps = {"threshold": float(threshold), "alpha": float(alpha), "fdr": None if fdr is None else float(fdr)}
        job = {  # everything that changes the maps; the shards of one run must agree on it
            "command": "net2brain searchlight", "betas_sha256": files_sha256((Path(p).name, p) for p in betas),
            "model_rdms_sha256": files_sha256([(model_rdms.name, model_rdms)]), "layers": list(model.rdms),
            "radius": float(radius), "metric": metric, "compare": compare, "min_voxels": int(min_voxels),
            "precision": precision, "mask_sha256": None if mask is None else files_sha256([(mask.name, mask)]),
            "order": None if order is None else np.asarray(order).tolist(), **maps,
        }
        _write_shard(shard_file, part, result, job, options, maps)
        write_resolved_config(config_path_for(shard_file), "net2brain searchlight", options)
        start, stop = result.centre_range
        log.info("wrote shard %s (mask voxels %d to %d of %d) to %s; when every shard is done, join them with "
                 "`net2brain merge --out %s`", part, start, stop - 1, int(result.mask.sum()), shard_file, out_dir)
        return
    rows = write_maps(out_dir, subjects, list(model.rdms), values, in_mask, reference_image, threshold, alpha, fdr, overwrite)
    write_resolved_config(out_dir / "searchlight.config.yaml", "net2brain searchlight", options)
    write_csv(_new(out_dir / "summary.csv", overwrite), rows, SUMMARY_COLUMNS)  # last: the folder is complete
    if json:
        print_json({"summary": rows, "files": {"summary": out_dir / "summary.csv", "maps": [out_dir / r["map"] for r in rows]}})
    log.info("wrote %d maps and summary.csv to %s", len(rows), out_dir)


def merge_searchlight(paths: list[Path], out_dir: Path, overwrite: bool = False) -> Path:
    """Join the shard files of one `searchlight --shard` run into the maps, summary.csv and
    resolved config an unsharded run writes in `out_dir`; returns `out_dir`.

    Raises
    ------
    InputError
        Missing, duplicate or foreign shards (`shared.shards.check_shards`), or shards whose
        centres, masks or grids do not fit together.
    """
    from shared.config import write_resolved_config
    from shared.errors import InputError
    from shared.shards import Shard, check_shards
    from shared.storage import make_output_dir, write_csv

    shards = check_shards(paths, SHARD_KIND)
    total, count = int(shards[0][1]["items_total"]), int(shards[0][1]["shard_count"])
    parts = [_read_shard(path) for path, _ in shards]  # all but the scores
    first_path, first = shards[0][0], parts[0]
    if int(first["mask"].sum()) != total:
        raise InputError(f"{first_path}: its mask holds {int(first['mask'].sum())} voxels, not the {total} centres "
                         "of the run; rerun that shard")
    for number, ((path, _), part) in enumerate(zip(shards, parts)):
        start, stop = Shard(number, count).bounds(total)
        expected = (len(first["subjects"]), len(first["layers"]), stop - start)
        if part["shape"] != expected:
            raise InputError(f"{path} holds scores of shape {part['shape']}; shard {number}/{count} of {total} "
                             f"centres needs {expected}; rerun that shard")
        for key in ("subjects", "layers", "mask", "affine", "header", "extensions", "header_class", "maps"):
            if not _same(part[key], first[key]):
                raise InputError(f"{path} and {first_path} differ in their {key}; merge only the shards of one run")
    if sum(part["shape"][2] for part in parts) != total:
        raise InputError(f"the shards hold {sum(part['shape'][2] for part in parts)} centres, the run {total}")
    values = np.empty((len(first["subjects"]), len(first["layers"]), total))
    for number, (path, _) in enumerate(shards):
        start, stop = Shard(number, count).bounds(total)
        values[:, :, start:stop] = _read_shard(path, scores=True)
    mask, reference, maps = first["mask"].astype(bool), _reference_image(first), first["maps"]
    out_dir = make_output_dir(out_dir, "--out")
    rows = write_maps(out_dir, first["subjects"], first["layers"], values, mask, reference, maps["threshold"],
                      maps["alpha"], maps["fdr"], overwrite)
    config = json.loads(shards[0][1]["config"])  # shard 0's options, as one run in out_dir
    config.pop("shard", None)
    config["out_dir"] = str(out_dir)
    write_resolved_config(out_dir / "searchlight.config.yaml", "net2brain searchlight", config)
    write_csv(_new(out_dir / "summary.csv", overwrite), rows, SUMMARY_COLUMNS)  # last: the folder is complete
    log.info("wrote %d maps and summary.csv to %s", len(rows), out_dir)
    return out_dir


def _nifti_classes() -> dict:
    """NIfTI header class name -> (header class, image class)."""
    import nibabel as nib

    return {"Nifti1Header": (nib.nifti1.Nifti1Header, nib.Nifti1Image),
            "Nifti1PairHeader": (nib.nifti1.Nifti1PairHeader, nib.Nifti1Pair),
            "Nifti2Header": (nib.nifti2.Nifti2Header, nib.Nifti2Image),
            "Nifti2PairHeader": (nib.nifti2.Nifti2PairHeader, nib.Nifti2Pair)}


def _write_shard(path: Path, shard, result, job: dict, options: dict, maps: dict) -> Path:
    """One shard's scores with all that the merge needs to write the maps (atomically)."""
    import io

    import h5py
    import nibabel as nib

    from shared.shards import job_signature
    from shared.storage import atomic_output

    header = result.reference.header
    if type(header).__name__ not in _nifti_classes():  # e.g. Analyze: NIfTI-1, as the maps are written
        header = nib.Nifti1Header.from_header(header)
    extensions = io.BytesIO()
    if len(header.extensions):
        header.extensions.write_to(extensions, byteswap=False)
    strings = h5py.string_dtype()
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as file:
        file.create_dataset("scores", data=result.values.astype(np.float64))  # (subjects, layers, centres of the shard)
        file.create_dataset("mask", data=result.mask.astype(np.uint8), compression="gzip")
        file.create_dataset("affine", data=np.asarray(result.reference.affine, dtype=np.float64))
        file.create_dataset("header", data=np.frombuffer(header.binaryblock, dtype=np.uint8))
        file.create_dataset("header_extensions", data=np.frombuffer(extensions.getvalue(), dtype=np.uint8))
        file.create_dataset("subjects", data=result.subjects, dtype=strings)
        file.create_dataset("layers", data=result.layers, dtype=strings)
        start, stop = result.centre_range
        file.attrs.update({
            "kind": SHARD_KIND, **shard.attrs(int(result.mask.sum())), "job_sha256": job_signature(job),
            "centre_start": start, "centre_stop": stop, "header_class": type(header).__name__,
            "maps": json.dumps(maps), "config": json.dumps(options, default=str),
        })
    return path


def _read_shard(path: Path, scores: bool = False):
    """What the merge needs of a searchlight shard file (the scores' shape, not the
    scores), or its scores."""
    import h5py

    from shared.errors import InputError

    try:
        with h5py.File(path, "r") as file:
            if scores:
                return file["scores"][()]
            return {
                "shape": file["scores"].shape, "mask": file["mask"][()], "affine": file["affine"][()],
                "header": file["header"][()].tobytes(), "extensions": file["header_extensions"][()].tobytes(),
                "subjects": list(file["subjects"].asstr()[()]), "layers": list(file["layers"].asstr()[()]),
                "header_class": str(file.attrs["header_class"]), "maps": json.loads(file.attrs["maps"]),
            }
    except (KeyError, OSError, ValueError) as error:
        raise InputError(f"{path} is not a complete searchlight shard ({error}); rerun that shard") from None


def _reference_image(part: dict):
    """The reference image of the maps, rebuilt from a shard's affine and header."""
    import io

    import nibabel as nib

    from shared.errors import InputError

    classes = _nifti_classes()
    if part["header_class"] not in classes:
        raise InputError(f"a shard's reference header is a {part['header_class']}, not a NIfTI header; rerun the shards")
    header_class, image_class = classes[part["header_class"]]
    header = header_class(part["header"], check=False)  # its bytes as they are
    if part["extensions"]:
        raw = part["extensions"]
        header.extensions = header_class.exts_klass.from_fileobj(io.BytesIO(raw), len(raw), False)
    data = np.broadcast_to(np.zeros((), dtype=header.get_data_dtype()), header.get_data_shape())  # no memory
    return image_class(data, part["affine"], header=header)


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    return a == b


def _chosen_layers(model, layers: str, source: Path) -> dict:
    from shared.errors import unknown_name

    if layers.strip() == "all":
        return model.rdms
    names = [name.strip() for name in layers.split(",") if name.strip()]
    for name in names:
        if name not in model.rdms:
            raise unknown_name("layer", name, model.rdms, hint=f"{source} holds {len(model.rdms)} RDMs")
    return {name: model.rdms[name] for name in names}


def _new(path: Path, overwrite: bool) -> Path:
    from shared.storage import check_new_output

    return check_new_output(path, overwrite)


def write_maps(out_dir, subjects, layers, values, mask, reference, threshold, alpha, fdr, overwrite) -> list[dict]:
    """Subject maps, group mean / t / p (and FDR) maps with several subjects; summary rows.

    A folder is complete when its summary.csv exists (the callers write it last, after
    the maps and the resolved config): a complete folder is replaced only with
    `overwrite`, which removes its summary.csv before the first map; maps in a folder
    without summary.csv are left by an interrupted run and are replaced.
    """
    from shared.searchlight import fdr_mask, group_statistics, peak
    from shared.volumes import save_binary, save_map

    coordinates = np.argwhere(mask)
    planned = [out_dir / f"{s}_{layer}.nii.gz" for s in subjects for layer in layers]
    if len(subjects) > 1:
        kinds = ("mean", "t", "p") + ((f"fdr{fdr:g}",) if fdr is not None else ())
        planned += [out_dir / f"group_{layer}_{kind}.nii.gz" for layer in layers for kind in kinds]
    summary = _new(out_dir / "summary.csv", overwrite)  # refuse before writing anything
    leftovers = [path for path in planned if _new(path, overwrite=True).exists()]
    if overwrite:
        summary.unlink(missing_ok=True)  # incomplete until the new summary.csv is written
    elif leftovers:
        log.info("%s has no summary.csv: replacing %d maps left by an interrupted run", out_dir, len(leftovers))
    rows = []

    def summarise(path, subject, layer, statistic, vector, above):
        rows.append({
            "map": path.name, "subject": subject, "layer": layer, "statistic": statistic,
            **peak(vector, coordinates, reference.affine), **above,
        })

    for s, subject in enumerate(subjects):
        for l, layer in enumerate(layers):
            path = save_map(values[s, l], mask, reference, out_dir / f"{subject}_{layer}.nii.gz")
            summarise(path, subject, layer, "score", values[s, l],
                      {"threshold": f"> {threshold:g}", "n_above": int(np.sum(values[s, l] > threshold))})
    if len(subjects) > 1:
        for l, layer in enumerate(layers):
            mean, t, p = group_statistics(values[:, l])
            summarise(save_map(mean, mask, reference, out_dir / f"group_{layer}_mean.nii.gz"), "group", layer, "mean",
                      mean, {"threshold": f"> {threshold:g}", "n_above": int(np.sum(mean > threshold))})
            summarise(save_map(t, mask, reference, out_dir / f"group_{layer}_t.nii.gz"), "group", layer, "t",
                      t, {"threshold": f"p < {alpha:g}", "n_above": int(np.sum((p < alpha) & (t > 0)))})
            save_map(p, mask, reference, out_dir / f"group_{layer}_p.nii.gz")
            if fdr is not None:
                selected = np.zeros(mask.shape, dtype=bool)
                selected[mask] = fdr_mask(p, fdr) & (t > 0)
                save_binary(selected, reference, out_dir / f"group_{layer}_fdr{fdr:g}.nii.gz")
                rows[-1]["n_fdr"] = int(selected.sum())
    return rows


def _precomputed(path: Path, centres: Path | None, reference: Path | None, model, method: str):
    """Score Net2Brain's precomputed searchlight RDMs; maps need --reference."""
    from shared.brain_data import load_nifti
    from shared.errors import ConfigError, InputError
    from shared.searchlight import precomputed_scores

    rdms, coordinates = _read_precomputed(path, centres)
    values = precomputed_scores(rdms, model.rdms, method)  # (subjects, layers, searchlights)
    if reference is None:
        raise ConfigError("--searchlight-rdms needs --reference (a NIfTI on the grid of the centres) to write maps")
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

    from shared.errors import InputError

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
        raise InputError(f"{path} has no 'centres' array; give --centres FILE.npy (searchlights x 3 voxel indices)")
    rdms = np.asarray(rdms)
    if rdms.dtype.kind not in "fiu" or rdms.ndim != 4 or rdms.shape[-1] != rdms.shape[-2]:
        raise InputError(f"{path}: the searchlight RDMs are {rdms.dtype} of shape {rdms.shape}; expected numbers shaped "
                         "(searchlights, subjects, n, n)")
    return rdms.astype(float), np.asarray(coordinates).astype(int)
