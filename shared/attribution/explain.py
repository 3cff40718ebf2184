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
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..errors import ConfigError, InputError, unknown_name
from ..models.loading import LoadedModel
from ..provenance import provenance_attr
from ..shards import Shard, plan_shard
from ..stimuli import Stimulus, fingerprint, load_image
from ..storage import DatasetSpec, RowWriter, check_new_output, json_attr
from .base import Attribution, Context, class_probabilities

log = logging.getLogger(__name__)
ATTRIBUTIONS_KIND = "attributions"
METHODS = ("fovex", "gradcam", "gradcam++", "rise", "random")


def method_function(name: str) -> Callable[..., Attribution]:
    """The explain function of a method by name (imported on demand)."""
    if name not in METHODS:
        raise unknown_name("method", name, METHODS)
    if name == "fovex":
        from .fovex import explain

        return explain
    if name == "rise":
        from .rise import rise

        return rise
    from . import cam

    return {"gradcam": cam.gradcam, "gradcam++": cam.gradcam_plus_plus, "random": cam.random_cam}[name]


def check_parameters(method: str, parameters: dict) -> None:
    """Refuse a method's hyper-parameters out of range (`ConfigError`), before any work."""
    method_function(method)
    if method == "fovex":
        from .fovex import FovExParameters

        FovExParameters(**parameters)
    elif method == "rise":
        from .rise import _check_parameters

        _check_parameters(**parameters)


def check_images_only(stimuli: Sequence[Stimulus]) -> None:
    """Refuse video stimuli (`InputError`): explanations are for images."""
    for stimulus in stimuli:
        if stimulus.is_video:
            raise InputError(
                f"{stimulus.path} is a video; fovex explains images only: remove it from --images or list only images"
            )


def parse_target(target: str | int) -> int | None:
    """`pred` -> None (the model's top-1 class), a class index -> that index."""
    if isinstance(target, int) or str(target).strip().lstrip("-").isdigit():
        value = int(target)
        if value < 0:
            raise ConfigError(f"--target {value} is negative; give pred or a class index >= 0")
        return value
    if str(target).strip() == "pred":
        return None
    raise ConfigError(f"--target {target!r} is neither pred nor a class index; give --target pred or a whole number >= 0")


def context_for(loaded: LoadedModel, seed: int) -> Context:
    """The normalised black pixel, prefix tokens and seed of a loaded model."""
    mean = torch.tensor(loaded.preprocessing.mean, device=loaded.device)
    std = torch.tensor(loaded.preprocessing.std, device=loaded.device)
    return Context(black=-mean / std, prefix_tokens=loaded.prefix_tokens, seed=seed)


def explain_batch(
    method: str, model: torch.nn.Module, images: torch.Tensor, target: int | None, context: Context, parameters: dict
) -> tuple[Attribution, torch.Tensor, torch.Tensor]:
    """(attribution, targets, clean-image probabilities of the targets) for one batch."""
    probabilities = class_probabilities(model, images)
    if target is not None and target >= probabilities.shape[1]:
        raise ConfigError(f"--target {target} is out of range: the model has {probabilities.shape[1]} classes (0-{probabilities.shape[1] - 1})")
    targets = probabilities.argmax(dim=1) if target is None else torch.full((len(images),), target, device=images.device)
    attribution = method_function(method)(model, images, targets, context, **parameters)
    scores = probabilities.gather(1, targets[:, None])[:, 0]
    return attribution, targets, scores


def load_images(stimuli: Sequence[Stimulus], loaded: LoadedModel) -> torch.Tensor:
    """The preprocessed batch of image stimuli (videos are refused)."""
    check_images_only(stimuli)
    crops = torch.stack([loaded.preprocessing.crop_image(load_image(s.path)) for s in stimuli])
    return loaded.preprocessing.normalise(crops)


def explain_to_file(
    loaded: LoadedModel,
    stimuli: Sequence[Stimulus],
    method: str,
    parameters: dict,
    out: str | Path,
    target: int | None = None,
    seed: int = 0,
    batch_size: int = 16,
    resume: bool = False,
    overwrite: bool = False,
    config: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
    shard: Shard | None = None,
) -> Path:
    """Explain every stimulus and write the attribution file `out` (see the module
    docstring); resumable like `extract_to_file`. With a `shard`, only its block of the
    stimuli, into `shard.path(out)` (`shared.shards`)."""
    check_parameters(method, parameters)
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    check_images_only(stimuli)
    out = Path(out) if shard is None else shard.path(out)
    if resume and out.exists() and not overwrite:
        return out
    check_new_output(out, overwrite)
    size = loaded.preprocessing.crop
    specs = [DatasetSpec("maps", (size, size), "float32"), DatasetSpec("targets", (), "int64"), DatasetSpec("scores", (), "float32")]
    if method == "fovex":
        from .fovex import FovExParameters

        steps = FovExParameters(**parameters).scanpath_length  # also validates the parameters up front
        specs.append(DatasetSpec("fixations", (steps, 2), "float32"))
    if method in ("gradcam", "gradcam++", "random") and parameters.get("layer") is not None:
        from .cam import LAYER_HINT

        names = [name for name, _ in loaded.module.named_modules() if name]
        if parameters["layer"] not in names:
            raise unknown_name("layer", parameters["layer"], names, LAYER_HINT)
    if method in ("gradcam", "gradcam++", "random") and parameters.get("layer") is None:
        from .cam import target_layer

        # chosen once per run (it costs a forward and backward pass), and recorded
        parameters = {**parameters, "layer": target_layer(loaded.module, (1, 3, size, size), loaded.prefix_tokens)}
    job = {**loaded.describe(), "method": method, "parameters": parameters, "target": target, "seed": seed,
           "batch_size": batch_size, "stimuli_sha256": fingerprint(stimuli)}
    total = len(stimuli)
    part = plan_shard(job, stimuli, shard)
    stimuli, signature = part.items, part.signature
    if overwrite and not resume:
        out.with_name(out.name + ".partial").unlink(missing_ok=True)
    writer = RowWriter(out, ATTRIBUTIONS_KIND, [s.id for s in stimuli], specs, signature, resume, batch_rows=batch_size)
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
                images = pending.result().to(loaded.device)
                if number + 1 < len(starts):
                    pending = reader.submit(load_images, stimuli[starts[number + 1]:starts[number + 1] + batch_size], loaded)
                attribution, targets, scores = explain_batch(method, loaded.module, images, target, context, parameters)
                rows = {"maps": attribution.maps.cpu().numpy(), "targets": targets.cpu().numpy(), "scores": scores.cpu().numpy()}
                if attribution.fixations is not None:
                    rows["fixations"] = attribution.fixations.cpu().numpy()
                writer.write(start, rows)
                report(writer.rows_done, len(stimuli))
        attrs = {
            "kind": ATTRIBUTIONS_KIND, "method": method, "parameters": json_attr(parameters),
            "model": loaded.name, "source": loaded.source, "weights": loaded.weights,
            "preprocessing": json_attr(loaded.preprocessing.as_dict()), "target": "pred" if target is None else target,
            "seed": seed, "package_version": __version__, "stimuli_sha256": job["stimuli_sha256"],
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "config": json_attr(config or {}),
            **part.attrs,
            "provenance": provenance_attr(config=config, seed=seed, device=loaded.device,
                                          inputs_sha256=job["stimuli_sha256"], inputs_count=total),
        }
        return writer.finish(attrs)


def read_attributions(path: str | Path) -> dict[str, np.ndarray | list]:
    """An attribution file in memory: stimuli, maps, targets, scores [, fixations] and attrs."""
    from ..storage import open_h5, read_stimuli

    with open_h5(path, ATTRIBUTIONS_KIND) as file:
        result = {"stimuli": read_stimuli(file), "attrs": dict(file.attrs)}
        for name in ("maps", "targets", "scores", "fixations"):
            if name in file:
                result[name] = file[name][()]
        return result
