"""Explaining a stimulus set with one attribution method, streamed to an HDF5 file.

Layout (`kind` = "attributions"): `/stimuli` (n,); `/maps` (n, H, W) float32 in [0, 1]
at the model's input resolution (the preprocessed, centre-cropped image); `/targets`
(n,) the explained class; `/scores` (n,) the softmax probability of the target on the
clean image; for FovEx `/fixations` (n, k, 2) in pixels (row, col) of that image, in
scan order. Root attributes: method, its parameters (JSON), model, source, weights,
preprocessing, seed, target, and the run's provenance.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..checks import check_range
from ..errors import ConfigError, InputError, ModelError, unknown_name
from ..extraction.stimuli import Stimulus, as_stimuli, fingerprint, load_image
from ..io.config import options_output, record_options
from ..io.hdf5 import ATTRIBUTIONS_KIND, json_attr, open_h5, read_stimuli
from ..io.locks import holds_outputs
from ..io.outputs import Output, check_outputs
from ..io.provenance import provenance_attr
from ..io.rows import DatasetSpec, RowWriter, check_partial
from ..io.shards import Shard, plan_output, plan_shard
from ..memory import check_memory
from ..models.layers import forward, image_memory, probe
from ..models.loading import LoadedModel, as_loaded, check_model_options, model_files
from ..models.sources import AUTO
from .base import Attribution, Context, check_precision, class_probabilities, logits_of
from .registry import METHODS, PRED, Method, parameters_for

__all__ = ["check_classifier", "Explanation", "explain_to_file", "explain_batch", "read_attributions", "load_images", "context_for",
           "parse_target", "check_images_only", "count_classes", "check_target", "PRED"]

log = logging.getLogger(__name__)


def check_images_only(stimuli: Sequence[Stimulus], parameter: str = "images") -> None:
    """Refuse video stimuli (`InputError`): explanations are for images."""
    for stimulus in stimuli:
        if stimulus.is_video:
            raise InputError(f"{stimulus.path} is a video; explanations are of images only: remove it from `{parameter}` "
                             "or list only images")


def parse_target(target: str | int) -> int | None:
    """`pred` -> None (the model's top-1 class), a class index -> that index."""
    if isinstance(target, int) or str(target).strip().lstrip("-").isdigit():
        value = int(target)
        if value < 0:
            raise ConfigError(f"`target` {value} is negative; give pred or a class index >= 0")
        return int(check_range("target", value))
    if str(target).strip() == PRED:
        return None
    raise ConfigError(f"`target` {target!r} is neither pred nor a class index; give `target=pred` or a whole number >= 0")


def check_classifier(loaded: LoadedModel) -> None:
    """`ModelError` for a model whose output is not class scores of an image (a
    segmentation, detection, depth, video, CLIP or Taskonomy model): explanations and
    their faithfulness explain a class score."""
    if loaded.class_scores and not loaded.is_video:
        return
    kind = f"a {loaded.task} model" if loaded.task else "not an image classifier"
    raise ModelError(f"model {loaded.name} is {kind} ({loaded.input} input, output not class scores); fovex explains "
                     "image classifiers: the classification and brain-inspired models of every source, and factories or "
                     "TorchScript files that return class scores")


def count_classes(loaded: LoadedModel, stimulus: Stimulus) -> int:
    """The number of classes of a model, from one forward pass on one image: run before
    any output is made, so that a model that fails (the user's own code) or a target it
    does not have stops the run at once (`ModelError`)."""
    with torch.no_grad():
        return logits_of(forward(loaded, load_images([stimulus], loaded).to(loaded.device))).shape[1]


def check_target(target: int | None, classes: int) -> None:
    """`ConfigError` for a class index the model does not have."""
    if target is not None and target >= classes:
        raise ConfigError(f"`target` {target} is out of range: the model has {classes} classes (0-{classes - 1})")


def _check_explanation_memory(loaded: LoadedModel, entry: Method, parameters: object, batch_size: int) -> None:
    """Refuse a run whose forward (and backward) passes cannot fit: the images one pass
    holds (`Method.pass_size`), each with the memory the model's layers need on it."""
    images = getattr(parameters, entry.pass_size) if entry.pass_size else batch_size
    crop = loaded.preprocessing.crop
    check_memory(images * image_memory(probe(loaded), crop, backward=entry.backward),
                 what=f"{entry.name} on {images} image(s) of {crop} x {crop} at a time",
                 lower=f"lower `{entry.pass_size or 'batch_size'}` (or `image_size`)")


def context_for(loaded: LoadedModel, seed: int) -> Context:
    """The normalised black pixel, prefix tokens and seed of a loaded model.

    Parameters
    ----------
    loaded : LoadedModel
    seed : int
        Seed of everything random in the method.

    Returns
    -------
    Context
        `black` is (0 - mean) / std of the model's preprocessing, a tensor (3,) on
        `loaded.device`.
    """
    mean = torch.tensor(loaded.preprocessing.mean, device=loaded.device)
    std = torch.tensor(loaded.preprocessing.std, device=loaded.device)
    return Context(black=-mean / std, prefix_tokens=loaded.prefix_tokens, seed=seed)


def explain_batch(
    model: torch.nn.Module, images: torch.Tensor, *, method: str, context: Context, target: int | None = None,
    parameters: Any = None,
) -> tuple[Attribution, torch.Tensor, torch.Tensor]:
    """(attribution, targets, clean-image probabilities of the targets) for one batch.

    Parameters
    ----------
    model : torch.nn.Module
    images : tensor (B, 3, H, W)
        Normalised as the model expects.
    method : str
        A name of `METHODS`.
    context : Context
    target : int or None
        The class to explain; None: each image's top-1 class.
    parameters : the method's parameters dataclass (or a mapping of its fields), optional
    """
    parameters = parameters_for(method, parameters)
    probabilities = class_probabilities(model, images)
    check_target(target, probabilities.shape[1])
    targets = probabilities.argmax(dim=1) if target is None else torch.full((len(images),), target, device=images.device)
    attribution = METHODS[method].load()(model, images, targets, context, parameters=parameters)
    scores = probabilities.gather(1, targets[:, None])[:, 0]
    return attribution, targets, scores


def load_images(stimuli: Sequence[Stimulus], loaded: LoadedModel) -> torch.Tensor:
    """The preprocessed batch of image stimuli (videos are refused).

    Parameters
    ----------
    stimuli : sequence of Stimulus
        Images, at least one.
    loaded : LoadedModel
        Its preprocessing resizes, centre-crops and normalises every image.

    Returns
    -------
    tensor (n, 3, crop, crop) float32
        On the CPU: callers move it to `loaded.device`.

    Raises
    ------
    InputError
        A video among `stimuli` (the message calls them `images`), or an image that cannot
        be decoded.
    """
    check_images_only(stimuli)
    crops = torch.stack([loaded.preprocessing.crop_image(load_image(s.path)) for s in stimuli])
    return loaded.preprocessing.normalise(crops)


@dataclass(frozen=True)
class Explanation:
    """What `explain_to_file` did.

    Attributes
    ----------
    path : Path
        The attribution file (a shard's own file for a shard).
    images : int
        Images explained in it.
    parameters : the method's parameters (with the CAM layer chosen), or None when a
        resumed run found the file complete
    model : LoadedModel or None
    overlays : list of Path
    """

    path: Path
    images: int
    parameters: Any = None
    model: LoadedModel | None = None
    overlays: tuple[Path, ...] = ()


@holds_outputs
def explain_to_file(
    model: str | LoadedModel,
    images: str | Path | Sequence[Stimulus],
    out: str | Path,
    *,
    source: str = AUTO,
    weights: str = "pretrained",
    seed: int = 42,
    device: str = "auto",
    image_size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    crop_pct: float | None = None,
    interpolation: str | None = None,
    resize_mode: str | None = None,
    method: str = METHODS.default,
    parameters: Any = None,
    target: str | int = PRED,
    batch_size: int = 16,
    png_dir: str | Path | None = None,
    shard: str | Shard | None = None,
    resume: bool = False,
    overwrite: bool = False,
    config: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Explanation:
    """Explain the model's decision on every image and write the attribution file `out`
    (see the module docstring); resumable like `extract_to_file`.

    Parameters
    ----------
    model : str or LoadedModel
        A model as `load_model` takes it (with `source`, `weights`, `seed`, `device`,
        `image_size`, `mean`, `std`, `crop_pct`, `interpolation`, `resize_mode`), or a model
        loaded already.
    images : path or sequence of Stimulus
        A folder of images or a list file, or the stimuli.
    out : path
        The HDF5 file to write.
    seed : int, default 42
        Seeds random weights and the method (the reference's seed).
    method : str, default "fovex"
        A name of `METHODS`.
    parameters : optional
        The method's parameters dataclass, or a mapping of its fields (default: its
        defaults). A CAM method without a layer gets `target_layer`'s, chosen once.
    target : str or int, default "pred"
        `pred` (each image's top-1 class on the clean image) or a class index.
    batch_size : int, default 16
        Images explained together.
    png_dir : path, optional
        A folder for one overlay PNG per image (the map, FovEx's scan path).
    shard : str or Shard, optional
        `I/N` or `auto`: only this block of the images, into `Shard.path(out)`.
    resume, overwrite : bool
        Continue an interrupted run; replace existing outputs.
    config : dict, optional
        The resolved options, recorded in the file and beside it.
    progress : callable (done, total), optional

    Returns
    -------
    Explanation

    Raises
    ------
    ConfigError, UnknownNameError, InputError, OutputError, ModelError
        Options, output, images and overlays are checked before the model is built.
    """
    entry = METHODS[method]
    entry.require()  # an optional library (the cam:* methods' pytorch-grad-cam) before anything else
    chosen = parameters_for(method, parameters)
    check_range("batch_size", batch_size)
    model_options = dict(image_size=image_size, mean=mean, std=std, crop_pct=crop_pct, interpolation=interpolation,
                         resize_mode=resize_mode)
    check_model_options(source=source, seed=seed, **model_options)
    wanted = parse_target(target)
    output = plan_output(out, shard, resume=resume, overwrite=overwrite)
    if output.complete:
        return Explanation(output.path, _image_count(output.path))
    found = as_stimuli(images, "images")
    check_images_only(found)
    done = found if output.shard is None else output.shard.take(found)
    outputs = [Output("out", output.path, "hdf5"), *options_output(output.path, config, replaceable=resume)]
    if png_dir is not None:
        from ..figures.overlays import overlay_outputs

        outputs += overlay_outputs(done, Path(png_dir))  # the folder is made when the maps are done
    check_partial(output.path, resume=resume, overwrite=overwrite)
    check_outputs(outputs, {"images": [images if isinstance(images, (str, Path)) else None, *(s.path for s in found)],
                            "model": model_files(model, weights)}, overwrite=overwrite)
    loaded = as_loaded(model, source=source, weights=weights, seed=seed, device=device, **model_options)
    check_classifier(loaded)
    if found:
        check_target(wanted, count_classes(loaded, found[0]))
    _check_explanation_memory(loaded, entry, chosen, batch_size)
    check_precision(getattr(chosen, "precision", "fp32"), loaded.device)  # fp16 on a CPU, before any output
    size = loaded.preprocessing.crop
    specs = [DatasetSpec("maps", (size, size), "float32"), DatasetSpec("targets", (), "int64"),
             DatasetSpec("scores", (), "float32")]
    if entry.fixations:
        specs.append(DatasetSpec("fixations", (chosen.scanpath_length, 2), "float32"))
    if entry.layer:
        chosen = replace(chosen, layer=_cam_layer(loaded, chosen.layer, size))
    job = {**loaded.describe(), "method": method, "parameters": asdict(chosen), "target": wanted, "seed": seed,
           "batch_size": batch_size, "stimuli_sha256": fingerprint(found)}
    part = plan_shard(job, found, output.shard)
    stimuli = part.items
    if overwrite:
        output.path.with_name(output.path.name + ".partial").unlink(missing_ok=True)
    writer = RowWriter(output.path, ATTRIBUTIONS_KIND, [s.id for s in stimuli], specs, part.signature, resume,
                       batch_rows=batch_size)
    if writer.rows_done:
        log.info("resuming %s at image %d of %d", writer.partial, writer.rows_done + 1, len(stimuli))
    report = progress or (lambda done, total: None)
    context = context_for(loaded, seed)
    with writer:
        report(writer.rows_done, len(stimuli))
        starts = range(writer.rows_done, len(stimuli), batch_size)
        with ThreadPoolExecutor(max_workers=1) as reader:
            pending = reader.submit(load_images, stimuli[starts[0]:starts[0] + batch_size], loaded) if starts else None
            for number, start in enumerate(starts):
                batch = pending.result().to(loaded.device)
                if number + 1 < len(starts):
                    following = stimuli[starts[number + 1]:starts[number + 1] + batch_size]
                    pending = reader.submit(load_images, following, loaded)
                attribution, targets, scores = explain_batch(loaded.module, batch, method=method, context=context,
                                                             target=wanted, parameters=chosen)
                rows = {"maps": attribution.maps.cpu().numpy(), "targets": targets.cpu().numpy(),
                        "scores": scores.cpu().numpy()}
                if attribution.fixations is not None:
                    rows["fixations"] = attribution.fixations.cpu().numpy()
                writer.write(start, rows)
                report(writer.rows_done, len(stimuli))
        attrs = {
            "kind": ATTRIBUTIONS_KIND, "method": method, "parameters": json_attr(asdict(chosen)),
            "model": loaded.name, "source": loaded.source, "weights": loaded.weights,
            "preprocessing": json_attr(loaded.preprocessing.as_dict()), "target": PRED if wanted is None else wanted,
            "seed": seed, "package_version": __version__, "stimuli_sha256": job["stimuli_sha256"],
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "config": json_attr(config or {}),
            **part.attrs,
            "provenance": provenance_attr(config=config, seed=seed, device=loaded.device,
                                          inputs_sha256=job["stimuli_sha256"], inputs_count=len(found)),
        }
        path = writer.finish(attrs)
    overlays: list[Path] = []
    if png_dir is not None:
        from ..figures.overlays import write_overlays

        Path(png_dir).mkdir(parents=True, exist_ok=True)
        overlays = write_overlays(path, done, Path(png_dir), preprocessing=loaded.preprocessing, overwrite=overwrite)
    record_options(path, config)
    return Explanation(path, len(stimuli), chosen, loaded, tuple(overlays))


def _cam_layer(loaded: LoadedModel, layer: str | None, size: int) -> str:
    """The given CAM layer, checked, or `target_layer`'s choice, made once per run (it
    costs a forward and backward pass) and recorded."""
    from .methods.cam import LAYER_HINT, target_layer

    if layer is None:
        return target_layer(loaded.module, (1, 3, size, size), loaded.prefix_tokens)
    names = [name for name, _ in loaded.module.named_modules() if name]
    if layer not in names:
        raise unknown_name("layer", layer, names, hint=LAYER_HINT)
    return layer


def _image_count(path: Path) -> int:
    with open_h5(path, ATTRIBUTIONS_KIND) as file:
        return len(read_stimuli(file))


def read_attributions(path: str | Path) -> dict[str, np.ndarray | list]:
    """An attribution file in memory: stimuli, maps, targets, scores [, fixations] and attrs."""
    with open_h5(path, ATTRIBUTIONS_KIND) as file:
        result = {"stimuli": read_stimuli(file), "attrs": dict(file.attrs)}
        for name in ("maps", "targets", "scores", "fixations"):
            if name in file:
                result[name] = file[name][()]
        return result
