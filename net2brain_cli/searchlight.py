"""`net2brain searchlight`: searchlight RSA maps from 4D volumes (or precomputed RDMs)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from cli_common.choices import choice, choice_help, ranged
from cli_common.config_merge import require, resolved_options, with_config
from cli_common.options import Background, ConfigFile, Device, Overwrite, ShardSpec
from cli_common.output import Json, print_json
from cli_common.progress import progress_bar
from net2brain_fovex.brain.parameters import SearchlightParameters as Defaults
from net2brain_fovex.brain.registry import COMPARISONS, PRECISIONS, SEARCHLIGHT_METRICS

log = logging.getLogger("net2brain")


@with_config
def searchlight_command(
    ctx: typer.Context,
    betas: Annotated[list[Path] | None, typer.Option(
        help="A subject's 4D NIfTI, one volume per stimulus (repeat per subject).")] = None,
    mask: Annotated[Path | None, typer.Option(
        help="3D brain mask; default: voxels with finite, non-constant responses in every subject.")] = None,
    model_rdms: Annotated[Path | None, typer.Option(help="Model RDMs (`net2brain rdm` output or .mat).")] = None,
    layers: Annotated[str, typer.Option(help="all, or NAME,NAME of the model RDMs.")] = "all",
    radius: Annotated[float | None, typer.Option(help=ranged("Sphere radius in mm (voxels at distance <= radius).", "radius"))] = None,
    out_dir: Annotated[Path | None, typer.Option(help="Folder for the maps and summary.csv (created).")] = None,
    stimuli: Annotated[Path | None, typer.Option(
        help="The stimulus order of the volumes (list file or folder); reordered to the model RDMs' order.")] = None,
    metric: Annotated[choice(SEARCHLIGHT_METRICS), typer.Option(
        help=choice_help(SEARCHLIGHT_METRICS, "Dissimilarity of the sphere patterns:"))] = Defaults.metric,
    compare: Annotated[choice(COMPARISONS), typer.Option(
        help=choice_help(COMPARISONS, "Comparison with the model RDMs:"))] = Defaults.compare,
    min_voxels: Annotated[int, typer.Option(help=ranged("Centres with fewer voxels in their sphere get NaN.", "min_voxels"))] = Defaults.min_voxels,
    batch_size: Annotated[int, typer.Option(help=ranged("Centres per batch (memory ~ batch x sphere x stimuli).", "batch_size"))] = Defaults.batch_size,
    precision: Annotated[choice(PRECISIONS), typer.Option(help=choice_help(PRECISIONS))] = Defaults.precision,
    device: Device = "cpu",
    threshold: Annotated[float, typer.Option(help=ranged("Score maps: count voxels above this value in summary.csv.", "threshold"))] = Defaults.threshold,
    alpha: Annotated[float, typer.Option(help=ranged("t maps: count voxels with uncorrected p below this.", "alpha"))] = Defaults.alpha,
    fdr: Annotated[float | None, typer.Option(help=ranged("Also write a mask of the voxels significant at this FDR (q).", "fdr"))] = Defaults.fdr,
    searchlight_rdms: Annotated[Path | None, typer.Option(
        help="Net2Brain's precomputed searchlight RDMs (.npz/.npy: searchlights x subjects x n x n).")] = None,
    centres: Annotated[Path | None, typer.Option(
        help="Voxel coordinates (searchlights x 3) of the precomputed RDMs (.npy), unless in the .npz as 'centres'.")] = None,
    reference: Annotated[Path | None, typer.Option(
        help="A NIfTI on the grid of the precomputed centres, for writing their maps.")] = None,
    plot: Annotated[bool, typer.Option(
        "--plot", help="Also draw each group map (one subject: each map) as a brain picture, <map>.png (nilearn).")] = False,
    background: Background = None,
    shard: ShardSpec = None,  # a block of the mask's centres -> OUT_DIR/searchlight.shard-I-of-N.h5
    json: Json = False,
    overwrite: Overwrite = False,
    config: ConfigFile = None,
) -> None:
    """Searchlight RSA: a map per subject and layer, group mean / t / p maps, and a summary."""
    from net2brain_fovex.brain.searchlight_files import searchlight_to_file

    options = resolved_options(ctx)
    require(options, "model_rdms", "out_dir")
    if betas:
        require(options, "radius")
    with progress_bar("searchlight", unit="centres") as update:
        result = searchlight_to_file(
            model_rdms, out_dir, betas=betas or (), mask=mask, layers=layers, radius=radius, stimuli=stimuli,
            metric=metric, compare=compare, min_voxels=min_voxels, batch_size=batch_size, precision=precision,
            device=device, threshold=threshold, alpha=alpha, fdr=fdr, searchlight_rdms=searchlight_rdms,
            centres=centres, reference=reference, shard=shard, plot=plot, background=background, overwrite=overwrite, config=options, progress=update,
        )
    if result.shard_file is not None:
        log.info("when every shard is done, join them with `net2brain merge --out %s`", out_dir)
    elif json:
        print_json({"summary": result.summary, "files": {"summary": result.out_dir / "summary.csv", "maps": result.maps}})
