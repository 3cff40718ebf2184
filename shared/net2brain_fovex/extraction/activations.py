"""Extracting layer activations over a stimulus set, streamed to an HDF5 file.

Images are decoded and preprocessed in a background thread while the model runs on the
previous batch; each batch's rows are written as soon as they are computed, so peak
memory depends on the batch size and not on the number of stimuli.

Layout (`kind` = "activations"): `/stimuli` (n,) ids; `/layers/<name>` (n, ...) one
dataset per layer in execution order, with attribute `reduce`; root attributes: the
model, preprocessing and options, and `provenance`.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np
import torch

from .. import __version__
from ..checks import check_range
from ..errors import ConfigError, InputError, ModelError
from ..io.config import options_output, record_options
from ..io.hdf5 import ACTIVATIONS_KIND, check_name, json_attr, open_h5, read_stimuli
from ..io.locks import holds_outputs
from ..io.outputs import Output, check_outputs
from ..io.provenance import provenance_attr
from ..io.rows import DatasetSpec, RowWriter, check_partial
from ..io.shards import Shard, plan_output, plan_shard
from ..memory import check_memory
from ..models.layers import image_memory, probe, run_layers, select_layers
from ..models.loading import LoadedModel, as_loaded, check_model_options, model_files
from ..models.sources import AUTO
from ..selection import ALL, TOP, select
from .reduction import parse_reduce, project, projection_matrix
from .registry import DTYPES, TIMES, TOKENS
from .stimuli import Stimulus, as_stimuli, fingerprint, load_image, load_video_clips, load_video_frames

__all__ = ["ExtractionPlan", "Extraction", "plan_extraction", "iter_activations", "extract_to_file",
           "read_activations"]

log = logging.getLogger(__name__)


def _reduce_tokens(tensor: torch.Tensor, mode: str, prefix_tokens: int) -> torch.Tensor:
    """(n, tokens, dim) -> (n, dim) by the class token or the patch-token mean."""
    if tensor.ndim != 3 or mode == "all":
        return tensor
    if mode == "cls" or (mode == "auto" and prefix_tokens > 0):
        return tensor[:, 0]
    return tensor[:, prefix_tokens:].mean(dim=1)


IMAGE_MODEL_FRAMES = 8  # frames sampled per video for an image model (their mean is its row)
VIDEO_MODEL_FRAMES = 16  # a clip's frames for a video model that does not say (the common Kinetics length)


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
        Image models: frames sampled evenly from each video. Video models: frames per
        clip.
    per_frame : bool
        Image models: one row per frame (n, frames, ...) instead of the mean over frames.
    srp_components : int or None
        Sparse random projection of each layer with more features than this.
    seed : int
        Seed of the projection matrices.
    clips : int
        Video models: clips per video (`video_clip_indices`), averaged unless `per_clip`.
    per_clip : bool
        Video models: one row per clip (n, clips, ...).
    time : {"mean", "all"}
        Video models: layer outputs with a time axis averaged over it, or kept.
    time_axis : int or None
        Where 5-D outputs of the video model hold time.
    shapes : dict
        The stored shape of one stimulus's row per layer (filled by `plan_extraction`).
    image_bytes : int
        Memory one image (one frame of a clip) needs while the model runs on it (filled
        by `plan_extraction`, `image_memory`).
    """

    layers: list[str]
    tokens: str = "auto"
    frames: int = IMAGE_MODEL_FRAMES
    per_frame: bool = False
    srp_components: int | None = None
    seed: int = 0
    clips: int = 1
    per_clip: bool = False
    time: str = "mean"
    time_axis: int | None = None
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    image_bytes: int = 0
    _projections: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def keeps_items(self) -> bool:
        """Rows keep a second axis of frames or clips."""
        return self.per_frame or self.per_clip

    def settings(self) -> dict:
        return {
            "layers": self.layers, "tokens": self.tokens, "frames": self.frames,
            "per_frame": self.per_frame, "srp_components": self.srp_components, "seed": self.seed,
            "clips": self.clips, "per_clip": self.per_clip, "time": self.time,
        }

    def transform(self, name: str, tensor: torch.Tensor, prefix_tokens: int) -> torch.Tensor:
        """Rows as stored: time averaged (`time`), tokens reduced, then projected when
        `srp_components` asks. With `keeps_items`, the second axis holds frames or clips
        and each is reduced alone."""
        lead = tensor.shape[:2] if self.keeps_items else tensor.shape[:1]
        tensor = tensor.flatten(0, 1) if self.keeps_items else tensor
        if self.time == "mean" and self.time_axis is not None and tensor.ndim == 5:
            tensor = tensor.mean(dim=self.time_axis)
        tensor = _reduce_tokens(tensor, self.tokens, prefix_tokens)
        tensor = tensor.reshape(*lead, *tensor.shape[1:])
        features = int(np.prod(tensor.shape[len(lead):]))
        if self.srp_components is None or features <= self.srp_components:
            return tensor
        matrix = self._projections.get(name)
        if matrix is None:
            matrix = projection_matrix(features, self.srp_components, seed=self.seed, layer=name).to(tensor.device)
            self._projections[name] = matrix
        flat = tensor.reshape(int(np.prod(lead)), features).float()
        return project(flat, matrix).reshape(*lead, self.srp_components)

    def stimulus_frames(self, video_model: bool) -> int:
        """Frames one stimulus sends through the model (for the memory estimate)."""
        return self.frames * self.clips if video_model else self.frames


def plan_extraction(
    loaded: LoadedModel,
    layers: str | Sequence[str] = TOP,
    *,
    tokens: str = TOKENS.default,
    frames: int | None = None,
    per_frame: bool = False,
    srp_components: int | None = None,
    clips: int = 1,
    per_clip: bool = False,
    time: str = "mean",
) -> ExtractionPlan:
    """Validate the layer selection and options against the model before any work,
    and work out the stored shape of every layer (one blank image or clip through the
    model).

    Parameters
    ----------
    loaded : LoadedModel
    layers : str or sequence of str, default "top"
        `top` (the model's default selection), `all`, or layer names (NAME,NAME).
    tokens : str, default "auto"
        A name of `TOKENS`: how outputs (batch, tokens, dim) are reduced.
    frames : int, optional
        Image models: frames sampled evenly from each video (default 8). Video models:
        frames per clip (default the model's clip length).
    per_frame : bool, default False
        Image models: one row per video frame instead of their mean.
    srp_components : int, optional
        Sparse random projection of larger layers to this many features.
    clips : int, default 1
        Video models: clips per video, evenly spaced (`video_clip_indices`).
    per_clip : bool, default False
        Video models: one row per clip instead of their mean.
    time : {"mean", "all"}, default "mean"
        Video models: average layer outputs over their time axis, or keep it.

    Raises
    ------
    ConfigError, UnknownNameError
        An unknown layer or token mode, `tokens=cls` without a class token, frames or
        clips out of range, a video option with an image model or `per_frame` with a
        video model.
    """
    TOKENS.check(tokens)
    _check_video_options(loaded, frames, per_frame, clips, per_clip, time)
    frames = frames or ((loaded.clip_frames or VIDEO_MODEL_FRAMES) if loaded.is_video else IMAGE_MODEL_FRAMES)
    if tokens == "cls" and loaded.prefix_tokens == 0:
        raise ConfigError(f"model {loaded.name} has no class token; use `tokens=mean` or all")
    outputs = probe(loaded, frames)
    names = select_layers(loaded, layers, list(outputs))
    for name in names:  # TorchScript outputs are named by the model's own dict keys
        check_name(name, f"a layer of model {loaded.name}")
    if not names:
        raise ConfigError(f"the layer selection {layers!r} is empty for model {loaded.name}; name layers explicitly")
    plan = ExtractionPlan(names, tokens, frames, per_frame, srp_components, loaded.seed, clips, per_clip, time,
                          loaded.time_axis)
    items = clips if per_clip else frames
    for name in names:
        sample = outputs[name]
        if plan.keeps_items:  # a blank stimulus of several frames or clips shows the shape of its row
            sample = sample.unsqueeze(1).expand(-1, items, *sample.shape[1:])
        plan.shapes[name] = tuple(plan.transform(name, sample, loaded.prefix_tokens).shape[1:])
    per_image = image_memory(outputs, loaded.preprocessing.crop, kept=names)
    plan.image_bytes = per_image // frames if loaded.is_video else per_image
    return plan


def _check_video_options(loaded: LoadedModel, frames: int | None, per_frame: bool, clips: int, per_clip: bool,
                         time: str) -> None:
    """Options of one kind of model refused for the other (`ConfigError`), before any work."""
    if frames is not None:
        check_range("frames", frames)
    check_range("clips", clips)
    TIMES.check(time)
    if loaded.is_video and per_frame:
        raise ConfigError(f"model {loaded.name} is a video model: it sees clips, not frames; use `per_clip` "
                          "(one row per clip) or `time=all` (keep the time axis) instead of `per_frame`")
    if not loaded.is_video:
        given = [name for name, value, default in (("clips", clips, 1), ("per_clip", per_clip, False),
                                                   ("time", time, "mean")) if value != default]
        if given:
            raise ConfigError(f"`{given[0]}` applies to video models, and {loaded.name} is an image model "
                              "(it sees the frames of a video one by one: `frames`, `per_frame`)")


def _check_extraction_memory(plan: ExtractionPlan, stimuli: Sequence[Stimulus], batch_size: int, dtype: str,
                             video_model: bool) -> None:
    """Refuse a batch that cannot fit: the model's working memory for every image of a
    batch (every frame of a video or clip) and two batches of stored rows (one being
    written in the background while the next is computed)."""
    frames = plan.stimulus_frames(video_model) if video_model or any(s.is_video for s in stimuli) else 1
    row_bytes = sum(int(np.prod(shape)) for shape in plan.shapes.values()) * np.dtype(dtype).itemsize
    check_memory(batch_size * frames * plan.image_bytes + 2 * batch_size * row_bytes,
                 what=f"extracting {len(plan.layers)} layer(s) of {batch_size} stimuli at a time",
                 lower="lower `batch_size` (or `image_size`, or keep fewer `layers`)")


def _load_stimulus(stimulus: Stimulus, loaded: LoadedModel, plan: ExtractionPlan) -> torch.Tensor:
    """uint8, cropped: for an image model (frames, 3, H, W), one frame for an image; for a
    video model (clips, frames, 3, H, W), an image repeated into one clip."""
    crop = loaded.preprocessing.crop_image
    if loaded.is_video:
        if stimulus.is_video:
            clips = load_video_clips(stimulus.path, plan.frames, plan.clips)
            return torch.stack([torch.stack([crop(frame) for frame in clip]) for clip in clips])
        return crop(load_image(stimulus.path)).expand(1, plan.frames, -1, -1, -1).clone()
    if stimulus.is_video:
        images = load_video_frames(stimulus.path, plan.frames)
    else:
        if plan.per_frame:
            raise InputError(f"`per_frame` needs videos, but {stimulus.path} is an image")
        images = [load_image(stimulus.path)]
    return torch.stack([crop(image) for image in images])


def iter_activations(
    loaded: LoadedModel,
    stimuli: Sequence[Stimulus],
    plan: ExtractionPlan,
    *,
    batch_size: int = 32,
    start: int = 0,
    dtype: str = DTYPES.default,
) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Yield (first row, {layer: rows}) batch by batch from stimulus `start` on.

    For an image model a video's row is the mean over its sampled frames of the
    (token-reduced) layer output, or one row per frame with `plan.per_frame`; for a video
    model the mean over its clips, or one row per clip with `plan.per_clip`.

    The next batch is decoded and preprocessed in a background thread while the model runs
    on the current one.

    Parameters
    ----------
    loaded : LoadedModel
    stimuli : sequence of Stimulus
    plan : ExtractionPlan
        The layers and their reduction (`plan_extraction`).
    batch_size : int, default 32
        Stimuli per forward pass.
    start : int, default 0
        The index in `stimuli` of the first stimulus to run (to resume).
    dtype : str, default "float32"
        The dtype of the rows, a name of `DTYPES`.

    Yields
    ------
    first : int
        The index in `stimuli` of the batch's first stimulus.
    rows : dict of str to ndarray (b, ...)
        For every layer of `plan.layers`, one row per stimulus of the batch, each of shape
        `plan.shapes[layer]`.

    Raises
    ------
    ConfigError
        `batch_size` out of range, or a value beyond the range of `dtype` (float16
        overflows past 65504).
    InputError
        A stimulus that cannot be decoded, or an image with `plan.per_frame`.
    ModelError
        A layer without a tensor output, or one whose output is NaN or infinite.
    """
    check_range("batch_size", batch_size)
    torch_dtype = getattr(torch, DTYPES.check(dtype))
    starts = list(range(start, len(stimuli), batch_size))

    def load(first: int) -> tuple[torch.Tensor, list[int]]:
        """The batch as the model takes it (images, or clips of frames) and how many of
        its first-axis items belong to each stimulus (frames, or clips)."""
        items = [_load_stimulus(s, loaded, plan) for s in stimuli[first:first + batch_size]]
        joined = torch.cat(items)
        if loaded.is_video:  # normalise frame by frame, as images
            normalised = loaded.preprocessing.normalise(joined.flatten(0, 1)).reshape(*joined.shape[:2], *joined.shape[2:])
        else:
            normalised = loaded.preprocessing.normalise(joined)
        return normalised, [item.shape[0] for item in items]

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(load, starts[0]) if starts else None
        for index, first in enumerate(starts):
            batch, counts = pending.result()
            pending = pool.submit(load, starts[index + 1]) if index + 1 < len(starts) else None
            batch = batch.to(loaded.device, non_blocking=True)
            outputs = run_layers(loaded, batch, plan.layers)
            rows = {}
            for name in plan.layers:
                computed = _per_stimulus(outputs[name], counts, plan, name, loaded)
                stored = computed.to(torch_dtype)
                _check_finite(computed, stored, name, stimuli, first, dtype)
                rows[name] = stored.cpu().numpy()
            yield first, rows


def _check_finite(computed: torch.Tensor, stored: torch.Tensor, layer: str, stimuli: Sequence[Stimulus], first: int,
                  dtype: str) -> None:
    """Refuse rows that are not finite where they are made, rather than write a file every
    later step refuses: a model output that is NaN or infinite, or a value beyond the range
    of the storage dtype (float16 ends at 65504, and overflows to infinity)."""
    # any NaN or infinity makes the sum non-finite: one reduction for the usual finite batch
    # (the element-wise test below costs twice as much, and runs only to tell a large sum apart)
    if torch.isfinite(stored.sum(dtype=torch.float32)):
        return
    bad = ~torch.isfinite(stored.reshape(len(stored), -1)).all(dim=1)
    if not bad.any():
        return
    row = int(torch.nonzero(bad)[0])
    stimulus = stimuli[first + row].id
    if torch.isfinite(computed[row]).all():
        largest = float(computed[row].abs().max())
        raise ConfigError(f"layer {layer!r} reaches {largest:.6g} for stimulus {stimulus!r}, beyond the range of "
                          f"`dtype` {dtype} (it would be stored as infinity); use `dtype=float32`")
    raise ModelError(f"model output of layer {layer!r} is NaN or infinite for stimulus {stimulus!r}; check the model "
                     "and its weights (and the stimulus)")


def _per_stimulus(tensor, counts, plan, name, loaded) -> torch.Tensor:
    with torch.inference_mode():
        if plan.keeps_items:
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


@dataclass(frozen=True)
class Extraction:
    """What `extract_to_file` did.

    Attributes
    ----------
    path : Path
        The file written (a shard's own file for a shard).
    stimuli : int
        Stimuli in the file.
    plan : ExtractionPlan or None
        The layers and their shapes (None when a resumed run found the file complete).
    model : LoadedModel or None
    """

    path: Path
    stimuli: int
    plan: ExtractionPlan | None = None
    model: LoadedModel | None = None


@holds_outputs
def extract_to_file(
    model: str | LoadedModel,
    stimuli: str | Path | Sequence[Stimulus],
    out: str | Path,
    *,
    source: str = AUTO,
    weights: str = "pretrained",
    seed: int = 0,
    device: str = "auto",
    image_size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    crop_pct: float | None = None,
    interpolation: str | None = None,
    resize_mode: str | None = None,
    layers: str | Sequence[str] = TOP,
    tokens: str = TOKENS.default,
    frames: int | None = None,
    per_frame: bool = False,
    clips: int = 1,
    per_clip: bool = False,
    time: str = "mean",
    reduce: str | None = None,
    batch_size: int = 32,
    dtype: str = DTYPES.default,
    shard: str | Shard | None = None,
    resume: bool = False,
    overwrite: bool = False,
    config: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Extraction:
    """Extract layer activations of `stimuli` and write them to `out` (layout: the module
    docstring).

    Parameters
    ----------
    model : str or LoadedModel
        A model as `load_model` takes it (with `source`, `weights`, `seed`, `device`,
        `image_size`, `mean`, `std`, `crop_pct`, `interpolation`, `resize_mode`), or a
        model loaded already (those are then unused).
    stimuli : path or sequence of Stimulus
        A folder of images / videos or a list file (`discover_stimuli`), or the stimuli.
    out : path
        The HDF5 file to write.
    layers, tokens, frames, per_frame, clips, per_clip, time
        As `plan_extraction`.
    reduce : str, optional
        `srp:N`: seeded sparse random projection of every layer with more than N
        features to N features; None or `none`: keep every feature.
    batch_size : int, default 32
        Stimuli per forward pass.
    dtype : str, default "float32"
        A name of `DTYPES`.
    shard : str or Shard, optional
        `I/N` or `auto`: extract only this block of the stimuli, into `Shard.path(out)`
        (`net2brain_fovex.io.shards`; `merge_shards` joins the shards).
    resume : bool
        Continue `<out>.partial` left by an interrupted run with the same options; when
        the output is complete already, nothing is done.
    overwrite : bool
        Replace an existing output.
    config : dict, optional
        The resolved options, recorded in the file and beside it (`record_options`).
    progress : callable (done, total), optional
        Called once before the first batch and after every batch.

    Returns
    -------
    Extraction
        The result equals an uninterrupted run bit for bit. The file's `provenance`
        counts the whole stimulus list as its inputs (as `stimuli_sha256`).

    Raises
    ------
    ConfigError, UnknownNameError, InputError, OutputError, ModelError
        Every option, the output and the stimulus list are checked before the model is
        built; layers and token modes before the first batch.
    """
    DTYPES.check(dtype)
    TOKENS.check(tokens)
    check_range("batch_size", batch_size)
    if frames is not None:
        check_range("frames", frames)
    check_range("clips", clips)
    model_options = dict(image_size=image_size, mean=mean, std=std, crop_pct=crop_pct, interpolation=interpolation,
                         resize_mode=resize_mode)
    check_model_options(source=source, seed=seed, **model_options)
    srp_components = parse_reduce(reduce)
    output = plan_output(out, shard, resume=resume, overwrite=overwrite)
    if output.complete:
        return Extraction(output.path, _row_count(output.path))
    found = as_stimuli(stimuli)
    check_partial(output.path, resume=resume, overwrite=overwrite)
    check_outputs([Output("out", output.path, "hdf5"), *options_output(output.path, config, replaceable=resume)],
                  {"stimuli": [stimuli if isinstance(stimuli, (str, Path)) else None, *(s.path for s in found)],
                   "model": model_files(model, weights)}, overwrite=overwrite)
    if per_frame and not all(s.is_video for s in found):
        first = next(s for s in found if not s.is_video)
        raise InputError(f"`per_frame` needs videos, but {first.path} is an image")
    loaded = as_loaded(model, source=source, weights=weights, seed=seed, device=device, **model_options)
    plan = plan_extraction(loaded, layers, tokens=tokens, frames=frames, per_frame=per_frame,
                           srp_components=srp_components, clips=clips, per_clip=per_clip, time=time)
    _check_extraction_memory(plan, found, batch_size, dtype, loaded.is_video)
    job = {
        **loaded.describe(), **plan.settings(), "dtype": dtype, "batch_size": batch_size,
        "device": loaded.device.type, "stimuli_sha256": fingerprint(found),
    }
    part = plan_shard(job, found, output.shard)
    ids = [s.id for s in part.items]
    specs = [DatasetSpec(f"layers/{name}", plan.shapes[name], dtype, _layer_attrs(plan, name)) for name in plan.layers]
    if overwrite:
        output.path.with_name(output.path.name + ".partial").unlink(missing_ok=True)
    writer = RowWriter(output.path, ACTIVATIONS_KIND, ids, specs, part.signature, resume, batch_rows=batch_size)
    if writer.rows_done:
        log.info("resuming %s at stimulus %d of %d", writer.partial, writer.rows_done + 1, len(ids))
    report = progress or (lambda done, total: None)
    with writer:
        report(writer.rows_done, len(ids))
        # Batch k is written in the background while batch k + 1 is computed; at most one
        # write is pending, so memory holds two batches of rows at most.
        with ThreadPoolExecutor(max_workers=1) as background:
            pending = None
            batches = iter_activations(loaded, part.items, plan, batch_size=batch_size, start=writer.rows_done,
                                       dtype=dtype)
            for first, rows in batches:
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
            "per_frame": plan.per_frame, "clips": plan.clips, "per_clip": plan.per_clip, "time": plan.time,
            "task": loaded.task or "", "input": loaded.input, "reduce": f"srp:{plan.srp_components}" if plan.srp_components else "none",
            "dtype": dtype, "package_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "stimuli_sha256": job["stimuli_sha256"], "config": json_attr(config or {}), **part.attrs,
            "provenance": provenance_attr(config=config, seed=loaded.seed, device=loaded.device,
                                          inputs_sha256=job["stimuli_sha256"], inputs_count=len(found)),
        }
        path = writer.finish(attrs)
    record_options(path, config)
    return Extraction(path, len(ids), plan, loaded)


def _row_count(path: Path) -> int:
    """The stimuli of a finished activations file."""
    with open_h5(path, ACTIVATIONS_KIND) as file:
        return len(read_stimuli(file))


def read_activations(path: str | Path, layers: str | Sequence[str] = ALL) -> tuple[list[str], dict[str, np.ndarray]]:
    """Read an activations file into memory: (stimulus ids, {layer: array (n, ...)}).

    Parameters
    ----------
    path : path
        A file written by `extract_to_file`.
    layers : str or sequence of str, default "all"
        `all` (in the file's order) or the layers to read (NAME,NAME or a list), in that
        order.

    Returns
    -------
    ids : list of str
    rows : dict of str to ndarray (n, ...)

    Raises
    ------
    InputError
        Not a finished activations file (`open_h5`), a bad `/stimuli` list, or no layers.
    UnknownNameError
        A layer the file does not hold (with the closest names).
    """
    with open_h5(path, ACTIVATIONS_KIND) as file:
        available = list(file["layers"]) if isinstance(file.get("layers"), h5py.Group) else []
        if not available:
            raise InputError(f"{path} holds no layers (nothing under /layers); give a file written by `extract_to_file`")
        names = select(layers, available, hint=f"{path} holds {len(available)} layers", order="given")
        return read_stimuli(file), {name: file["layers"][name][()] for name in names}
