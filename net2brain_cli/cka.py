"""`net2brain cka`: linear CKA of layers against the layers of another model or brain ROIs."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from cli_common.choices import choice, choice_help, ranged
from cli_common.config_merge import require, resolved_options, with_config
from cli_common.options import ConfigFile, Device, Overwrite
from cli_common.progress import progress_bar
from net2brain_fovex.brain.parameters import CKAParameters
from net2brain_fovex.brain.registry import ESTIMATORS

log = logging.getLogger("net2brain")


@with_config
def cka_command(
    ctx: typer.Context,
    activations: Annotated[Path | None, typer.Option(help="Activations file of `net2brain extract` (rows of the table).")] = None,
    against: Annotated[Path | None, typer.Option(help="A second activations file (model vs model).")] = None,
    betas: Annotated[list[Path] | None, typer.Option(
        help="A subject's 4D NIfTI, one volume per stimulus (repeat per subject); needs --mask.")] = None,
    mask: Annotated[list[Path] | None, typer.Option(help="An ROI mask, 3D NIfTI (repeat per ROI; name = file name).")] = None,
    responses: Annotated[list[Path] | None, typer.Option(
        help="A subject's responses, stimuli x channels [x time] (.npy/.npz/.mat/.h5; repeat per subject).")] = None,
    roi: Annotated[str, typer.Option(help="ROI name for --responses.")] = "responses",
    key: Annotated[str | None, typer.Option(help="Array / variable / dataset name inside --responses files.")] = None,
    stimuli: Annotated[Path | None, typer.Option(
        help="Stimulus ids of the brain data's rows: a stimulus folder (natural order) or list file.")] = None,
    out: Annotated[Path | None, typer.Option(help="Results CSV (one row per layer x layer, or layer x ROI x subject).")] = None,
    layers: Annotated[str, typer.Option(help="all, or NAME,NAME of --activations.")] = "all",
    against_layers: Annotated[str, typer.Option(help="all, or NAME,NAME of --against.")] = "all",
    estimator: Annotated[choice(ESTIMATORS), typer.Option(help=choice_help(ESTIMATORS, "HSIC:"))] = CKAParameters.estimator,
    permutations: Annotated[int, typer.Option(help=ranged("Permutations of the stimuli for p-values (0: none).", "permutations"))] = CKAParameters.permutations,
    seed: Annotated[int, typer.Option(help=ranged("Seed of the permutations.", "seed"))] = CKAParameters.seed,
    memory: Annotated[int, typer.Option(help=ranged("MB of features per streamed chunk.", "memory"))] = CKAParameters.memory,
    device: Device = "cpu",
    plot: Annotated[Path | None, typer.Option(help="Heat map (PNG, PDF, SVG) of CKA: layers x layers or x ROIs.")] = None,
    overwrite: Overwrite = False,
    config: ConfigFile = None,
) -> None:
    """Linear CKA (debiased HSIC by default) of every layer against every layer of another model or every ROI."""
    from net2brain_fovex.brain.cka import cka_to_file

    options = resolved_options(ctx)
    require(options, "activations", "out")
    with progress_bar("cka") as update:
        result = cka_to_file(
            activations, out, against=against, betas=betas or (), mask=mask or (), responses=responses or (), roi=roi,
            key=key, stimuli=stimuli, layers=layers, against_layers=against_layers, estimator=estimator,
            permutations=permutations, seed=seed, memory=memory, device=device, plot=plot, overwrite=overwrite,
            config=options, progress=update,
        )
    log.info("wrote %s: %d rows (%s CKA)", result.paths["results"], len(result.rows), estimator)
