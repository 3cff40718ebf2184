"""Building a model from what the user names: a zoo name, a factory, or a TorchScript file."""
from __future__ import annotations

import importlib
import importlib.util
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..checks import check_range
from ..device import resolve_device
from ..errors import ConfigError, InputError, ModelError, ToolboxError, described, reason
from ..io.paths import what_is_there
from . import preprocessing as prep
from .built import Built
from .preprocessing import check_overrides
from .sources import AUTO, SOURCES, find_source, installed_sources
from .weights import STATE_DICT_SUFFIXES, apply_state_dict, load_state_dict_file

__all__ = ["WEIGHT_CHOICES", "TORCHSCRIPT_SUFFIXES", "LoadedModel", "load_model", "as_loaded", "model_files", "check_model_options"]

WEIGHT_CHOICES = ("pretrained", "random")
TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".jit", ".torchscript")


@dataclass
class LoadedModel:
    """A model ready for inference, with what is needed to feed it and to record it.

    Attributes
    ----------
    module : torch.nn.Module
        In eval mode, on `device`.
    name, source, weights : str
        As resolved: source is a name of `SOURCES`, factory or torchscript; weights is
        pretrained, random (with the seed) or the weights file.
    preprocessing : Preprocessing
    prefix_tokens : int
        Class / distillation tokens in front of a transformer's patch tokens.
    task : str or None
        A name of `TASKS` (None for factories and TorchScript files).
    input : str
        `image` or `video` (clips (B, T, 3, H, W)).
    call : callable (module, batch) -> output, optional
        How a batch goes in (`Built.call`); None: `module(batch)`.
    top : callable (module, available) -> list of str, optional
        The source's default layer selection (`Built.top`).
    clip_frames, time_axis : int or None
        A video model's clip length and the time axis of its 5-D layer outputs.
    class_scores : bool
        Whether the output is class scores.
    """

    module: torch.nn.Module
    name: str
    source: str
    weights: str
    preprocessing: prep.Preprocessing
    device: torch.device
    prefix_tokens: int = 0
    seed: int = 0
    task: str | None = None
    input: str = "image"
    call: Callable[[torch.nn.Module, torch.Tensor], object] | None = None
    top: Callable[[torch.nn.Module, Sequence[str]], list[str]] | None = None
    clip_frames: int | None = None
    time_axis: int | None = None
    class_scores: bool = True

    @property
    def is_torchscript(self) -> bool:
        return self.source == "torchscript"

    @property
    def is_video(self) -> bool:
        return self.input == "video"

    def describe(self) -> dict:
        return {
            "model": self.name,
            "source": self.source,
            "weights": self.weights,
            "seed": self.seed,
            "task": self.task,
            "input": self.input,
            "preprocessing": self.preprocessing.as_dict(),
        }


def load_model(
    model: str,
    *,
    source: str = AUTO,
    weights: str | None = "pretrained",
    seed: int = 0,
    device: str = "auto",
    image_size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    crop_pct: float | None = None,
    interpolation: str | None = None,
    resize_mode: str | None = None,
) -> LoadedModel:
    """Build and prepare a model.

    Parameters
    ----------
    model : str
        A model name of a source (`resnet18`, `cornet_s`, `ViT-B-32:laion2b_s34b_b79k`,
        a hub id or a folder saved by transformers), `module:function` or
        `path/to/file.py:function` (a factory returning an nn.Module: this runs the
        user's own code), or a TorchScript file.
    source : str, default "auto"
        Where to look up a model name: a name of `SOURCES`, or auto (each installed
        source in turn).
    weights : str or None
        "pretrained" (from the local caches), "random" (initialised after seeding torch
        with `seed`), or a state-dict file (.pth, .pt, .bin, .safetensors). None asks
        for the architecture only, with whatever weights cost nothing to get (random for
        zoo models, its own for a TorchScript file): enough to list layers.
    seed : int, default 0
    device : str, default "auto"
    image_size, mean, std, crop_pct, interpolation, resize_mode
        Overrides of the model's own preprocessing (`Preprocessing.with_overrides`).

    Returns
    -------
    LoadedModel

    Raises
    ------
    ConfigError, UnknownNameError
        A bad option, checked before the model is built.
    ModelError, WeightsError, InputError
        A model that cannot be found, built or run, or weights that are missing or do
        not fit.
    """
    target = resolve_device(device)
    overrides = dict(image_size=image_size, mean=mean, std=std, crop_pct=crop_pct, interpolation=interpolation,
                     resize_mode=resize_mode)
    check_model_options(source=source, seed=seed, **overrides)
    if weights is None:
        weights = "pretrained" if _looks_like_file(model) else "random"
    if weights not in WEIGHT_CHOICES and Path(weights).suffix.lower() not in STATE_DICT_SUFFIXES:
        raise ConfigError(
            f"`weights` {weights!r} is neither pretrained, random nor a weights file "
            f"({', '.join(STATE_DICT_SUFFIXES)})"
        )
    weights_label = weights if weights in WEIGHT_CHOICES else str(Path(weights))
    torch.manual_seed(seed)
    if _looks_like_file(model):
        source, built = "torchscript", Built(_torchscript(Path(model), weights), prep.Preprocessing(), task=None)
    elif _is_factory(model, source):
        source, built = "factory", Built(_factory(model), prep.Preprocessing(), task=None)
    else:
        source = find_source(model, source)
        built = SOURCES[source].build(model, weights == "pretrained")
    if weights not in WEIGHT_CHOICES and source != "torchscript":
        state = load_state_dict_file(weights)
        apply_state_dict(built.module, built.adapt_state(state) if built.adapt_state else state, weights)
    prefix_tokens = built.prefix_tokens if built.prefix_tokens is not None else _prefix_tokens(built.module)
    built.module.eval().to(target)
    return LoadedModel(
        module=built.module,
        name=model,
        source=source,
        weights=weights_label,
        preprocessing=built.preprocessing.with_overrides(**overrides),
        device=target,
        prefix_tokens=prefix_tokens,
        seed=seed,
        task=built.task,
        input=built.input,
        call=built.call,
        top=built.top,
        clip_frames=built.clip_frames,
        time_axis=built.time_axis,
        class_scores=built.class_scores,
    )


def check_model_options(*, source: str = AUTO, seed: int = 0, image_size: int | None = None,
                        mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                        crop_pct: float | None = None, interpolation: str | None = None,
                        resize_mode: str | None = None) -> None:
    """The checks of `load_model`'s options, which entry points run at their top, before
    any input is read: a known source, the seed's range, the preprocessing overrides."""
    if source != AUTO:
        SOURCES.check(source)
    check_range("seed", seed)
    check_overrides(image_size, mean, std, crop_pct, interpolation, resize_mode)


def as_loaded(model: str | LoadedModel, **options) -> LoadedModel:
    """`model` itself when it is loaded already, else `load_model(model, **options)`:
    the entry points take either.

    Parameters
    ----------
    model : str or LoadedModel
    **options
        The keyword arguments of `load_model`.
    """
    return model if isinstance(model, LoadedModel) else load_model(model, **options)


def model_files(model: str | LoadedModel, weights: str | None = None) -> list[Path]:
    """The files a model spec reads (a TorchScript file, a factory's .py file, a weights
    file): inputs of the run, which no output may replace.

    Parameters
    ----------
    model : str or LoadedModel
    weights : str, optional
    """
    files = []
    if isinstance(model, str):
        if _looks_like_file(model):
            files.append(Path(model))
        elif ":" in model and model.rpartition(":")[0].endswith(".py"):
            files.append(Path(model.rpartition(":")[0]))
    if weights not in (None, *WEIGHT_CHOICES):
        files.append(Path(weights))
    return files


def _is_factory(spec: str, source: str) -> bool:
    """`module:function` or `file.py:function`, unless a source offers the name (open_clip
    names read MODEL:TAG): with `source` given, the name is that source's. A source's model
    with a tag it does not offer (`ViT-B-32:opena`, `resnet18:openai`) is that source's
    too, unless a module of that name can be imported: its message names the closest."""
    if ":" not in spec or source != AUTO:
        return False
    module = spec.rpartition(":")[0]
    if module.endswith(".py"):
        return True
    sources = installed_sources()
    if any(entry.offers(spec) for entry in sources):
        return False
    return not any(entry.offers(module) for entry in sources) or _importable(module)


def _importable(module: str) -> bool:
    """Whether `module` can be imported as a factory's module is (the working folder first)."""
    sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
    finally:
        sys.path.remove(str(Path.cwd()))


def _looks_like_file(spec: str) -> bool:
    path = Path(spec)
    return path.suffix.lower() in TORCHSCRIPT_SUFFIXES or (path.is_file() and ":" not in spec)


def _torchscript(path: Path, weights: str) -> torch.nn.Module:
    if path.is_dir():
        raise InputError(f"model file {path} is a folder; give a TorchScript file (or NAME, or module:function)")
    if not path.is_file():
        raise InputError(f"model file {path} {what_is_there(path)}; give a TorchScript file (or NAME, or module:function)")
    if weights not in WEIGHT_CHOICES:
        raise ConfigError(f"`weights` {weights}: a TorchScript file carries its own weights; leave `weights` out")
    if weights == "random":
        raise ConfigError("`weights=random` cannot re-initialise a TorchScript model; leave `weights` out")
    try:
        with warnings.catch_warnings():  # torch deprecates TorchScript, but users have such files
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError) as error:
        raise ModelError(
            f"{path} is not a TorchScript model ({reason(error).split('. ')[0]}); "
            "a state-dict file goes to `weights` together with `model` NAME"
        ) from None


def _factory(spec: str) -> torch.nn.Module:
    module_name, _, function_name = spec.rpartition(":")
    if not module_name or not function_name:
        raise ConfigError(f"model factory {spec!r} must read module:function or file.py:function")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise InputError(f"model factory file {path} {what_is_there(path)}; give `model` as path/to/file.py:function")
            spec_ = importlib.util.spec_from_file_location(path.stem, path)
            namespace = importlib.util.module_from_spec(spec_)
            spec_.loader.exec_module(namespace)
        else:
            sys.path.insert(0, str(Path.cwd()))
            try:
                namespace = importlib.import_module(module_name)
            finally:
                sys.path.remove(str(Path.cwd()))
    except ToolboxError:
        raise
    except ImportError as error:
        raise ModelError(f"cannot import {module_name} for model factory {spec!r}: {error}") from None
    except SyntaxError as error:  # the user's file does not parse
        raise ModelError(f"cannot import {module_name} for model factory {spec!r}: {error.msg} at line {error.lineno}; "
                         "fix the Python file") from None
    except Exception as error:  # the user's module fails as it runs
        raise ModelError(f"importing {module_name} for model factory {spec!r} raised {described(error)}; "
                         "fix the Python file") from None
    function = getattr(namespace, function_name, None)
    if not callable(function):
        raise ModelError(f"{module_name} has no function {function_name!r} for model factory {spec!r}")
    try:
        built = function()
    except Exception as error:  # the user's code: a factory takes no arguments and may fail in any way
        raise ModelError(f"model factory {spec!r} raised {described(error)}; a factory is called without arguments "
                         "and returns a torch.nn.Module") from None
    if not isinstance(built, torch.nn.Module):
        raise ModelError(f"model factory {spec!r} returned {type(built).__name__}, not a torch.nn.Module")
    return built


def _prefix_tokens(module: torch.nn.Module) -> int:
    """Class / distillation tokens ahead of the patch tokens (timm's attribute,
    torchvision's ViT class token), 0 when the model declares none."""
    count = getattr(module, "num_prefix_tokens", None)
    if isinstance(count, int):
        return count
    return 1 if isinstance(getattr(module, "class_token", None), torch.Tensor) else 0

