"""`net2brain`: models, layers, extract, demo. Thin: options in, one core call, summary out."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Literal

import typer

from cli_common import model_options as mo
from net2brain_cli import analysis, searchlight
from cli_common.config import require, resolved_options, with_config
from cli_common.options import ConfigFile, Device, Overwrite, ShardSpec, sharded_output
from cli_common.output import Json, print_json
from cli_common.progress import progress_bar
from cli_common.runner import make_app, run

app = make_app("net2brain", "Compare the representations of deep vision networks with brain data.")
log = logging.getLogger("net2brain")



@app.command("models")
@with_config
def models_command(
    ctx: typer.Context,
    source: Annotated[Literal["torchvision", "timm"] | None, typer.Option(help="Only this source.")] = None,
    filter: Annotated[str | None, typer.Option("--filter", help="Only names containing this text.")] = None,
    json: Json = False,
    config: ConfigFile = None,
) -> None:
    """List every classification model torchvision and timm offer (source<TAB>name)."""
    from shared.models.zoo import list_models

    pairs = list_models(source, filter)
    if json:
        print_json([{"source": s, "name": name} for s, name in pairs])
    else:
        typer.echo("\n".join(f"{s}\t{name}" for s, name in pairs))
    log.info("%d models", len(pairs))


@app.command("layers")
@with_config
def layers_command(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name, module:function, or TorchScript file.")],
    source: mo.Source = "auto",
    image_size: mo.ImageSize = None,
    device: Device = "cpu",
    json: Json = False,
    config: ConfigFile = None,
) -> None:
    """List a model's layers in execution order with output shapes; '*' marks the default selection."""
    from shared.models.layers import list_layers
    from shared.models.loading import load_model

    loaded = load_model(model, source=source, weights=None, device=device, image_size=image_size)
    infos = list_layers(loaded)
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
    source: mo.Source = "auto",
    weights: mo.Weights = "pretrained",
    seed: mo.Seed = 0,
    device: mo.Device = "auto",
    image_size: mo.ImageSize = None,
    mean: mo.Mean = None,
    std: mo.Std = None,
    stimuli: Annotated[Path | None, typer.Option(help="Folder of images / videos, or a text file listing them.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output HDF5 file.")] = None,
    layers: Annotated[str, typer.Option(help="top, all, or NAME,NAME (see `net2brain layers MODEL`).")] = "top",
    batch_size: Annotated[int, typer.Option(help="Stimuli per forward pass.")] = 32,
    dtype: Annotated[Literal["float32", "float16"], typer.Option(help="Stored dtype.")] = "float32",
    tokens: Annotated[Literal["auto", "cls", "mean", "all"], typer.Option(
        help="Transformer outputs (batch, tokens, dim): class token, patch-token mean, or all tokens; "
        "auto = cls when the model has a class token, else mean.",
    )] = "auto",
    frames: Annotated[int, typer.Option(help="Frames sampled evenly from each video.")] = 8,
    per_frame: Annotated[bool, typer.Option("--per-frame", help="Keep each video frame's activations instead of their mean.")] = False,
    reduce: Annotated[str, typer.Option(help="none, or srp:N (seeded sparse random projection to N features per layer).")] = "none",
    shard: ShardSpec = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run.")] = False,
    overwrite: Overwrite = False,
    config: ConfigFile = None,
) -> None:
    """Extract layer activations over a stimulus set into an HDF5 file."""
    from shared.activations import extract_to_file, plan_extraction
    from shared.config import config_path_for, write_resolved_config
    from shared.reduction import parse_reduce
    from shared.stimuli import discover_stimuli

    options = resolved_options(ctx)
    require(options, "model", "stimuli", "out")
    part, target = sharded_output(out, shard, resume, overwrite)
    if target is None:
        return
    found = discover_stimuli(stimuli)
    srp = parse_reduce(reduce)
    loaded = mo.load_model_from_options(model, source, weights, seed, device, image_size, mean, std)
    plan = plan_extraction(loaded, layers, tokens, frames, per_frame, srp)
    with progress_bar(f"extract {loaded.name}") as update:
        path = extract_to_file(
            loaded, found, plan, out, batch_size=batch_size, dtype=dtype, resume=resume,
            overwrite=overwrite, config=options, progress=update, shard=part,
        )
    write_resolved_config(config_path_for(path), "net2brain extract", options)
    done = len(found) if part is None else len(part.take(found))
    log.info("wrote %s: %d stimuli x %d layers of %s on %s", path, done, len(plan.layers), loaded.name, loaded.device)


app.command("rdm")(analysis.rdm_command)
app.command("rsa")(analysis.rsa_command)
app.command("searchlight")(searchlight.searchlight_command)


@app.command("merge")
@with_config
def merge_command(
    ctx: typer.Context,
    shards: Annotated[list[Path] | None, typer.Argument(
        help="Shard files; default: every NAME.shard-I-of-N.EXT beside --out (or in the --out folder for searchlight).",
        show_default=False)] = None,
    out: Annotated[Path | None, typer.Option(
        help="The unsharded output: acts.h5 for extract, the --out-dir folder for searchlight.")] = None,
    overwrite: Overwrite = False,
    config: ConfigFile = None,
) -> None:
    """Join the shard outputs of `extract --shard` or `searchlight --shard` into what one run writes."""
    from shared.config import config_path_for, write_resolved_config
    from shared.shards import check_shards, merge_rows
    from shared.storage import ACTIVATIONS_KIND

    options = resolved_options(ctx)
    require(options, "out")
    paths = list(shards) if shards else _shards_beside(out)
    kind = check_shards(paths)[0][1].get("kind")
    if kind == ACTIVATIONS_KIND:
        written = merge_rows(paths, out, ACTIVATIONS_KIND, overwrite)
        write_resolved_config(config_path_for(written), "net2brain merge", options)
    elif kind == searchlight.SHARD_KIND:
        written = searchlight.merge_searchlight(paths, out, overwrite)
    else:
        from shared.errors import InputError

        raise InputError(f"{paths[0]} holds {kind}; net2brain merges extract and searchlight shards (fovex merge: explain)")
    log.info("merged %d shards into %s", len(paths), written)


def _shards_beside(out: Path) -> list[Path]:
    from shared.errors import InputError
    from shared.shards import shard_outputs

    found = shard_outputs(out) or (shard_outputs(out / searchlight.SHARD_NAME) if out.is_dir() else [])
    if not found:
        raise InputError(f"no shard files (NAME.shard-I-of-N.EXT) beside {out}; give the shard files as arguments")
    return found


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
    from net2brain_cli.demo import run_demo

    with progress_bar("demo") as update:
        report = run_demo(out, device=device, overwrite=overwrite, options=resolved_options(ctx), progress=update)
    typer.echo(report)


from cli_common.info import info_command  # noqa: E402  (shared with the other tool)

app.command("info")(info_command)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    return run(app, "net2brain", argv)
