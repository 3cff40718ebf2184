"""Extracting layer activations over a stimulus set, streamed to an HDF5 file.

Images are decoded and preprocessed in a background thread while the model runs on the
previous batch; each batch's rows are written as soon as they are computed, so peak
memory depends on the batch size and not on the number of stimuli.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .errors import ConfigError, InputError
from .models.layers import probe, run_layers, select_layers
from .models.loading import LoadedModel
from .provenance import provenance_attr
from .reduction import project, projection_matrix
from .shards import Shard, plan_shard
from .stimuli import Stimulus, fingerprint, load_image, load_video_frames
from .storage import ACTIVATIONS_KIND, DatasetSpec, RowWriter, check_new_output, json_attr

log = logging.getLogger(__name__)

TOKEN_MODES = ("auto", "cls", "mean", "all")
DTYPES = ("float32", "float16")


def _reduce_tokens(tensor: torch.Tensor, mode: str, prefix_tokens: int) -> torch.Tensor:
    """(n, tokens, dim) -> (n, dim) by the class token or the patch-token mean."""
    if tensor.ndim != 3 or mode == "all":
        return tensor
    if mode == "cls" or (mode == "auto" and prefix_tokens > 0):
        return tensor[:, 0]
    return tensor[:, prefix_tokens:].mean(dim=1)


@dataclass
class ExtractionPlan:
    """What to extract and how each layer's rows are shaped.

    Attributes
    ----------
    layers : list of str
        In execution order.
    tokens : {"auto", "cls", "mean", "all"}
        Reduction of transformer outputs (batch, tokens, dim): the class token, the
        mean of the patch tokens (prefix tokens excluded), or all tokens. `auto` takes
        the class token when the model has one, else the mean.
    frames : int
        Frames sampled evenly from each video.
    per_frame : bool
        Keep one row per frame (n, frames, ...) instead of the mean over frames.
    srp_components : int or None
        Sparse random projection of each layer with more features than this.
    seed : int
        Seed of the projection matrices.
    shapes : dict
        The stored shape of one stimulus's row per layer (filled by `plan_extraction`).
    """

    layers: list[str]
    tokens: str = "auto"
    frames: int = 8
    per_frame: bool = False
    srp_components: int | None = None
    seed: int = 0
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    _projections: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    def settings(self) -> dict:
        return {
            "layers": self.layers, "tokens": self.tokens, "frames": self.frames,
            "per_frame": self.per_frame, "srp_components": self.srp_components, "seed": self.seed,
        }

    def transform(self, name: str, tensor: torch.Tensor, prefix_tokens: int) -> torch.Tensor:
        """Rows as stored: tokens reduced, then projected when `srp_components` asks.
        With `per_frame`, the second axis holds frames and each frame is reduced alone."""
        if self.per_frame:
            n, f = tensor.shape[:2]
            tensor = _reduce_tokens(tensor.flatten(0, 1), self.tokens, prefix_tokens)
            tensor = tensor.reshape(n, f, *tensor.shape[1:])
            features = int(np.prod(tensor.shape[2:]))
        else:
            tensor = _reduce_tokens(tensor, self.tokens, prefix_tokens)
            features = int(np.prod(tensor.shape[1:]))
        if self.srp_components is None or features <= self.srp_components:
            return tensor
        matrix = self._projections.get(name)
        if matrix is None:
            matrix = projection_matrix(features, self.srp_components, self.seed, name).to(tensor.device)
            self._projections[name] = matrix
        lead = tensor.shape[:2] if self.per_frame else tensor.shape[:1]
        flat = tensor.reshape(int(np.prod(lead)), features).float()
        return project(flat, matrix).reshape(*lead, self.srp_components)


def plan_extraction(
    loaded: LoadedModel,
    layers: str | Sequence[str] = "top",
    tokens: str = "auto",
    frames: int = 8,
    per_frame: bool = False,
    srp_components: int | None = None,
) -> ExtractionPlan:
    """Validate the layer selection and options against the model before any work,
    and work out the stored shape of every layer (one blank image through the model)."""
    if tokens not in TOKEN_MODES:
        raise ConfigError(f"--tokens {tokens!r} is not one of {', '.join(TOKEN_MODES)}")
    if tokens == "cls" and loaded.prefix_tokens == 0:
        raise ConfigError(f"model {loaded.name} has no class token; use --tokens mean or all")
    if frames < 1:
        raise ConfigError(f"--frames must be at least 1, got {frames}")
    outputs = probe(loaded)
    names = select_layers(loaded, layers, list(outputs))
    if not names:
        raise ConfigError(f"the layer selection {layers!r} is empty for model {loaded.name}; name layers explicitly")
    plan = ExtractionPlan(names, tokens, frames, per_frame, srp_components, loaded.seed)
    for name in names:
        sample = outputs[name]
        if per_frame:  # a blank "video" shows the shape of a per-frame row
            sample = sample.unsqueeze(1).expand(-1, frames, *sample.shape[1:])
        plan.shapes[name] = tuple(plan.transform(name, sample, loaded.prefix_tokens).shape[1:])
    return plan




def _load_stimulus(stimulus: Stimulus, loaded: LoadedModel, plan: ExtractionPlan) -> torch.Tensor:
    """uint8 (frames, 3, H, W) for one stimulus, cropped: one frame for an image."""
    if stimulus.is_video:
        images = load_video_frames(stimulus.path, plan.frames)
    else:
        if plan.per_frame:
            raise InputError(f"--per-frame needs videos, but {stimulus.path} is an image")
        images = [load_image(stimulus.path)]
    return torch.stack([loaded.preprocessing.crop_image(image) for image in images])


def iter_activations(
    loaded: LoadedModel,
    stimuli: Sequence[Stimulus],
    plan: ExtractionPlan,
    batch_size: int = 32,
    start: int = 0,
    dtype: str = "float32",
) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Yield (first row, {layer: rows}) batch by batch from stimulus `start` on.

    A video's row is the mean over its sampled frames of the (token-reduced) layer
    output, or one row per frame with `plan.per_frame`.
    """
    _check_batch_size(batch_size)
    torch_dtype = getattr(torch, dtype)
    starts = list(range(start, len(stimuli), batch_size))

    def load(first: int) -> tuple[torch.Tensor, list[int]]:
        clips = [_load_stimulus(s, loaded, plan) for s in stimuli[first:first + batch_size]]
        return loaded.preprocessing.normalise(torch.cat(clips)), [clip.shape[0] for clip in clips]

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(load, starts[0]) if starts else None
        for index, first in enumerate(starts):
            batch, counts = pending.result()
            pending = pool.submit(load, starts[index + 1]) if index + 1 < len(starts) else None
            batch = batch.to(loaded.device, non_blocking=True)
            outputs = run_layers(loaded, batch, plan.layers)
            rows = {}
            for name in plan.layers:
                rows[name] = _per_stimulus(outputs[name], counts, plan, name, loaded)
                rows[name] = rows[name].to(torch_dtype).cpu().numpy()
            yield first, rows


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")


def _per_stimulus(tensor, counts, plan, name, loaded) -> torch.Tensor:
    with torch.inference_mode():
        if plan.per_frame:
            return plan.transform(name, tensor.reshape(len(counts), counts[0], *tensor.shape[1:]), loaded.prefix_tokens)
        tensor = plan.transform(name, tensor, loaded.prefix_tokens)
        if all(c == 1 for c in counts):
            return tensor
        owner = torch.repeat_interleave(torch.arange(len(counts), device=tensor.device), torch.tensor(counts, device=tensor.device))
        sums = torch.zeros(len(counts), *tensor.shape[1:], device=tensor.device, dtype=tensor.dtype).index_add_(0, owner, tensor)
        return sums / torch.tensor(counts, device=tensor.device, dtype=tensor.dtype).reshape(-1, *[1] * (tensor.ndim - 1))


def _layer_attrs(plan: ExtractionPlan, name: str) -> dict:
    projected = name in plan._projections  # filled by plan_extraction for the layers it projects
    return {"reduce": f"srp:{plan.srp_components}" if projected else "none"}


def extract_to_file(
    loaded: LoadedModel,
    stimuli: Sequence[Stimulus],
    plan: ExtractionPlan,
    out: str | Path,
    batch_size: int = 32,
    dtype: str = "float32",
    resume: bool = False,
    overwrite: bool = False,
    config: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
    shard: Shard | None = None,
) -> Path:
    """Extract and write the activations file `out` (layout: `/stimuli`, `/layers/<name>`).

    Parameters
    ----------
    progress : callable(done, total), optional
        Called once before the first batch and after every batch.
    resume : bool
        Continue `<out>.partial` left by an interrupted run with the same options; when
        `out` is complete already, nothing is done.
    shard : Shard, optional
        Extract only this shard's block of the stimuli, into `shard.path(out)`
        (`shared.shards`; `merge_rows` joins the shards).

    Returns the output path. The result equals an uninterrupted run bit for bit. Root
    attributes: the model, preprocessing and options, and `provenance` (JSON,
    `shared.provenance`; its inputs are the whole stimulus list, as `stimuli_sha256`).
    """
    if dtype not in DTYPES:
        raise ConfigError(f"--dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    _check_batch_size(batch_size)
    out = Path(out) if shard is None else shard.path(out)
    if resume and out.exists() and not overwrite:
        return out
    check_new_output(out, overwrite)
    if plan.per_frame and not all(s.is_video for s in stimuli):
        first = next(s for s in stimuli if not s.is_video)
        raise InputError(f"--per-frame needs videos, but {first.path} is an image")
    job = {
        **loaded.describe(), **plan.settings(), "dtype": dtype, "batch_size": batch_size,
        "device": loaded.device.type, "stimuli_sha256": fingerprint(stimuli),
    }
    total = len(stimuli)
    part = plan_shard(job, stimuli, shard)
    stimuli, signature = part.items, part.signature
    ids = [s.id for s in stimuli]
    specs = [DatasetSpec(f"layers/{name}", plan.shapes[name], dtype, _layer_attrs(plan, name)) for name in plan.layers]
    if overwrite and not resume:
        out.with_name(out.name + ".partial").unlink(missing_ok=True)
    writer = RowWriter(out, ACTIVATIONS_KIND, ids, specs, signature, resume, batch_rows=batch_size)
    if writer.rows_done:
        log.info("resuming %s at stimulus %d of %d", writer.partial, writer.rows_done + 1, len(ids))
    report = progress or (lambda done, total: None)
    with writer:
        report(writer.rows_done, len(ids))
        # Batch k is written in the background while batch k + 1 is computed; at most one
        # write is pending, so memory holds two batches of rows at most.
        with ThreadPoolExecutor(max_workers=1) as background:
            pending = None
            for first, rows in iter_activations(loaded, stimuli, plan, batch_size, writer.rows_done, dtype):
                if pending is not None:
                    pending.result()
                    report(writer.rows_done, len(ids))
                pending = background.submit(writer.write, first, {f"layers/{k}": v for k, v in rows.items()})
            if pending is not None:
                pending.result()
                report(writer.rows_done, len(ids))
        attrs = {
            "kind": ACTIVATIONS_KIND,
            "model": loaded.name, "source": loaded.source, "weights": loaded.weights, "seed": loaded.seed,
            "preprocessing": json_attr(loaded.preprocessing.as_dict()),
            "layers": json_attr(plan.layers), "tokens": plan.tokens, "frames": plan.frames,
            "per_frame": plan.per_frame, "reduce": f"srp:{plan.srp_components}" if plan.srp_components else "none",
            "dtype": dtype, "package_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "stimuli_sha256": job["stimuli_sha256"], "config": json_attr(config or {}), **part.attrs,
            "provenance": provenance_attr(config=config, seed=loaded.seed, device=loaded.device,
                                          inputs_sha256=job["stimuli_sha256"], inputs_count=total),
        }
        return writer.finish(attrs)
