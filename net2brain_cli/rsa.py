"""`net2brain rsa`: model RDMs against brain RDMs per ROI."""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Annotated

import typer

from cli_common.choices import choice, choice_help, ranged
from cli_common.config_merge import require, resolved_options, with_config
from cli_common.options import ConfigFile, Overwrite
from cli_common.output import Json, print_json
from cli_common.progress import progress_bar
from cli_common.runner import state
from net2brain_fovex.brain.parameters import RSAParameters
from net2brain_fovex.brain.registry import COMPARISONS, CORRECTIONS, FITS

log = logging.getLogger("net2brain")


@with_config
def rsa_command(
    ctx: typer.Context,
    model_rdms: Annotated[Path | None, typer.Option(help="Model RDMs: `net2brain rdm` output or a .mat struct array.")] = None,
    brain_rdms: Annotated[Path | None, typer.Option(help="Brain RDMs: .h5, Net2Brain .npz, .mat, or a folder of them.")] = None,
    out: Annotated[Path | None, typer.Option(help="Results CSV (one row per ROI x layer [x time]).")] = None,
    compare: Annotated[choice(COMPARISONS), typer.Option(help=choice_help(COMPARISONS))] = RSAParameters.compare,
    squared: Annotated[bool, typer.Option("--squared/--no-squared", help="Report r^2 (Net2Brain's default) or r.")] = RSAParameters.squared,
    correction: Annotated[choice(CORRECTIONS), typer.Option(help=choice_help(CORRECTIONS, "Across layers:"))] = RSAParameters.correction,
    layers: Annotated[str, typer.Option(help="all, or NAME,NAME of the model RDMs.")] = "all",
    weighted: Annotated[bool, typer.Option("--weighted", help="Also fit a weighted sum of all layers (cross-validated).")] = RSAParameters.weighted,
    fit: Annotated[choice(FITS), typer.Option(help=choice_help(FITS, "Weighted RSA fit:"))] = RSAParameters.fit,
    folds: Annotated[int, typer.Option(help=ranged("Weighted RSA: folds over subjects.", "folds"))] = RSAParameters.folds,
    bootstrap: Annotated[int, typer.Option(help=ranged("Bootstrap samples over stimuli for 95% intervals (0: none).", "bootstrap"))] = RSAParameters.bootstrap,
    seed: Annotated[int, typer.Option(help=ranged("Seed of the folds and the bootstrap.", "seed"))] = RSAParameters.seed,
    plot: Annotated[Path | None, typer.Option(help="PNG: best layer per ROI with noise ceiling, and layer profiles.")] = None,
    json: Json = False,
    overwrite: Overwrite = False,
    config: ConfigFile = None,
) -> None:
    """Compare model RDMs with brain RDMs per ROI: scores, SEM, p, noise ceilings."""
    from net2brain_fovex.brain.rsa import rsa_to_file

    options = resolved_options(ctx)
    require(options, "model_rdms", "brain_rdms", "out")
    with progress_bar("rsa") as update:
        result = rsa_to_file(
            model_rdms, brain_rdms, out, compare=compare, squared=squared, correction=correction, layers=layers,
            weighted=weighted, fit=fit, folds=folds, bootstrap=bootstrap, seed=seed, plot=plot, overwrite=overwrite,
            config=options, progress=update,
        )
    if json:
        print_json({"results": [{c: row.get(c) for c in result.columns} for row in result.rows],
                    "files": {"results": result.paths["results"]}})
    elif not state.quiet:
        _print_best(result.rows, result.parameters.measure)
    log.info("wrote %s: %d rows", result.paths["results"], len(result.rows))


def _print_best(rows: list[dict], measure: str) -> None:
    """A table of the best layer per ROI (aggregate rows for time-resolved data) on stderr."""
    from rich.console import Console
    from rich.table import Table

    from net2brain_fovex.figures.rsa import significance_stars

    best: dict[str, dict] = {}
    for row in rows:
        if row["layer"] == "weighted" or row.get("time", "") not in ("", "mean"):
            continue
        current = best.get(row["roi"])
        if current is None or (math.isfinite(row["score"]) and not row["score"] <= current["score"]):
            best[row["roi"]] = row
    table = Table(title=f"best layer per ROI ({measure})")
    for column in ("ROI", "layer", "score", "SEM", "p (corr.)", "", "% of LNC", "LNC", "UNC"):
        table.add_column(column, justify="left" if column in ("ROI", "layer") else "right")
    for roi, row in best.items():
        table.add_row(
            roi, row["layer"], f"{row['score']:.4f}", f"{row['sem']:.4f}", f"{row['p_corrected']:.2g}",
            significance_stars(row["p_corrected"]), f"{row['pct_of_nc']:.1f}", f"{row['lnc']:.4f}", f"{row['unc']:.4f}",
        )
    Console(stderr=True).print(table)
