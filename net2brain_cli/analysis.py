"""`net2brain rdm` and `net2brain rsa`."""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Annotated, Literal

import typer

from cli_common.config import require, resolved_options, with_config
from cli_common.options import ConfigFile, Device, Overwrite
from cli_common.output import Json, print_json
from cli_common.progress import progress_bar
from cli_common.runner import state

log = logging.getLogger("net2brain")

Metric = Literal["correlation", "euclidean", "sqeuclidean", "cosine", "manhattan", "spearman"]
METRIC_HELP = (
    "correlation: 1 - Pearson r of the two patterns; euclidean: sqrt(sum_k (x_ik - x_jk)^2); "
    "sqeuclidean: sum_k (x_ik - x_jk)^2; cosine: 1 - x_i.x_j / (|x_i||x_j|); manhattan: sum_k |x_ik - x_jk|; "
    "spearman: 1 - Pearson r of the patterns' ranks (not streamable)."
)


def _layer_list(layers: str | None) -> list[str] | None:
    if layers is None or layers.strip() == "all":
        return None
    return [name.strip() for name in layers.split(",") if name.strip()]


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
    metric: Annotated[Metric, typer.Option(help=METRIC_HELP)] = "correlation",
    layers: Annotated[str, typer.Option(help="all, or NAME,NAME of the activations file.")] = "all",
    standardize: Annotated[bool, typer.Option("--standardize", help="z-score each feature across stimuli first.")] = False,
    precision: Annotated[Literal["single", "double"], typer.Option(help="float32 or float64 arithmetic.")] = "single",
    device: Device = "cpu",
    memory: Annotated[int, typer.Option(help="MB of features per streamed chunk (peak: ~2 n x n + one chunk).")] = 2048,
    plot: Annotated[Path | None, typer.Option(help="Folder for one heat-map PNG per RDM.")] = None,
    overwrite: Overwrite = False,
    config: ConfigFile = None,
) -> None:
    """Compute RDMs: per layer of an activations file, or per ROI and subject of brain data."""
    from shared.brain_data import fmri_rdms, response_rdms
    from shared.config import config_path_for, write_resolved_config
    from shared.device import resolve_device
    from shared.errors import ConfigError
    from shared.rdm_io import rdms_from_activations, write_rdms
    from shared.stimuli import discover_stimuli
    from shared.storage import check_new_output

    options = resolved_options(ctx)
    require(options, "out")
    sources = [name for name in ("activations", "betas", "responses") if options.get(name)]
    if len(sources) != 1:
        raise ConfigError("give exactly one of --activations, --betas (with --mask) or --responses")
    if mask and not betas:
        raise ConfigError("--mask selects the ROIs of --betas volumes; give --betas with it, or leave --mask out")
    if key is not None and not responses:
        raise ConfigError("--key names the array inside --responses files; give --responses with it, or leave --key out")
    if memory < 1:
        raise ConfigError(f"--memory must be at least 1 MB, got {memory}")
    check_new_output(out, overwrite)
    if plot is not None and not plot.is_dir():
        raise ConfigError(f"--plot folder {plot} does not exist; create it first")
    target = resolve_device(device)
    attrs: dict = {"standardize": standardize, "precision": precision}
    with progress_bar("rdm") as update:
        if activations is not None:
            result, model = rdms_from_activations(
                activations, _layer_list(layers), metric, standardize, precision, target, memory * 2**20, update,
            )
            ids, rdms, attrs = result.stimuli, result.rdms, {**attrs, **model}
        else:
            from shared.brain_data import check_betas, load_responses

            ids = [s.id for s in discover_stimuli(stimuli)] if stimuli else None
            if betas:  # every header is checked before any work, and gives the stimulus count
                n = check_betas(list(betas), list(mask or []))
            elif ids is not None:
                n = load_responses(responses[0], key).shape[0]
            if ids is not None and len(ids) != n:
                raise ConfigError(f"--stimuli {stimuli} lists {len(ids)} stimuli, the brain data have {n}; "
                                  "give one volume (or response row) per stimulus, in the --stimuli order")
            if betas:
                rdms = fmri_rdms(list(betas), list(mask or []), metric, standardize, precision, target, update)
            else:
                rdms = {roi: response_rdms(list(responses), key, metric, standardize, precision, target, update)}
            n = next(iter(rdms.values())).shape[-1]
            ids = ids if ids is not None else [str(i) for i in range(n)]
    path = write_rdms(out, ids, rdms, metric, {k: v for k, v in attrs.items() if v is not None})
    if plot is not None:
        from net2brain_cli.plots import rdm_heatmap

        for name, matrix in rdms.items():
            first = matrix if matrix.ndim == 2 else matrix.reshape(-1, *matrix.shape[-2:]).mean(axis=0)
            label = name if matrix.ndim == 2 else f"{name} (mean of {int(matrix.size // matrix.shape[-1] ** 2)})"
            rdm_heatmap(first, f"{label}, {metric}", plot / f"{name}.png", labels=ids)
    write_resolved_config(config_path_for(path), "net2brain rdm", options)
    shapes = ", ".join(f"{name} {'x'.join(map(str, m.shape))}" for name, m in list(rdms.items())[:6])
    log.info("wrote %s: %s%s", path, shapes, " ..." if len(rdms) > 6 else "")


@with_config
def rsa_command(
    ctx: typer.Context,
    model_rdms: Annotated[Path | None, typer.Option(help="Model RDMs: `net2brain rdm` output or a .mat struct array.")] = None,
    brain_rdms: Annotated[Path | None, typer.Option(help="Brain RDMs: .h5, Net2Brain .npz, .mat, or a folder of them.")] = None,
    out: Annotated[Path | None, typer.Option(help="Results CSV (one row per ROI x layer [x time]).")] = None,
    compare: Annotated[Literal["spearman", "pearson", "kendall"], typer.Option(
        help="spearman (ties averaged), pearson, or kendall (tau-a, O(pairs^2)).")] = "spearman",
    squared: Annotated[bool, typer.Option("--squared/--no-squared", help="Report r^2 (Net2Brain's default) or r.")] = True,
    correction: Annotated[Literal["bonferroni", "fdr", "none"], typer.Option(help="Across layers.")] = "bonferroni",
    layers: Annotated[str, typer.Option(help="all, or NAME,NAME of the model RDMs.")] = "all",
    weighted: Annotated[bool, typer.Option("--weighted", help="Also fit a weighted sum of all layers (cross-validated).")] = False,
    fit: Annotated[Literal["nnls", "lstsq"], typer.Option(help="Weighted RSA fit: non-negative or ordinary least squares.")] = "nnls",
    folds: Annotated[int, typer.Option(help="Weighted RSA: folds over subjects.")] = 5,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap samples over stimuli for 95% intervals (0: none).")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the folds and the bootstrap.")] = 0,
    plot: Annotated[Path | None, typer.Option(help="PNG: best layer per ROI with noise ceiling, and layer profiles.")] = None,
    json: Json = False,
    overwrite: Overwrite = False,
    config: ConfigFile = None,
) -> None:
    """Compare model RDMs with brain RDMs per ROI: scores, SEM, p, noise ceilings."""
    from shared.config import config_path_for, write_resolved_config
    from shared.errors import unknown_name
    from shared.rdm_io import align_to_model, read_brain_rdms, read_model_rdms
    from shared.rsa import RESULT_COLUMNS, RSAOptions, rsa_roi, tidy_rows, weight_rows, weighted_rsa
    from shared.storage import check_new_output, write_csv

    options = resolved_options(ctx)
    require(options, "model_rdms", "brain_rdms", "out")
    check_new_output(out, overwrite)
    if plot is not None:
        check_new_output(plot, overwrite)
    settings = RSAOptions(compare, squared, correction, bootstrap, seed)
    model = read_model_rdms(model_rdms)
    chosen = _layer_list(layers)
    if chosen is not None:
        for name in chosen:
            if name not in model.rdms:
                raise unknown_name("layer", name, model.rdms, hint=f"{model_rdms} holds {len(model.rdms)} RDMs")
        model.rdms = {name: model.rdms[name] for name in chosen}
    brain = align_to_model(model, read_brain_rdms(brain_rdms))
    model_name = model.model or model_rdms.stem
    results, weights = [], []
    with progress_bar("rsa") as update:
        for index, (roi, stack) in enumerate(brain.items()):
            results.append(rsa_roi(model.rdms, stack, roi, settings))
            if weighted:
                weights.append(weighted_rsa(model.rdms, stack, roi, settings, folds=folds, fit=fit))
            update(index + 1, len(brain))
    rows = tidy_rows(results + weights, model_name, settings)
    timed = any(r.times for r in results)
    columns = [c for c in RESULT_COLUMNS if (c != "time" or timed) and (c not in ("ci_low", "ci_high") or bootstrap)]
    path = write_csv(out, rows, columns)
    if weights:
        write_csv(out.with_name(out.stem + ".weights.csv"), weight_rows(weights), ["roi", "time", "layer", "weight"] if timed else ["roi", "layer", "weight"])
    if plot is not None:
        from net2brain_cli.plots import rsa_figure

        rsa_figure([_aggregate(r) for r in results], plot, settings.measure)
    write_resolved_config(config_path_for(path), "net2brain rsa", options)
    if json:
        print_json({"results": [{c: row.get(c) for c in columns} for row in rows], "files": {"results": path}})
    elif not state.quiet:
        _print_best(rows, settings.measure)
    log.info("wrote %s: %d rows", path, len(rows))


def _aggregate(result):
    """A time-resolved result reduced to its aggregate over time, for the figure."""
    if result.times is None:
        return result
    from dataclasses import replace

    return replace(result, **{k: getattr(result, k)[:, -1] for k in ("score", "sem", "p", "p_corrected", "lnc", "unc")})


def _print_best(rows: list[dict], measure: str) -> None:
    """A table of the best layer per ROI (aggregate rows for time-resolved data) on stderr."""
    from rich.console import Console
    from rich.table import Table

    from net2brain_cli.plots import significance_stars

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
