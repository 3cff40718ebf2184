"""The explanation methods (`METHODS`): each a name, its function, and a frozen dataclass
of its parameters, validated once when it is made and passed down as one object.

A method's function is `function(model, images, targets, context, parameters)` ->
`Attribution` (`net2brain_fovex.explain.base`); it lives in its own module and is
imported on first use. Parameter defaults are the references'; each field's metadata
holds its help text, which the command line shows.

Light (no torch): the command line reads these tables at start-up.
"""
from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..errors import ConfigError
from ..registry import Registry

__all__ = ["Method", "METHODS", "FovExParameters", "CAMParameters", "RISEParameters", "parameters_for",
           "help_of", "PRED"]

PRED = "pred"  # the explained class: the model's top-1 class on the clean image


def _check(method: str, checks: dict[str, tuple[bool, str]], values: Any) -> None:
    """A `ConfigError` naming the first parameter whose check fails."""
    for name, (valid, expected) in checks.items():
        if not valid:
            raise ConfigError(f"invalid {method} parameter `{name}`: {name} = {getattr(values, name)!r} is out of "
                              f"range; expected {expected}")


def _option(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


_COUNT, _POSITIVE = "a whole number >= 1", "a finite number > 0"


@dataclass(frozen=True)
class FovExParameters:
    """FovEx's hyper-parameters; defaults are the reference's (ViT-B/16, 224 px)."""

    scanpath_length: int = _option(10, "Fixations per image.")
    optimization_steps: int = _option(20, "Gradient steps per fixation.")
    lr: float = _option(0.1, "Signed-gradient step, in [-1, 1] image units.")
    foveation_sigma: float = _option(0.15, "Fovea width: exp(-d^2 / sigma).")
    blur_filter_size: int = _option(41, "Gaussian blur kernel (odd).")
    blur_sigma: float = _option(10.0, "Gaussian blur sigma in pixels.")
    forgetting: float = _option(0.1, "Memory decay per fixation.")
    random_restart: bool = _option(True, "Restart at a random position after a step that does not improve.")
    heatmap_sigma: float = _option(0.15, "Width of each fixation's Gaussian in the map.")
    patience: int = _option(0, "End a fixation's search after this many steps without improvement (0: always all steps).")

    def __post_init__(self) -> None:
        _check("FovEx", {  # NaN fails every comparison
            "scanpath_length": (self.scanpath_length >= 1, _COUNT),
            "optimization_steps": (self.optimization_steps >= 1, _COUNT),
            "lr": (0 < self.lr < math.inf, _POSITIVE),
            "foveation_sigma": (0 < self.foveation_sigma < math.inf, _POSITIVE),
            "heatmap_sigma": (0 < self.heatmap_sigma < math.inf, _POSITIVE),
            "blur_filter_size": (self.blur_filter_size >= 1 and self.blur_filter_size % 2 == 1,
                                 "an odd whole number >= 1"),
            "blur_sigma": (0 < self.blur_sigma < math.inf, _POSITIVE),
            "forgetting": (0 <= self.forgetting <= 1, "a number in [0, 1]"),
            "patience": (self.patience >= 0, "a whole number >= 0"),
        }, self)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CAMParameters:
    """The class-activation-map methods' layer (None: `target_layer` chooses it)."""

    layer: str | None = _option(None, "Target layer (default: the last spatial map).")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RISEParameters:
    """RISE's masks; defaults are the paper's."""

    masks: int = _option(4000, "Random masks.")
    grid: int = _option(7, "Mask grid cells per side.")
    p_keep: float = _option(0.5, "Probability of keeping a cell.")
    mask_batch: int = _option(100, "Masked images per forward pass.")

    def __post_init__(self) -> None:
        _check("RISE", {
            "masks": (self.masks >= 1, "an integer >= 1"),
            "grid": (self.grid >= 1, "an integer >= 1"),
            "p_keep": (0 < self.p_keep <= 1, "in (0, 1]"),
            "mask_batch": (self.mask_batch >= 1, "an integer >= 1"),
        }, self)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Method:
    """An explanation method.

    Attributes
    ----------
    name, summary : str
    parameters : type
        Its frozen parameters dataclass.
    function : str
        `module:attribute` of its function below `net2brain_fovex.explain.methods`.
    layer : bool
        It reads one layer (`parameters.layer`), chosen once per run when not given.
    fixations : bool
        It returns fixations besides the maps.
    """

    name: str
    summary: str
    parameters: type
    function: str
    layer: bool = False
    fixations: bool = False

    def load(self) -> Callable:
        """The method's function (its module is imported on first use)."""
        module, _, attribute = self.function.partition(":")
        return getattr(importlib.import_module(f"net2brain_fovex.explain.methods.{module}"), attribute)


METHODS: Registry[Method] = Registry("method", [
    Method("fovex", "FovEx: foveated fixations found by gradient descent (Panda et al. 2025)",
           FovExParameters, "fovex:fovex", fixations=True),
    Method("gradcam", "Grad-CAM (Selvaraju et al. 2017)", CAMParameters, "gradcam:gradcam", layer=True),
    Method("gradcam++", "Grad-CAM++ (Chattopadhay et al. 2018)", CAMParameters,
           "gradcam_plus_plus:gradcam_plus_plus", layer=True),
    Method("rise", "RISE: randomised input sampling (Petsiuk et al. 2018)", RISEParameters, "rise:rise"),
    Method("random", "random CAM weights (the FovEx paper's baseline)", CAMParameters, "random_cam:random_cam",
           layer=True),
])


def parameters_for(method: str, parameters: Any = None) -> Any:
    """The parameters object of `method`: `parameters` itself when it is one, made from
    a mapping of its fields, or the defaults for None (validated when made)."""
    kind = METHODS[method].parameters
    if parameters is None:
        return kind()
    if isinstance(parameters, kind):
        return parameters
    if isinstance(parameters, Mapping):
        unknown = [key for key in parameters if key not in {f.name for f in fields(kind)}]
        if unknown:
            raise ConfigError(f"`{unknown[0]}` is not a parameter of method {method}; its parameters are "
                              f"{', '.join(f.name for f in fields(kind)) or 'none'}")
        return kind(**parameters)
    raise ConfigError(f"the parameters of method {method} are a {kind.__name__} or a mapping, not "
                      f"{type(parameters).__name__}")


def help_of(kind: type, name: str) -> str:
    """The help text of a parameter (its field's metadata)."""
    return next(f.metadata["help"] for f in fields(kind) if f.name == name)
