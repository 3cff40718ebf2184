"""What a model source hands over: a catalogue row (`ModelEntry`) and a built model with
everything needed to feed it (`Built`).

Every source (`net2brain_fovex.models.zoo`) fills the same two records, so loading,
layer discovery, extraction and explanation treat a detector, a video network or a CLIP
tower the way they treat a classifier: through `call` (how a normalised batch goes in),
`top` (the default layers) and the input kind.

This module imports no torch.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from .preprocessing import Preprocessing

__all__ = ["INPUTS", "ModelEntry", "Built"]

INPUTS = ("image", "video")


@dataclass(frozen=True)
class ModelEntry:
    """One model of a source's catalogue.

    Attributes
    ----------
    name : str
        What `model` takes (`resnet18`, `ViT-B-32:laion2b_s34b_b79k`, a hub id).
    task : str
        A name of `TASKS`.
    input : str
        `image` or `video`.
    pretrained : bool
        Whether the source has pretrained weights for it (in a cache or to download).
    """

    name: str
    task: str
    input: str = "image"
    pretrained: bool = True


@dataclass
class Built:
    """A model as its source built it, with what is needed to feed and describe it.

    Attributes
    ----------
    module : torch.nn.Module
        The model; layer names are its `named_modules()`.
    preprocessing : Preprocessing
        The geometric transform and normalisation of its weights.
    task : str or None
        A name of `TASKS`; None for models the toolbox did not build (factories,
        TorchScript).
    input : str
        `image`: batches (B, 3, H, W); `video`: clips (B, T, 3, H, W), which `call`
        rearranges into the layout the model expects.
    call : callable (module, batch) -> output, optional
        How a normalised batch goes into the model (a detector takes a list of images, a
        transformers model keyword `pixel_values`, a video network (B, 3, T, H, W));
        None: `module(batch)`.
    top : callable (module, available) -> list of str, optional
        The default layer selection, from the executed layers `available`; None: the
        model's children, containers opened one level (`layers.top_layers`).
    clip_frames : int or None
        Frames per clip a video model expects (the default of `frames`).
    time_axis : int or None
        Where 5-D layer outputs of a video model hold time (2 for (B, C, T, H, W)), for
        averaging over time.
    class_scores : bool
        Whether the output is class scores (what `explain` needs).
    prefix_tokens : int or None
        Class / register tokens ahead of the patch tokens; None: read from the module.
    adapt_state : callable (state dict) -> state dict, optional
        How a weights file the user gives is fitted to `module` (open_clip's whole-model
        files hold the image tower under `visual.`); None: taken as it is.
    """

    module: torch.nn.Module
    preprocessing: Preprocessing
    task: str | None = "classification"
    input: str = "image"
    call: Callable[[torch.nn.Module, torch.Tensor], object] | None = None
    top: Callable[[torch.nn.Module, Sequence[str]], list[str]] | None = None
    clip_frames: int | None = None
    time_axis: int | None = None
    class_scores: bool = True
    prefix_tokens: int | None = None
    adapt_state: Callable[[dict], dict] | None = None
