"""`fovex`: explain image classifiers (FovEx and baselines). Thin: options in, one core call, summary out."""
from __future__ import annotations

import logging
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Literal

import typer

from cli_common import model_options as mo
from cli_common.choices import choice, choice_help, ranged
from cli_common.config_merge import require, resolved_options, with_config
from cli_common.options import ConfigFile, Overwrite, ShardSpec
from cli_common.output import Json, print_json
from cli_common.progress import progress_bar
from cli_common.runner import make_app, run, state
from net2brain_fovex.evaluate.registry import METRICS as EVALUATION_METRICS
from net2brain_fovex.explain.registry import (
    METHODS,
    PRECISIONS,
    PRED,
    CAMBatchParameters,
    CAMParameters,
    CentreParameters,
    FovExParameters,
    PerturbationParameters,
    RISEParameters,
    RolloutParameters,
    help_of,
)
from net2brain_fovex.models.sources import AUTO

app = make_app("fovex", "Explain image classifiers with FovEx and the usual baselines, and evaluate explanations.")
log = logging.getLogger("fovex")

FOVEX, CAM, RISE = "FovEx (--method fovex)", "CAM methods (gradcam, gradcam++, random, cam:*)", "RISE (--method rise)"
# the options of each method: the fields of its parameters dataclass
METHOD_OPTIONS = {name: tuple(f.name for f in fields(entry.parameters)) for name, entry in METHODS.items()}
_F, _C, _R = FovExParameters, CAMParameters, RISEParameters
CENTRE, _CB = "centre bias (--method centre)", CentreParameters
Precision = Literal[PRECISIONS]  # type: ignore[valid-type]  # the model's passes: fp32, or autocast to bf16 / fp16
PERTURBATION, _MP = "meaningful perturbation (--method perturbation)", PerturbationParameters
ROLLOUT, _RO = "attention rollout (--method rollout)", RolloutParameters


def _option(kind: type, name: str, panel: str, *flags: str):
    """A method parameter's option: its help from the registry, in the method's panel."""
    return typer.Option(*flags, help=help_of(kind, name), rich_help_panel=panel)


@app.command("explain")
@with_config
def explain_command(
    ctx: typer.Context,
    model: mo.Model = None,
    pretrained_tag: mo.PretrainedTag = None,
    source: mo.Source = AUTO,
    weights: mo.Weights = "pretrained",
    seed: Annotated[int, typer.Option(help=ranged("Seed of random weights and of the method (restarts, masks).", "seed"))] = 42,
    device: mo.Device = "auto",
    image_size: mo.ImageSize = None,
    crop_pct: mo.CropPct = None,
    interpolation: mo.Interpolation = None,
    resize_mode: mo.ResizeMode = None,
    mean: mo.Mean = None,
    std: mo.Std = None,
    images: Annotated[Path | None, typer.Option(help="Folder of images or a text file listing them.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output attribution file (HDF5).")] = None,
    method: Annotated[choice(METHODS), typer.Option(help=choice_help(METHODS))] = METHODS.default,
    target: Annotated[str, typer.Option(help="pred (the model's top-1 class) or a class index.")] = PRED,
    batch_size: Annotated[int, typer.Option(help=ranged("Images explained together.", "batch_size"))] = 16,
    png_dir: Annotated[Path | None, typer.Option(help="Folder for one overlay PNG per image (with FovEx's scan path).")] = None,
    scanpath_length: Annotated[int, _option(_F, "scanpath_length", FOVEX)] = _F.scanpath_length,
    optimization_steps: Annotated[int, _option(_F, "optimization_steps", FOVEX)] = _F.optimization_steps,
    lr: Annotated[float, _option(_F, "lr", FOVEX)] = _F.lr,
    foveation_sigma: Annotated[float, _option(_F, "foveation_sigma", FOVEX)] = _F.foveation_sigma,
    blur_filter_size: Annotated[int, _option(_F, "blur_filter_size", FOVEX)] = _F.blur_filter_size,
    blur_sigma: Annotated[float, _option(_F, "blur_sigma", FOVEX)] = _F.blur_sigma,
    forgetting: Annotated[float, _option(_F, "forgetting", FOVEX)] = _F.forgetting,
    random_restart: Annotated[bool, _option(_F, "random_restart", FOVEX, "--random-restart/--no-random-restart")] = _F.random_restart,
    heatmap_sigma: Annotated[float, _option(_F, "heatmap_sigma", FOVEX)] = _F.heatmap_sigma,
    patience: Annotated[int, _option(_F, "patience", FOVEX)] = _F.patience,
    converge: Annotated[int, _option(_F, "converge", FOVEX)] = _F.converge,
    converge_ratio: Annotated[float, _option(_F, "converge_ratio", FOVEX)] = _F.converge_ratio,
    precision: Annotated[Precision, _option(_F, "precision", "FovEx and RISE")] = _F.precision,
    layer: Annotated[str | None, _option(_C, "layer", CAM)] = _C.layer,
    cam_batch: Annotated[int, _option(CAMBatchParameters, "cam_batch", CAM)] = CAMBatchParameters.cam_batch,
    masks: Annotated[int, _option(_R, "masks", RISE)] = _R.masks,
    grid: Annotated[int, _option(_R, "grid", RISE)] = _R.grid,
    p_keep: Annotated[float, _option(_R, "p_keep", RISE)] = _R.p_keep,
    mask_batch: Annotated[int, _option(_R, "mask_batch", RISE)] = _R.mask_batch,
    centre_sigma: Annotated[float, _option(_CB, "centre_sigma", CENTRE)] = _CB.centre_sigma,
    perturbation_iterations: Annotated[int, _option(_MP, "perturbation_iterations", PERTURBATION)] = _MP.perturbation_iterations,
    perturbation_lr: Annotated[float, _option(_MP, "perturbation_lr", PERTURBATION)] = _MP.perturbation_lr,
    perturbation_l1: Annotated[float, _option(_MP, "perturbation_l1", PERTURBATION)] = _MP.perturbation_l1,
    perturbation_tv: Annotated[float, _option(_MP, "perturbation_tv", PERTURBATION)] = _MP.perturbation_tv,
    perturbation_tv_beta: Annotated[float, _option(_MP, "perturbation_tv_beta", PERTURBATION)] = _MP.perturbation_tv_beta,
    perturbation_blur_sigma: Annotated[float, _option(_MP, "perturbation_blur_sigma", PERTURBATION)] = _MP.perturbation_blur_sigma,
    perturbation_mask_scale: Annotated[int, _option(_MP, "perturbation_mask_scale", PERTURBATION)] = _MP.perturbation_mask_scale,
    perturbation_mask_blur_sigma: Annotated[float, _option(
        _MP, "perturbation_mask_blur_sigma", PERTURBATION)] = _MP.perturbation_mask_blur_sigma,
    perturbation_jitter: Annotated[int, _option(_MP, "perturbation_jitter", PERTURBATION)] = _MP.perturbation_jitter,
    perturbation_noise: Annotated[float, _option(_MP, "perturbation_noise", PERTURBATION)] = _MP.perturbation_noise,
    perturbation_circle_init: Annotated[bool, _option(
        _MP, "perturbation_circle_init", PERTURBATION, "--perturbation-circle-init/--no-perturbation-circle-init",
    )] = _MP.perturbation_circle_init,
    discard_ratio: Annotated[float, _option(_RO, "discard_ratio", ROLLOUT)] = _RO.discard_ratio,
    shard: ShardSpec = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run.")] = False,
    overwrite: Overwrite = False,
    config: ConfigFile = None,
) -> None:
    """Explain the model's decisions on a set of images: attribution maps (and FovEx fixations) to HDF5."""
    from net2brain_fovex.explain.attributions import explain_to_file

    options = resolved_options(ctx)
    require(options, "model", "images", "out")
    model = mo.model_name(model, pretrained_tag)
    _refuse_foreign_options(ctx, method)
    with progress_bar(f"{method} {model}", unit="images") as update:
        result = explain_to_file(
            model, images, out, source=source, weights=weights, seed=seed, device=device, image_size=image_size,
            crop_pct=crop_pct, interpolation=interpolation, resize_mode=resize_mode,
            mean=mo.parse_triple("mean", mean), std=mo.parse_triple("std", std), method=method,
            parameters={name: options[name] for name in METHOD_OPTIONS[method]}, target=target,
            batch_size=batch_size, png_dir=png_dir, shard=shard, resume=resume, overwrite=overwrite, config=options,
            progress=update,
        )
    if result.model is not None:
        log.info("wrote %s: %d maps (%s) of %s on %s", result.path, result.images, method, result.model.name,
                 result.model.device)


def _refuse_foreign_options(ctx: typer.Context, method: str) -> None:
    """A method's options given on the command line for another method are a mistake."""
    from net2brain_fovex.errors import ConfigError

    for other, names in METHOD_OPTIONS.items():
        for name in names:
            source = ctx.get_parameter_source(name)
            if name not in METHOD_OPTIONS[method] and source is not None and source.name == "COMMANDLINE":
                also = [m for m, given in METHOD_OPTIONS.items() if name in given and m != other]
                more = f" (also to {', '.join(also)})" if also else ""
                raise ConfigError(f"--{name.replace('_', '-')} applies to --method {other}, not {method}{more}")


@app.command("evaluate")
@with_config
def evaluate_command(
    ctx: typer.Context,
    model: mo.Model = None,
    pretrained_tag: mo.PretrainedTag = None,
    source: mo.Source = AUTO,
    weights: mo.Weights = "pretrained",
    seed: Annotated[int, typer.Option(help=ranged(
        "Seed of random weights (use the one given to explain) and of sauc's negatives.", "seed"))] = 42,
    device: mo.Device = "auto",
    image_size: mo.ImageSize = None,
    crop_pct: mo.CropPct = None,
    interpolation: mo.Interpolation = None,
    resize_mode: mo.ResizeMode = None,
    mean: mo.Mean = None,
    std: mo.Std = None,
    images: Annotated[Path | None, typer.Option(help="Folder of images or a text file listing them (as given to explain).")] = None,
    maps: Annotated[list[Path] | None, typer.Option(help="Attribution file of fovex explain; repeat for several methods.")] = None,
    out: Annotated[Path | None, typer.Option(help="Per-image CSV; the summary (.summary.csv) and curves (.curves.h5) go beside it.")] = None,
    metrics: Annotated[str | None, typer.Option(
        help=f"Comma-separated: {', '.join(EVALUATION_METRICS)} (default: all that the given ground truth allows).")] = None,
    boxes: Annotated[Path | None, typer.Option(help="CSV of object boxes: image, x0, y0, x1, y1 in the image's pixels.")] = None,
    fixations: Annotated[Path | None, typer.Option(
        help="Human fixations: CSV (image, row, col in the image's pixels), a folder of fixation-map images, or an "
             "MIT1003 folder (ALLFIXATIONMAPS/<name>_fixPts.jpg and _fixMap.jpg).")] = None,
    step: Annotated[int | None, typer.Option(help=ranged("Pixels per deletion / insertion step (default H*W/224: 224 steps).", "step"))] = None,
    gaze_sigma: Annotated[float | None, typer.Option(
        help=ranged("Sigma of the fixation density for cc, kld and sim, in input pixels (default: input size / 32, "
                    "or an MIT1003 folder's own fixMap densities).", "gaze_sigma"))] = None,
    batch_size: Annotated[int, typer.Option(help=ranged("Images evaluated together.", "batch_size"))] = 16,
    precision: Annotated[Precision, typer.Option(
        help="The model's passes for avg_drop, avg_increase, deletion and insertion: fp32, or autocast to bf16 "
             "(CPUs and GPUs) or fp16 (GPUs).")] = "fp32",
    plot: Annotated[Path | None, typer.Option(help="PNG of the mean deletion and insertion curves per method.")] = None,
    json: Json = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run.")] = False,
    overwrite: Overwrite = False,
    config: ConfigFile = None,
) -> None:
    """Score attribution maps: faithfulness (average drop / increase, deletion, insertion), localisation
    (EBPG, pointing game), agreement with human gaze (NSS, AUC-Judd, CC, KLD, SIM, shuffled AUC, information gain)
    and sparseness."""
    from net2brain_fovex.evaluate.evaluation import evaluate_to_file

    options = resolved_options(ctx)
    require(options, "model", "images", "maps", "out")
    model = mo.model_name(model, pretrained_tag)
    with progress_bar(f"evaluate {model}", unit="images") as update:
        result = evaluate_to_file(
            model, images, maps, out, source=source, weights=weights, seed=seed, device=device, image_size=image_size,
            crop_pct=crop_pct, interpolation=interpolation, resize_mode=resize_mode,
            mean=mo.parse_triple("mean", mean), std=mo.parse_triple("std", std), metrics=metrics, boxes=boxes,
            fixations=fixations, step=step, gaze_sigma=gaze_sigma, batch_size=batch_size, precision=precision,
            plot=plot, resume=resume,
            overwrite=overwrite, config=options, progress=update,
        )
    if json:
        print_json({"summary": result.summary, "files": result.paths})
    elif not state.quiet:
        from rich.console import Console

        from fovex_cli.tables import summary_table

        Console(stderr=True).print(summary_table(result.summary, result.labels, result.metrics))
    log.info("wrote %s, %s and %s", out, result.paths["summary"], result.paths["curves"])


@app.command("merge")
@with_config
def merge_command(
    ctx: typer.Context,
    shards: Annotated[list[Path] | None, typer.Argument(
        help="Shard files; default: every NAME.shard-I-of-N.h5 beside --out.", show_default=False)] = None,
    out: Annotated[Path | None, typer.Option(help="The unsharded attribution file.")] = None,
    overwrite: Overwrite = False,
    config: ConfigFile = None,
) -> None:
    """Join the shard outputs of `explain --shard` into the file one run writes."""
    from net2brain_fovex.io.hdf5 import ATTRIBUTIONS_KIND
    from net2brain_fovex.io.shards import merge_shards

    options = resolved_options(ctx)
    require(options, "out")
    written = merge_shards(out, shards, kinds=(ATTRIBUTIONS_KIND,), overwrite=overwrite, config=options)
    log.info("merged the shards into %s", written)


@app.command("demo")
@with_config
def demo_command(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Folder for the demo's files (created).")] = Path("fovex-demo"),
    device: mo.Device = "auto",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace earlier demo outputs.")] = False,
    config: ConfigFile = None,
) -> None:
    """Train a tiny CNN on a generated localisation task and explain it with FovEx, Grad-CAM and RISE."""
    from net2brain_fovex.demo.fovex_demo import run_fovex_demo

    with progress_bar("demo") as update:
        report = run_fovex_demo(out, device=device, overwrite=overwrite, config=resolved_options(ctx), progress=update)
    typer.echo(report)


from cli_common.info import info_command  # noqa: E402  (shared with the other tool)

app.command("info")(info_command)

from cli_common.report import report_command  # noqa: E402  (shared with the other tool)

app.command("report")(report_command)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    return run(app, "fovex", argv)
