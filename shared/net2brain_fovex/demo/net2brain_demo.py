"""`net2brain demo`: the pipeline on generated data with a known answer, no downloads.

Stimuli with known factors -> activations of a random ResNet-18 -> model RDMs ->
simulated brain RDMs of two ROIs, each generated from one layer's RDM plus noise -> RSA,
whose best layer per ROI must be the generating one; and simulated 4D volumes with one
sphere following one layer and another sphere another layer -> searchlight maps, which
must peak in those spheres; and simulated voxels of two regions, each read out from one
layer's features plus noise -> voxel-wise encoding models, whose best layer per region
must be the generating one, and the variance partitioning of the two layers, whose
unique R^2 per region must be the generating layer's.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..brain.parameters import RSAParameters, SearchlightParameters
from ..brain.rdm_files import rdms_from_activations, write_rdms
from ..brain.rsa import RESULT_COLUMNS, rsa_roi, tidy_rows
from ..extraction.activations import extract_to_file
from ..extraction.stimuli import discover_stimuli
from ..io.atomic import check_new_output
from ..io.config import record_options
from ..io.locks import holds_outputs
from ..io.tables import write_csv
from ..models.loading import load_model
from .synthetic import shape_stimuli, simulate_brain_rdms, write_shape_stimuli

__all__ = ["run_net2brain_demo"]

DEMO_MODEL = "resnet18"
GENERATORS = {"early": "layer1", "late": "fc"}  # simulated ROI -> the layer that generates it
SUBJECTS = 8
SPHERES = {"layer1": (4, 8, 6), "fc": (11, 8, 6)}  # planted sphere centres (voxels) in a 16 x 16 x 12 volume
VOLUME_SUBJECTS, RADIUS = 4, 6.0
ENCODED = {"early": "layer1", "late": "fc"}  # simulated region of voxels -> the layer its responses are read out from
ENCODED_SUBJECTS = 3


@holds_outputs
def run_net2brain_demo(
    out: str | Path, *, device: str = "auto", overwrite: bool = False, config: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> str:
    """Write the demo files into `out` and return a report of what they hold.

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
        The extraction's progress.
    """
    out = Path(out)
    names = ("activations.h5", "rdms.h5", "brain_rdms.h5", "rsa.csv", "rsa.png", "searchlight/summary.csv",
             "encoding/summary.csv", "partition/summary.csv")
    _check_before_writing(out, names, device, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    (out / "searchlight").mkdir(exist_ok=True)
    (out / "volumes").mkdir(exist_ok=True)
    (out / "encoding_volumes").mkdir(exist_ok=True)
    (out / "encoding").mkdir(exist_ok=True)
    (out / "partition").mkdir(exist_ok=True)
    paths = {name: check_new_output(out / name, overwrite) for name in names}
    folder = write_shape_stimuli(shape_stimuli(seed=0), out / "stimuli")
    stimuli = discover_stimuli(folder)
    loaded = load_model(DEMO_MODEL, source="torchvision", weights="random", seed=0, device=device)
    plan = extract_to_file(loaded, stimuli, paths["activations.h5"], layers="top", batch_size=8, overwrite=overwrite,
                           progress=progress).plan
    model_rdms, model = rdms_from_activations(paths["activations.h5"])
    write_rdms(paths["rdms.h5"], model_rdms.stimuli, model_rdms.rdms, metric="correlation", attrs=model)
    brain = simulate_brain_rdms(model_rdms.rdms, GENERATORS, subjects=SUBJECTS, noise=1.0, seed=0)
    write_rdms(paths["brain_rdms.h5"], model_rdms.stimuli, brain, metric="simulated")
    settings = RSAParameters()
    results = [rsa_roi(model_rdms.rdms, stack, roi=roi, parameters=settings) for roi, stack in brain.items()]
    rows = tidy_rows(results, DEMO_MODEL, settings)
    write_csv(paths["rsa.csv"], rows, [c for c in RESULT_COLUMNS if c not in ("time", "ci_low", "ci_high")])
    from ..figures.rsa import rsa_figure

    rsa_figure(results, paths["rsa.png"], settings.measure)
    spheres = _searchlight(out, model_rdms.rdms, overwrite)
    encoded = _encoding(out, paths["activations.h5"], overwrite)
    record_options(out, config, sidecar=out / "demo.config.yaml")
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
    lines.append(f"searchlight ({out / 'volumes'}: {VOLUME_SUBJECTS} simulated 4D volumes, 2 mm voxels; "
                 f"maps in {out / 'searchlight'}, radius {RADIUS:g} mm): peak of each layer's group mean map")
    lines += spheres
    lines.append(f"encoding ({out / 'encoding_volumes'}: {ENCODED_SUBJECTS} simulated 4D volumes, two regions read out "
                 f"from one layer each; ridge models per voxel, 5 folds, in {out / 'encoding'}): best layer per region")
    lines += encoded
    lines.append("read the files with: h5py.File(path)['layers' or 'rdms'][name][()]  (rows follow /stimuli)")
    return "\n".join(lines)


def _check_before_writing(out: Path, names: tuple[str, ...], device: str, overwrite: bool) -> None:
    """Refuse a bad `out` or `device`, or earlier outputs without `overwrite`, before
    anything is written."""
    from ..device import resolve_device
    from ..errors import OutputError
    from ..io.atomic import check_output_dir

    resolve_device(device)
    check_output_dir(out, "out")
    for name in names:
        path = out / name
        if path.is_dir():
            raise OutputError(f"output {path} is a folder; remove it or give another `out`")
        if path.exists() and not overwrite:
            raise OutputError(f"output {path} exists already; add `overwrite=True` to replace it")


def _searchlight(out: Path, model_rdms: dict, overwrite: bool) -> list[str]:
    """Simulated volumes with planted spheres -> searchlight maps; one report line per sphere."""
    import nibabel as nib
    import numpy as np

    from ..brain.searchlight import run_searchlight
    from ..brain.searchlight_files import write_searchlight_folder
    from ..io.atomic import atomic_output
    from .synthetic import simulate_volumes

    volumes, affine = simulate_volumes(model_rdms, SPHERES, subjects=VOLUME_SUBJECTS, radius=RADIUS, seed=0)
    paths = []
    for number, volume in enumerate(volumes, start=1):
        path = out / "volumes" / f"sub-{number:02d}.nii.gz"
        with atomic_output(path) as tmp:
            nib.save(nib.Nifti1Image(volume, affine), str(tmp))
        paths.append(path)
    chosen = {layer: model_rdms[layer] for layer in SPHERES}
    parameters = SearchlightParameters(RADIUS)
    result = run_searchlight(paths, chosen, parameters)
    write_searchlight_folder(out / "searchlight", result.subjects, result.layers, result.values, result.mask,
                             result.reference, parameters, overwrite=overwrite)
    lines = []
    for number, (layer, centre) in enumerate(SPHERES.items()):
        mean = result.values[:, number].mean(axis=0)
        voxel = tuple(int(v) for v in np.argwhere(result.mask)[int(np.nanargmax(mean))])
        verdict = "in the planted sphere" if np.linalg.norm((np.array(voxel) - centre) * 2.0) <= RADIUS else "OUTSIDE the planted sphere"
        lines.append(f"  {layer:<8} peak r = {np.nanmax(mean):.3f} at voxel {voxel}, planted at {centre}: {verdict}")
    return lines


def _encoding(out: Path, activations: Path, overwrite: bool) -> list[str]:
    """Simulated voxels of two regions, each read out from one layer -> voxel-wise ridge
    models (`encode_to_file`); one report line per region."""
    import nibabel as nib
    import numpy as np

    from ..brain.encoding_files import encode_to_file
    from ..extraction.activations import read_activations
    from ..io.atomic import atomic_output
    from .synthetic import simulate_voxel_responses

    _, layers = read_activations(activations, list(dict.fromkeys(ENCODED.values())))
    volumes, masks = simulate_voxel_responses(layers, ENCODED, subjects=ENCODED_SUBJECTS, noise=0.5, seed=0)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    folder = out / "encoding_volumes"
    paths = []
    for number, volume in enumerate(volumes, start=1):
        path = folder / f"sub-{number:02d}.nii.gz"
        with atomic_output(path) as tmp:
            nib.save(nib.Nifti1Image(volume, affine), str(tmp))
        paths.append(path)
    rois = []
    for region, inside in masks.items():
        path = folder / f"{region}.nii.gz"
        with atomic_output(path) as tmp:
            nib.save(nib.Nifti1Image(inside.astype(np.uint8), affine), str(tmp))
        rois.append(path)
    import warnings

    spaces = list(dict.fromkeys(ENCODED.values()))
    with warnings.catch_warnings():  # 24 stimuli: many voxels choose an alpha at the grid's edge, as expected here
        warnings.simplefilter("ignore", RuntimeWarning)
        result = encode_to_file(activations, out / "encoding", layers=spaces, betas=paths, rois=rois, device="cpu",
                                overwrite=overwrite)
        partition = encode_to_file(activations, out / "partition", partition=spaces, betas=paths, rois=rois,
                                   device="cpu", overwrite=overwrite)
    lines = []
    for region, layer in ENCODED.items():
        best = result.best[region]
        verdict = "recovered" if best["layer"] == layer else "NOT recovered"
        lines.append(f"  {region:<6} best {best['layer']:<8} mean r = {float(best['mean_r']):.3f}  "
                     f"[read out from {layer}: {verdict}]")
    lines.append(f"variance partitioning ({out / 'partition'}: banded ridge of {' and '.join(spaces)} together and "
                 "apart): the group's mean unique R^2 per region")
    unique = {(row["roi"], row["spaces"]): row["mean_r2"] for row in partition.summary
              if row["subject"] == "group" and row["measure"] == "unique"}
    for region, layer in ENCODED.items():
        values = {space: unique[region, space] for space in spaces}
        verdict = "attributed" if max(values, key=values.get) == layer else "NOT attributed"
        lines.append(f"  {region:<6} " + ", ".join(f"{space} {value:.3f}" for space, value in values.items())
                     + f"  [unique to {layer}: {verdict}]")
    return lines
