"""Layers: discovering them, capturing their outputs, and the default "top" selection.

Layer names are the dotted module paths of `named_modules()` (`layer4.1.conv2`,
`blocks.11`). Outputs are captured with forward hooks, removed when the capture ends.
A module that runs several times in one forward pass (torchvision's ResNet blocks reuse
their ReLU) yields the output of its last call. A module that returns a tuple or list
yields its first tensor, a dict (or a transformers model output) its first tensor value;
outputs that are not one row per stimulus (a detector's anchors and region features)
are not layers. A TorchScript model cannot take hooks: its layers are its outputs
(`output`, `output.0`, ... or the keys of a returned dict), so export the feature
extractor you need (for example torchvision's `create_feature_extractor`).
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ModelError, ToolboxError, described, unknown_name
from ..selection import TOP, parse_selection, select
from .loading import LoadedModel, load_model
from .sources import AUTO

__all__ = ["LayerInfo", "first_tensor", "script_outputs", "capture", "forward", "run_layers", "probe", "image_memory",
           "list_layers",
           "select_layers", "top_layers", "children_opened", "blank_input"]


@dataclass(frozen=True)
class LayerInfo:
    """A layer as listed: its name, its output shape for one stimulus, and whether it
    belongs to the default "top" selection."""

    name: str
    shape: tuple[int, ...]
    top: bool


def first_tensor(output: object) -> torch.Tensor | None:
    """The tensor a module returned, or the first tensor of a returned tuple / list, or
    the first tensor value of a returned dict (torchvision's segmentation `out`, a
    backbone's first feature level, a transformers output's `last_hidden_state` or
    `logits`: their model-output objects are ordered dicts)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        for item in output:
            if isinstance(item, torch.Tensor):
                return item
    return None


def script_outputs(output: object) -> dict[str, torch.Tensor]:
    """Named outputs of a TorchScript model: a tensor, a tuple / list, or a dict."""
    if isinstance(output, torch.Tensor):
        return {"output": output}
    if isinstance(output, (tuple, list)):
        return {f"output.{i}": t for i, t in enumerate(output) if isinstance(t, torch.Tensor)}
    if isinstance(output, dict):
        return {str(k): t for k, t in output.items() if isinstance(t, torch.Tensor)}
    return {}


@contextlib.contextmanager
def capture(model: nn.Module, names: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block, every forward pass of `model` fills the yielded dict with the
    outputs of the modules `names` at their last call, ordered by when the calls end.
    Hooks are removed on exit.

    The rest of the model gets a copy of each recorded tensor output: in-place operations
    downstream (`ReLU(inplace=True)` after a convolution or batch norm, `out += identity`)
    would otherwise change the recorded activation after the fact.

    Only an output that is a tensor is copied: the first tensor of a tuple or list is
    recorded as it is, and a module without a tensor output leaves no entry.

    Parameters
    ----------
    model : torch.nn.Module
    names : sequence of str
        Names of `model.named_modules()`.

    Yields
    ------
    dict of str to tensor

    Raises
    ------
    UnknownNameError
        A name that is not a module of `model`.
    """
    outputs: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    for name in names:
        if name not in modules:
            raise unknown_name("layer", name, [n for n in modules if n], hint="`list_layers` lists them")
    handles = []

    def hook_for(name: str) -> Callable:
        def hook(_module, _inputs, output):
            tensor = first_tensor(output)
            if tensor is None:
                return None
            outputs.pop(name, None)
            outputs[name] = tensor
            return tensor.clone() if output is tensor else None

        return hook

    try:
        for name in names:
            handles.append(modules[name].register_forward_hook(hook_for(name)))
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


def run_layers(loaded: LoadedModel, batch: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
    """The outputs of layers `names` for a batch (forward pass under inference mode).

    Parameters
    ----------
    loaded : LoadedModel
    batch : tensor (B, 3, H, W)
        Normalised, on `loaded.device`.
    names : sequence of str
        Module names (`capture`), or for a TorchScript model names of its outputs
        (`script_outputs`; another name raises KeyError).

    Returns
    -------
    dict of str to tensor
        In the order of `names`: each module's output at its last call, or the first tensor
        of a tuple or list it returned.

    Raises
    ------
    ModelError
        The forward pass fails, or a layer produced no tensor output.
    UnknownNameError
        A name that is not a layer of the model.
    """
    with torch.inference_mode():
        if loaded.is_torchscript:
            outputs = script_outputs(forward(loaded, batch))
            for name in names:
                if name not in outputs:
                    raise unknown_name("layer", name, outputs, hint="the outputs of a TorchScript model are its layers")
            return {name: outputs[name] for name in names}
        with capture(loaded.module, names) as outputs:
            forward(loaded, batch)
        missing = [name for name in names if name not in outputs]
        if missing:
            raise ModelError(f"layer {missing[0]} produced no tensor output in this forward pass")
        uneven = [name for name in names if outputs[name].shape[0] != len(batch)]
        if uneven:
            raise ModelError(f"layer {uneven[0]} gave {outputs[uneven[0]].shape[0]} rows for a batch of {len(batch)} "
                             "stimuli: it is not a layer of each stimulus; choose another layer")
        return {name: outputs[name] for name in names}


def forward(loaded: LoadedModel, batch: torch.Tensor) -> object:
    """`loaded.module(batch)`, any failure of the model's code (the user's own, for a
    factory or TorchScript file) as one `ModelError` naming the model and the error."""
    try:
        return loaded.call(loaded.module, batch) if loaded.call else loaded.module(batch)
    except ToolboxError:
        raise
    except torch.OutOfMemoryError:
        raise ModelError(f"model {loaded.name} ran out of {loaded.device.type} memory on a batch of {_shown(batch)}; "
                         "lower `batch_size` (or `image_size`)") from None
    except Exception as error:  # the model's own code: whatever it raises is about the model, not our input
        raise ModelError(f"model {loaded.name} failed on a batch of {_shown(batch)}: {described(error)}; "
                         "check the model (and `image_size`)") from None


def _shown(batch: torch.Tensor) -> str:
    what = f"clip(s) of {batch.shape[1]} frames" if batch.ndim == 5 else "image(s)"
    return f"{len(batch)} {what} of {batch.shape[-2]} x {batch.shape[-1]}"


def blank_input(loaded: LoadedModel, frames: int | None = None) -> torch.Tensor:
    """A zero batch of one stimulus as the model takes it: (1, 3, crop, crop), or
    (1, frames, 3, crop, crop) for a video model."""
    crop = loaded.preprocessing.crop
    if loaded.is_video:
        return torch.zeros(1, frames or loaded.clip_frames or 1, 3, crop, crop, device=loaded.device)
    return torch.zeros(1, 3, crop, crop, device=loaded.device)


def probe(loaded: LoadedModel, frames: int | None = None) -> dict[str, torch.Tensor]:
    """Run one blank image (a blank clip of `frames` frames for a video model, default
    its own clip length) through the model and return every layer's output, in execution
    order (the order in which modules start)."""
    blank = blank_input(loaded, frames)
    with torch.inference_mode():
        if loaded.is_torchscript:
            return _per_stimulus(script_outputs(forward(loaded, blank)))
        order: list[str] = []
        handles = [
            module.register_forward_pre_hook(lambda _m, _i, name=name: order.append(name))
            for name, module in loaded.module.named_modules() if name
        ]
        try:
            with capture(loaded.module, [n for n, _ in loaded.module.named_modules() if n]) as outputs:
                forward(loaded, blank)
        finally:
            for handle in handles:
                handle.remove()
    executed = dict.fromkeys(order)  # first start of each module, in order
    return _per_stimulus({name: outputs[name] for name in executed if name in outputs})


def _per_stimulus(outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The outputs with one row per stimulus of a batch of one: a detector's region
    features (one row per proposal of the whole batch) and anchors are not layers of a
    stimulus."""
    return {name: tensor for name, tensor in outputs.items() if tensor.ndim >= 1 and tensor.shape[0] == 1}


def image_memory(outputs: dict[str, torch.Tensor], crop: int, *, kept: Sequence[str] = (), backward: bool = False) -> int:
    """Bytes one image needs while the model runs on it, from the outputs of a probe
    (`probe`): its pixels (float32); the outputs of the layers `kept` (held until the
    batch is done) and room for the two largest outputs of any layer (a layer's input and
    output, alive together); with `backward`, every output twice instead (a backward pass
    keeps them all, and their gradients)."""
    sizes = {name: tensor.numel() * tensor.element_size() for name, tensor in outputs.items()}
    if backward:
        return 3 * crop * crop * 4 * 2 + 2 * sum(sizes.values())
    return 3 * crop * crop * 4 + sum(sizes[name] for name in kept) + sum(sorted(sizes.values(), reverse=True)[:2])


def list_layers(
    model: str | LoadedModel, *, source: str = AUTO, device: str = "cpu", image_size: int | None = None,
) -> list[LayerInfo]:
    """Every layer of a model with its output shape (one stimulus), in execution order.

    Parameters
    ----------
    model : str or LoadedModel
        A model as `load_model` takes it (built with whatever weights cost nothing to get:
        the layers do not depend on them), or a model loaded already.
    source, device, image_size
        As for `load_model`; unused for a loaded model.
    """
    loaded = model if isinstance(model, LoadedModel) else load_model(
        model, source=source, weights=None, device=device, image_size=image_size)
    outputs = probe(loaded)
    top = set(top_layers(loaded, list(outputs)))
    return [LayerInfo(name, tuple(t.shape[1:]), name in top) for name, t in outputs.items()]


def select_layers(loaded: LoadedModel, spec: str | Sequence[str], available: Sequence[str]) -> list[str]:
    """Resolve `top`, `all` or explicit names (a comma-separated string or a list)
    against the executed layers `available` (`net2brain_fovex.selection`); explicit
    names keep execution order.

    Raises `UnknownNameError` naming the closest valid layers.

    Parameters
    ----------
    loaded : LoadedModel
        The model, for its `top` selection (`top_layers`) and the hint of the message.
    spec : str or sequence of str
        `top`, `all`, or layer names.
    available : sequence of str
        The layers that run in a forward pass, in execution order (`probe`).

    Returns
    -------
    list of str
        In execution order; empty when none of `available` is in the `top` selection.

    Raises
    ------
    UnknownNameError
        An unknown layer (the hint says when it is a module that does not run in the
        forward pass), or no name at all.
    """
    chosen = parse_selection(spec)
    top = top_layers(loaded, available) if chosen == TOP else None
    unknown = [name for name in chosen if name not in set(available)] if isinstance(chosen, list) else []
    hint = "`list_layers` lists them"
    if unknown and not loaded.is_torchscript and unknown[0] in dict(loaded.module.named_modules()):
        hint = _why_not_a_layer(loaded, unknown[0]) + "; " + hint
    return select(chosen, available, top=top, hint=hint)


def _why_not_a_layer(loaded: LoadedModel, name: str) -> str:
    """Why module `name` is not among the layers of a probe (`probe`): it does not run,
    returns no tensor, or not one row per stimulus (a detector's anchors, proposals,
    region features)."""
    calls: list[torch.Tensor | None] = []
    handle = dict(loaded.module.named_modules())[name].register_forward_hook(
        lambda _module, _inputs, output: calls.append(first_tensor(output)))
    try:
        with torch.inference_mode():
            forward(loaded, blank_input(loaded))
    finally:
        handle.remove()
    if not calls:
        return "this module does not run in the model's forward pass"
    if calls[-1] is None:
        return "this module's output is not a tensor, nor a tuple, list or dict of tensors"
    return (f"this module's output, {tuple(calls[-1].shape)} for one stimulus, is not one row per stimulus "
            "(a detector's anchors, proposals or region features)")


# ------------------------------------------------------------------ the "top" selection
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_PASS_THROUGH = (nn.Dropout, nn.Identity, nn.Flatten)


def top_layers(loaded: LoadedModel, available: Sequence[str]) -> list[str]:
    """The default selection: the main stages / blocks of the model and its head, as its
    source defines them (`Built.top`; README, "net2brain layers": a table per family);
    for factories the model's children, containers (Sequential, ModuleList, ModuleDict)
    opened one level and Dropout, Identity and Flatten left out (`children_opened`);
    for TorchScript models all their outputs.

    Parameters
    ----------
    loaded : LoadedModel
    available : sequence of str
        The executed layers, in execution order (`probe`).

    Returns
    -------
    list of str
        The chosen layers that are in `available`, in its order.
    """
    if loaded.is_torchscript:
        return list(available)
    names = loaded.top(loaded.module, available) if loaded.top else children_opened(loaded.module)
    chosen = set(names)
    return [name for name in available if name in chosen]


def children_opened(model: nn.Module) -> list[str]:
    """The model's children, containers opened one level, pass-through modules left out:
    EfficientNet, MobileNet, ConvNeXt, Swin and DenseNet give their `features.N` stages,
    avgpool and classifier layers."""
    names = []
    for child_name, child in model.named_children():
        if isinstance(child, _PASS_THROUGH):
            continue
        if isinstance(child, _CONTAINERS):
            names += [
                f"{child_name}.{grand_name}" for grand_name, grand in child.named_children()
                if not isinstance(grand, _PASS_THROUGH)
            ]
        else:
            names.append(child_name)
    return names
