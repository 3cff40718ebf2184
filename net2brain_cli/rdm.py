"""`net2brain rdm`: RDMs of activations or brain recordings."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from cli_common.choices import choice, choice_help, ranged
from cli_common.config_merge import require, resolved_options, with_config
from cli_common.options import ConfigFile, Device, Overwrite
from cli_common.progress import progress_bar
from net2brain_fovex.brain.parameters import RDMParameters
from net2brain_fovex.brain.registry import PRECISIONS, RDM_FORMATS, RDM_METRICS

log = logging.getLogger("net2brain")


@with_config
def rdm_command(
    ctx: typer.Context,
    activations: Annotated[Path | None, typer.Option(help="Activations file of `net2brain extract`.")] = None,
    betas: Annotated[list[Path] | None, typer.Option(
        help="A subject's 4D NIfTI, one volume per stimulus (repeat per subject); needs --mask.")] = None,
    mask: Annotated[list[Path] | None, typer.Option(help="An ROI mask, 3D NIfTI (repeat per ROI; name = file name).")] = None,
    responses: Annotated[list[Path] | None, typer.Option(
        help="A subject's responses, stimuli x channels [x time] (.npy/.npz/.mat/.h5; repeat per subject).")] = None,
    roi: Annotated[str, typer.Option(help="ROI name for --responses.")] = "responses",
    key: Annotated[str | None, typer.Option(help="Array / variable / dataset name inside --responses files.")] = None,
    stimuli: Annotated[Path | None, typer.Option(
        help="Stimulus ids for brain data: a stimulus folder (natural order) or list file.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output RDM file (HDF5).")] = None,
    format: Annotated[choice(RDM_FORMATS), typer.Option(
        help=choice_help(RDM_FORMATS, "Layout of --out:"))] = RDM_FORMATS.default,
    metric: Annotated[choice(RDM_METRICS), typer.Option(help=choice_help(RDM_METRICS))] = RDMParameters.metric,
    layers: Annotated[str, typer.Option(help="all, or NAME,NAME of the activations file.")] = "all",
    standardize: Annotated[bool, typer.Option("--standardize", help="z-score each feature across stimuli first.")] = RDMParameters.standardize,
    precision: Annotated[choice(PRECISIONS), typer.Option(help=choice_help(PRECISIONS))] = RDMParameters.precision,
    device: Device = "cpu",
    memory: Annotated[int, typer.Option(help=ranged("MB of features per streamed chunk (peak: ~2 n x n + one chunk).", "memory"))] = RDMParameters.memory,
    plot: Annotated[Path | None, typer.Option(help="Folder for one PNG per RDM: its heat map beside its MDS.")] = None,
    labels: Annotated[Path | None, typer.Option(
        help="With --plot: CSV of stimulus,category; heat maps grouped by category, MDS coloured by it.")] = None,
    thumbnails: Annotated[Path | None, typer.Option(
        help="With --plot: folder of the stimulus images (named by their ids), drawn at their MDS points.")] = None,
    overwrite: Overwrite = False,
    config: ConfigFile = None,
) -> None:
    """Compute RDMs: per layer of an activations file, or per ROI and subject of brain data."""
    from net2brain_fovex.brain.rdm_files import rdms_to_file

    options = resolved_options(ctx)
    require(options, "out")
    with progress_bar("rdm") as update:
        result = rdms_to_file(
            out, activations=activations, betas=betas or (), mask=mask or (), responses=responses or (), roi=roi,
            key=key, stimuli=stimuli, layers=layers, metric=metric, standardize=standardize, precision=precision,
            memory=memory, device=device, plot=plot, labels=labels, thumbnails=thumbnails, format=format, overwrite=overwrite, config=options, progress=update,
        )
    shapes = ", ".join(f"{name} {'x'.join(map(str, m.shape))}" for name, m in list(result.rdms.items())[:6])
    log.info("wrote %s: %s%s", result.path, shapes, " ..." if len(result.rdms) > 6 else "")
