"""`net2brain encode`: cross-validated encoding models from layer activations to brain responses."""
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
from net2brain_fovex.brain.registry import ENCODING_MODELS, INNER_CVS

log = logging.getLogger("net2brain")
# options of the fits, refused in prediction mode (--predict)
_FIT_ONLY = ("betas", "mask", "rois", "responses", "key", "repetitions", "stimuli", "test_stimuli", "partition",
             "save_models", "plot", "background", "out_dir", "resume", "shard")


@with_config
def encode_command(
    ctx: typer.Context,
    activations: Annotated[Path | None, typer.Option(help="Activations file (`net2brain extract` output).")] = None,
    layers: Annotated[str, typer.Option(help="all, or NAME,NAME of the activations' layers.")] = "all",
    betas: Annotated[list[Path] | None, typer.Option(
        help="A subject's 4D NIfTI, one volume per stimulus (repeat per subject).")] = None,
    mask: Annotated[Path | None, typer.Option(
        help="3D mask of the voxels to fit; default: the union of --rois, else the voxels with finite, non-constant "
             "responses in every subject.")] = None,
    rois: Annotated[list[Path] | None, typer.Option(help="A 3D ROI mask to summarise (repeat per ROI).")] = None,
    responses: Annotated[list[Path] | None, typer.Option(
        help="A subject's responses: .npy/.npz/.mat/.h5, stimuli x channels [x time] (repeat per subject).")] = None,
    key: Annotated[str | None, typer.Option(help="The array inside each --responses file.")] = None,
    roi: Annotated[str, typer.Option(help="The summary's name of the --responses channels.")] = "responses",
    repetitions: Annotated[bool, typer.Option(
        "--repetitions", help="The last axis of --responses holds repetitions: fit their mean, report the noise "
                              "ceiling.")] = False,
    stimuli: Annotated[Path | None, typer.Option(
        help="The stimulus order of the brain data (list file or folder); reordered to the activations' order.")] = None,
    test_stimuli: Annotated[Path | None, typer.Option(
        help="A text file of stimulus ids, one a line: a fixed test set instead of --folds.")] = None,
    model: Annotated[choice(ENCODING_MODELS), typer.Option(help=choice_help(ENCODING_MODELS))] = "ridge",
    folds: Annotated[int, typer.Option(help=ranged("Outer cross-validation folds over stimuli.", "folds"))] = 5,
    alphas: Annotated[str | None, typer.Option(
        help="Ridge penalties A,B,... (default: 25 log-spaced from 1e-3 to 1e9), chosen per target by inner CV.")] = None,
    reduce: Annotated[str | None, typer.Option(
        help="pca:N or srp:N: reduce each layer to N features, fitted on the training stimuli of each fold.")] = None,
    inner: Annotated[choice(INNER_CVS), typer.Option(
        help="How each target's ridge alpha is chosen on the training stimuli: " + choice_help(INNER_CVS))] = "gcv",
    inner_folds: Annotated[int, typer.Option(
        help=ranged("Folds of --inner kfold and of --partition (shuffled, seeded).", "inner_folds"))] = 5,
    seed: Annotated[int, typer.Option(help=ranged("Seed of the folds, the inner folds and SRP.", "seed"))] = 0,
    partition: Annotated[str | None, typer.Option(
        help="A,B[,C]: variance partitioning of these layers (or FILE:LAYER of other activations files) instead of "
             "the per-layer fits.")] = None,
    save_models: Annotated[bool, typer.Option(
        "--save-models", help="Also write <subject>_<layer>_model.h5 (refitted on all stimuli) for --predict.")] = False,
    plot: Annotated[Path | None, typer.Option(
        help="A figure (.png/.pdf/.svg): the layer profile per ROI, or with --partition unique and shared R^2; with "
             "--betas also each R^2 map (several subjects: each group mean r map) as a brain picture, <map>.png.")] = None,
    background: Background = None,
    predict: Annotated[Path | None, typer.Option(
        help="Prediction mode: a --save-models file; predicts the responses to the stimuli of --activations "
             "into --out.")] = None,
    out: Annotated[Path | None, typer.Option(
        help="With --predict: the predictions, .nii.gz/.nii (a 4D volume, for a model of --betas), .npy or .h5.")] = None,
    device: Device = "auto",
    out_dir: Annotated[Path | None, typer.Option(help="Folder for the maps or tables and summary.csv (created).")] = None,
    shard: ShardSpec = None,  # a share of the (layer, target chunk) fits -> OUT_DIR/encode.shard-I-of-N.h5
    resume: Annotated[bool, typer.Option("--resume", help="Keep the results an interrupted run wrote; fit the rest.")] = False,
    json: Json = False,
    overwrite: Overwrite = False,
    config: ConfigFile = None,
) -> None:
    """Encoding models: per subject and layer, held-out r and R^2 maps (or tables), group maps, and a summary;
    variance partitioning (--partition); predictions of saved models (--predict)."""
    from net2brain_fovex.brain.encoding_files import encode_to_file, predict_to_file
    from net2brain_fovex.errors import ConfigError

    options = resolved_options(ctx)
    if predict is not None:
        fitting = [name for name in _FIT_ONLY if options.get(name) not in (None, False, [], ())]
        if fitting:
            raise ConfigError(f"--predict makes predictions from a saved model; --{fitting[0].replace('_', '-')} is an "
                              "option of the fits: leave it out (or drop --predict)")
        require(options, "activations", "out")
        written = predict_to_file(predict, activations, out, layers=layers, overwrite=overwrite, config=options)
        if json:
            print_json({"files": {"predictions": written}})
        return
    if out is not None:
        raise ConfigError("--out is the predictions file of --predict; the fits write to --out-dir")
    require(options, "activations", "out_dir")
    with progress_bar("encode", unit="fits") as update:
        result = encode_to_file(
            activations, out_dir, layers=layers, betas=betas, mask=mask, rois=rois, responses=responses, key=key,
            roi=roi, repetitions=repetitions, stimuli=stimuli, test_stimuli=test_stimuli, model=model, folds=folds,
            inner=inner, inner_folds=inner_folds,
            alphas=alphas, reduce=reduce, seed=seed, partition=partition, save_models=save_models, plot=plot,
            background=background, device=device, shard=shard, overwrite=overwrite, resume=resume,
            config=options, progress=update,
        )
    if result.shard_file is not None:
        log.info("when every shard is done, join them with `net2brain merge --out %s`", out_dir)
        return
    for name, row in result.best.items():
        log.info("best layer for %s: %s (mean r %.4f%s)", name, row["layer"], row["mean_r"],
                 f", {row['pct_of_nc']:.1f} % of the noise ceiling" if "pct_of_nc" in row else "")
    if json:
        print_json({"summary": result.summary, "best": result.best,
                    "files": {"summary": result.out_dir / "summary.csv", "maps": result.files}})
