"""`fovex`: explain image classifiers (FovEx and baselines). Thin: options in, one core call, summary out."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Literal

import typer

from cli_common import model_options as mo
from cli_common.config import require, resolved_options, with_config
from cli_common.options import ConfigFile, Overwrite, ShardSpec, sharded_output
from cli_common.output import Json, print_json
from cli_common.progress import progress_bar
from cli_common.runner import make_app, run, state

app = make_app("fovex", "Explain image classifiers with FovEx and the usual baselines, and evaluate explanations.")
log = logging.getLogger("fovex")

FOVEX, CAM, RISE = "FovEx (--method fovex)", "Grad-CAM / Grad-CAM++ / random CAM", "RISE (--method rise)"
METHOD_OPTIONS = {
    "fovex": ("scanpath_length", "optimization_steps", "lr", "foveation_sigma", "blur_filter_size", "blur_sigma",
              "forgetting", "random_restart", "heatmap_sigma", "patience"),
    "gradcam": ("layer",), "gradcam++": ("layer",), "random": ("layer",),
    "rise": ("masks", "grid", "p_keep", "mask_batch"),
}


@app.command("explain")
@with_config
def explain_command(
    ctx: typer.Context,
    model: mo.Model = None,
    source: mo.Source = "auto",
    weights: mo.Weights = "pretrained",
    seed: Annotated[int, typer.Option(help="Seed of random weights and of the method (restarts, masks).")] = 42,
    device: mo.Device = "auto",
    image_size: mo.ImageSize = None,
    mean: mo.Mean = None,
    std: mo.Std = None,
    images: Annotated[Path | None, typer.Option(help="Folder of images or a text file listing them.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output attribution file (HDF5).")] = None,
    method: Annotated[Literal["fovex", "gradcam", "gradcam++", "rise", "random"], typer.Option(
        help="fovex, gradcam, gradcam++, rise, or random (random CAM weights).")] = "fovex",
    target: Annotated[str, typer.Option(help="pred (the model's top-1 class) or a class index.")] = "pred",
    batch_size: Annotated[int, typer.Option(help="Images explained together.")] = 16,
    png_dir: Annotated[Path | None, typer.Option(help="Folder for one overlay PNG per image (with FovEx's scan path).")] = None,
    scanpath_length: Annotated[int, typer.Option(help="Fixations per image.", rich_help_panel=FOVEX)] = 10,
    optimization_steps: Annotated[int, typer.Option(help="Gradient steps per fixation.", rich_help_panel=FOVEX)] = 20,
    lr: Annotated[float, typer.Option(help="Signed-gradient step, in [-1, 1] image units.", rich_help_panel=FOVEX)] = 0.1,
    foveation_sigma: Annotated[float, typer.Option(help="Fovea width: exp(-d^2 / sigma).", rich_help_panel=FOVEX)] = 0.15,
    blur_filter_size: Annotated[int, typer.Option(help="Gaussian blur kernel (odd).", rich_help_panel=FOVEX)] = 41,
    blur_sigma: Annotated[float, typer.Option(help="Gaussian blur sigma in pixels.", rich_help_panel=FOVEX)] = 10.0,
    forgetting: Annotated[float, typer.Option(help="Memory decay per fixation.", rich_help_panel=FOVEX)] = 0.1,
    random_restart: Annotated[bool, typer.Option("--random-restart/--no-random-restart",
        help="Restart at a random position after a step that does not improve.", rich_help_panel=FOVEX)] = True,
    heatmap_sigma: Annotated[float, typer.Option(help="Width of each fixation's Gaussian in the map.", rich_help_panel=FOVEX)] = 0.15,
    patience: Annotated[int, typer.Option(
        help="End a fixation's search after this many steps without improvement (0: always all steps).",
        rich_help_panel=FOVEX)] = 0,
    layer: Annotated[str | None, typer.Option(help="Target layer (default: the last spatial map).", rich_help_panel=CAM)] = None,
    masks: Annotated[int, typer.Option(help="Random masks.", rich_help_panel=RISE)] = 4000,
    grid: Annotated[int, typer.Option(help="Mask grid cells per side.", rich_help_panel=RISE)] = 7,
    p_keep: Annotated[float, typer.Option(help="Probability of keeping a cell.", rich_help_panel=RISE)] = 0.5,
    mask_batch: Annotated[int, typer.Option(help="Masked images per forward pass.", rich_help_panel=RISE)] = 100,
    shard: ShardSpec = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run.")] = False,
    overwrite: Overwrite = False,
    config: ConfigFile = None,
) -> None:
    """Explain the model's decisions on a set of images: attribution maps (and FovEx fixations) to HDF5."""
    from shared.attribution.explain import check_images_only, check_parameters, explain_to_file, parse_target
    from shared.config import config_path_for, write_resolved_config
    from shared.errors import ConfigError
    from shared.stimuli import discover_stimuli

    options = resolved_options(ctx)
    require(options, "model", "images", "out")
    _refuse_foreign_options(ctx, method)
    parameters = {name: options[name] for name in METHOD_OPTIONS[method]}
    check_parameters(method, parameters)
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    wanted = parse_target(target)
    part, target_path = sharded_output(out, shard, resume, overwrite)
    if target_path is None:
        return
    found = discover_stimuli(images)
    check_images_only(found)
    done = found if part is None else part.take(found)
    if png_dir is not None:
        from fovex_cli.plots import check_overlays

        check_overlays(done, png_dir, overwrite)  # before any work; the folder is made when the maps are done
    loaded = mo.load_model_from_options(model, source, weights, seed, device, image_size, mean, std)
    with progress_bar(f"{method} {loaded.name}", unit="images") as update:
        path = explain_to_file(loaded, found, method, parameters, out, wanted, seed, batch_size, resume, overwrite,
                               options, update, part)
    if png_dir is not None:
        from fovex_cli.plots import write_overlays

        png_dir.mkdir(parents=True, exist_ok=True)
        write_overlays(path, done, loaded.preprocessing, png_dir, overwrite)
    write_resolved_config(config_path_for(path), "fovex explain", options)
    log.info("wrote %s: %d maps (%s) of %s on %s", path, len(done), method, loaded.name, loaded.device)


def _refuse_foreign_options(ctx: typer.Context, method: str) -> None:
    """A method's options given on the command line for another method are a mistake."""
    from shared.errors import ConfigError

    for other, names in METHOD_OPTIONS.items():
        for name in names:
            source = ctx.get_parameter_source(name)
            if name not in METHOD_OPTIONS[method] and source is not None and source.name == "COMMANDLINE":
                raise ConfigError(f"--{name.replace('_', '-')} applies to --method {other}, not {method}")


@app.command("evaluate")
@with_config
def evaluate_command(
    ctx: typer.Context,
    model: mo.Model = None,
    source: mo.Source = "auto",
    weights: mo.Weights = "pretrained",
    seed: Annotated[int, typer.Option(help="Seed of random weights (use the one given to explain).")] = 42,
    device: mo.Device = "auto",
    image_size: mo.ImageSize = None,
    mean: mo.Mean = None,
    std: mo.Std = None,
    images: Annotated[Path | None, typer.Option(help="Folder of images or a text file listing them (as given to explain).")] = None,
    maps: Annotated[list[Path] | None, typer.Option(help="Attribution file of fovex explain; repeat for several methods.")] = None,
    out: Annotated[Path | None, typer.Option(help="Per-image CSV; the summary (.summary.csv) and curves (.curves.h5) go beside it.")] = None,
    metrics: Annotated[str | None, typer.Option(
        help="Comma-separated: avg_drop, avg_increase, deletion, insertion, ebpg, pointing_game, nss, auc_judd, cc, kld, "
             "sim, sparseness (default: all that the given ground truth allows).")] = None,
    boxes: Annotated[Path | None, typer.Option(help="CSV of object boxes: image, x0, y0, x1, y1 in the image's pixels.")] = None,
    fixations: Annotated[Path | None, typer.Option(
        help="Human fixations: CSV (image, row, col in the image's pixels) or a folder of fixation-map images.")] = None,
    step: Annotated[int | None, typer.Option(help="Pixels per deletion / insertion step (default H*W/224: 224 steps).")] = None,
    gaze_sigma: Annotated[float | None, typer.Option(
        help="Sigma of the fixation density for cc, kld and sim, in input pixels (default: input size / 32).")] = None,
    batch_size: Annotated[int, typer.Option(help="Images evaluated together.")] = 16,
    plot: Annotated[Path | None, typer.Option(help="PNG of the mean deletion and insertion curves per method.")] = None,
    json: Json = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run.")] = False,
    overwrite: Overwrite = False,
    config: ConfigFile = None,
) -> None:
    """Score attribution maps: faithfulness (average drop / increase, deletion, insertion), localisation
    (EBPG, pointing game), agreement with human gaze (NSS, AUC-Judd, CC, KLD, SIM) and sparseness."""
    from shared.config import config_path_for, write_resolved_config
    from shared.evaluation import choose_metrics, evaluate_to_file
    from shared.stimuli import discover_stimuli
    from shared.storage import check_new_output

    options = resolved_options(ctx)
    require(options, "model", "images", "maps", "out")
    choose_metrics(metrics, boxes is not None, fixations is not None)
    found = discover_stimuli(images)
    if plot is not None:
        check_new_output(plot, overwrite)
    loaded = mo.load_model_from_options(model, source, weights, seed, device, image_size, mean, std)
    with progress_bar(f"evaluate {loaded.name}", unit="images") as update:
        result = evaluate_to_file(loaded, found, maps, out, metrics, boxes, fixations, step, gaze_sigma, batch_size,
                                  resume, overwrite, options, update)
    if plot is not None and {"deletion", "insertion"} & set(result.metrics):
        from fovex_cli.plots import curves_figure
        from shared.evaluation import read_curves

        curves_figure(read_curves(result.paths["curves"])[0], plot)
    write_resolved_config(config_path_for(out), "fovex evaluate", options)
    if json:
        print_json({"summary": result.summary, "files": result.paths})
    elif not state.quiet:
        print_summary(result)
    log.info("wrote %s, %s and %s", out, result.paths["summary"], result.paths["curves"])


def print_summary(result) -> None:
    """The paper's table on stderr: metrics as rows, methods as columns, the best per row marked."""
    from rich.console import Console

    from fovex_cli.plots import summary_table

    Console(stderr=True).print(summary_table(result.summary, result.labels, result.metrics))


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
    from shared.attribution.explain import ATTRIBUTIONS_KIND
    from shared.config import config_path_for, write_resolved_config
    from shared.errors import InputError
    from shared.shards import merge_rows, shard_outputs

    options = resolved_options(ctx)
    require(options, "out")
    paths = list(shards) if shards else shard_outputs(out)
    if not paths:
        raise InputError(f"no shard files (NAME.shard-I-of-N.h5) beside {out}; give the shard files as arguments")
    written = merge_rows(paths, out, ATTRIBUTIONS_KIND, overwrite)
    write_resolved_config(config_path_for(written), "fovex merge", options)
    log.info("merged %d shards into %s", len(paths), written)


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
    from fovex_cli.demo import run_demo

    with progress_bar("demo") as update:
        report = run_demo(out, device=device, overwrite=overwrite, options=resolved_options(ctx), progress=update)
    typer.echo(report)


from cli_common.info import info_command  # noqa: E402  (shared with the other tool)

app.command("info")(info_command)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    return run(app, "fovex", argv)
