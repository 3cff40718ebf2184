"""`net2brain`: models, layers, extract, demo. Thin: options in, one core call, summary out."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from cli_common import model_options as mo
from cli_common.choices import choice, choice_help, ranged
from cli_common.config_merge import require, resolved_options, with_config
from cli_common.options import ConfigFile, Device, Overwrite, ShardSpec
from cli_common.output import Json, print_json
from cli_common.progress import progress_bar
from cli_common.runner import make_app, run
from net2brain_cli.cka import cka_command
from net2brain_cli.convert import convert_command
from net2brain_cli.encode import encode_command
from net2brain_cli.rdm import rdm_command
from net2brain_cli.rsa import rsa_command
from net2brain_cli.searchlight import searchlight_command
from net2brain_fovex.extraction.registry import DTYPES, TIMES, TOKENS
from net2brain_fovex.models.registry import TASKS
from net2brain_fovex.models.sources import AUTO, SOURCES

app = make_app("net2brain", "Compare the representations of deep vision networks with brain data.")
log = logging.getLogger("net2brain")



@app.command("models")
@with_config
def models_command(
    ctx: typer.Context,
    source: Annotated[choice(SOURCES) | None, typer.Option(help="Only this source.")] = None,
    task: Annotated[choice(TASKS) | None, typer.Option(help=choice_help(TASKS, "Only this task:"))] = None,
    filter: Annotated[str | None, typer.Option("--filter", help="Only names containing this text.")] = None,
    json: Json = False,
    config: ConfigFile = None,
) -> None:
    """List every model the sources offer: source, name, task, input (image or video), and
    whether pretrained weights exist (yes / no)."""
    from collections import Counter

    from net2brain_fovex.models.sources import list_models

    pairs = list_models(source, filter, task)
    if json:
        print_json([{"source": s, "name": m.name, "task": m.task, "input": m.input, "pretrained": m.pretrained}
                    for s, m in pairs])
    else:
        typer.echo("\n".join(f"{s}\t{m.name}\t{m.task}\t{m.input}\t{'yes' if m.pretrained else 'no'}"
                              for s, m in pairs))
    counts = Counter(m.task for _, m in pairs)
    log.info("%d models: %s", len(pairs), ", ".join(f"{name} {counts[name]}" for name in TASKS if counts[name]))
    if source in (None, "hf"):
        log.info("hf: any hub id or saved folder of a supported architecture works, listed or not")


@app.command("layers")
@with_config
def layers_command(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name, module:function, or TorchScript file.")],
    pretrained_tag: mo.PretrainedTag = None,
    source: mo.Source = AUTO,
    image_size: mo.ImageSize = None,
    device: Device = "cpu",
    json: Json = False,
    config: ConfigFile = None,
) -> None:
    """List a model's layers in execution order with output shapes; '*' marks the default selection."""
    from net2brain_fovex.models.layers import list_layers

    infos = list_layers(mo.model_name(model, pretrained_tag), source=source, device=device, image_size=image_size)
    if json:
        print_json([{"name": i.name, "shape": list(i.shape), "default": bool(i.top)} for i in infos])
        return
    width = max(len(info.name) for info in infos)
    for info in infos:
        shape = " x ".join(map(str, info.shape)) or "scalar"
        typer.echo(f"{'*' if info.top else ' '} {info.name:<{width}}  {shape}")
    log.info("%d layers; * = default selection (%d)", len(infos), sum(i.top for i in infos))


@app.command("extract")
@with_config
def extract_command(
    ctx: typer.Context,
    model: mo.Model = None,
    pretrained_tag: mo.PretrainedTag = None,
    source: mo.Source = AUTO,
    weights: mo.Weights = "pretrained",
    seed: mo.Seed = 0,
    device: mo.Device = "auto",
    image_size: mo.ImageSize = None,
    crop_pct: mo.CropPct = None,
    interpolation: mo.Interpolation = None,
    resize_mode: mo.ResizeMode = None,
    mean: mo.Mean = None,
    std: mo.Std = None,
    stimuli: Annotated[Path | None, typer.Option(help="Folder of images / videos, or a text file listing them.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output HDF5 file.")] = None,
    layers: Annotated[str, typer.Option(help="top, all, or NAME,NAME (see `net2brain layers MODEL`).")] = "top",
    batch_size: Annotated[int, typer.Option(help=ranged("Stimuli per forward pass.", "batch_size"))] = 32,
    dtype: Annotated[choice(DTYPES), typer.Option(help=choice_help(DTYPES, "Stored dtype:"))] = DTYPES.default,
    tokens: Annotated[choice(TOKENS), typer.Option(
        help=choice_help(TOKENS, "Transformer outputs (batch, tokens, dim):"))] = TOKENS.default,
    frames: Annotated[int | None, typer.Option(help=ranged(
        "Image models: frames sampled evenly from each video (default 8); video models: frames per clip (default: "
        "the model's clip length).", "frames"))] = None,
    per_frame: Annotated[bool, typer.Option("--per-frame", help="Image models: keep each video frame's activations instead of their mean.")] = False,
    clips: Annotated[int, typer.Option(help=ranged("Video models: clips per video, evenly spaced, averaged.", "clips"))] = 1,
    per_clip: Annotated[bool, typer.Option("--per-clip", help="Video models: keep each clip's activations instead of their mean.")] = False,
    time: Annotated[choice(TIMES), typer.Option(help=choice_help(TIMES, "Layer outputs with a time axis:"))] = "mean",
    reduce: Annotated[str, typer.Option(help="none, or srp:N (seeded sparse random projection to N features per layer).")] = "none",
    shard: ShardSpec = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run.")] = False,
    overwrite: Overwrite = False,
    config: ConfigFile = None,
) -> None:
    """Extract layer activations over a stimulus set into an HDF5 file."""
    from net2brain_fovex.extraction.activations import extract_to_file

    options = resolved_options(ctx)
    require(options, "model", "stimuli", "out")
    model = mo.model_name(model, pretrained_tag)
    with progress_bar(f"extract {model}") as update:
        result = extract_to_file(
            model, stimuli, out, source=source, weights=weights, seed=seed, device=device, image_size=image_size,
            crop_pct=crop_pct, interpolation=interpolation, resize_mode=resize_mode,
            mean=mo.parse_triple("mean", mean), std=mo.parse_triple("std", std), layers=layers, tokens=tokens,
            frames=frames, per_frame=per_frame, clips=clips, per_clip=per_clip, time=time, reduce=reduce,
            batch_size=batch_size, dtype=dtype, shard=shard, resume=resume, overwrite=overwrite, config=options,
            progress=update,
        )
    if result.model is not None:
        log.info("wrote %s: %d stimuli x %d layers of %s on %s", result.path, result.stimuli, len(result.plan.layers),
                 result.model.name, result.model.device)


app.command("rdm")(rdm_command)
app.command("rsa")(rsa_command)
app.command("cka")(cka_command)
app.command("searchlight")(searchlight_command)
app.command("encode")(encode_command)
app.command("convert")(convert_command)


@app.command("merge")
@with_config
def merge_command(
    ctx: typer.Context,
    shards: Annotated[list[Path] | None, typer.Argument(
        help="Shard files; default: every NAME.shard-I-of-N.EXT beside --out (or in the --out folder for searchlight "
             "and encode).",
        show_default=False)] = None,
    out: Annotated[Path | None, typer.Option(
        help="The unsharded output: acts.h5 for extract, the --out-dir folder for searchlight and encode.")] = None,
    overwrite: Overwrite = False,
    config: ConfigFile = None,
) -> None:
    """Join the shard outputs of `extract --shard`, `searchlight --shard` or `encode --shard` into what one run
    writes."""
    from net2brain_fovex.io.hdf5 import ACTIVATIONS_KIND, ENCODE_SHARD_KIND, SEARCHLIGHT_SHARD_KIND
    from net2brain_fovex.io.shards import merge_shards

    options = resolved_options(ctx)
    require(options, "out")
    written = merge_shards(out, shards, kinds=(ACTIVATIONS_KIND, SEARCHLIGHT_SHARD_KIND, ENCODE_SHARD_KIND),
                           overwrite=overwrite, config=options)
    log.info("merged the shards into %s", written)


@app.command("demo")
@with_config
def demo_command(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Folder for the demo's files (created).")] = Path("net2brain-demo"),
    device: mo.Device = "auto",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace earlier demo outputs.")] = False,
    config: ConfigFile = None,
) -> None:
    """Run the pipeline on generated stimuli with a random ResNet-18 (no downloads needed).

    Writes 24 shape stimuli with their factors and their activations, and prints what the files hold.
    """
    from net2brain_fovex.demo.net2brain_demo import run_net2brain_demo

    with progress_bar("demo") as update:
        report = run_net2brain_demo(out, device=device, overwrite=overwrite, config=resolved_options(ctx),
                                    progress=update)
    typer.echo(report)


from cli_common.info import info_command  # noqa: E402  (shared with the other tool)

app.command("info")(info_command)

from cli_common.report import report_command  # noqa: E402  (shared with the other tool)

app.command("report")(report_command)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    return run(app, "net2brain", argv)
