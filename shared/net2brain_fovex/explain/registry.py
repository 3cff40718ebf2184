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
from ..extras import require_library
from ..registry import Registry

__all__ = ["Method", "METHODS", "FovExParameters", "CAMParameters", "RISEParameters", "CentreParameters",
           "PerturbationParameters",
           "CAMBatchParameters", "FullGradParameters",
           "GAEParameters", "RolloutParameters",
           "parameters_for", "help_of", "PRED", "PRECISIONS"]

PRED = "pred"  # the explained class: the model's top-1 class on the clean image
PRECISIONS = ("fp32", "bf16", "fp16")  # the model's forward passes: float32, or autocast to bfloat16 / float16


def _option(default: Any, help: str, valid: Callable[[Any], bool] | None = None, expected: str = "",
            choices: tuple[str, ...] = ()) -> Any:
    """A parameter: its default, its help, and the range of its values (`valid`, said as
    `expected`, or a tuple of `choices`), shown in the help and checked when the
    parameters are made."""
    if choices:
        expected = f"one of {', '.join(choices)}"
    return field(default=default, metadata={"help": help, "valid": valid, "expected": expected, "choices": choices})


def _check(method: str, values: Any) -> None:
    """A `ConfigError` naming the first parameter out of its range (NaN fails every range)."""
    for item in fields(values):
        valid = item.metadata.get("valid")
        value = getattr(values, item.name)
        choices = item.metadata.get("choices")
        if choices and value not in choices:
            raise ConfigError(f"invalid {method} parameter `{item.name}`: {item.name} = {value!r} is not a choice; "
                              f"expected {item.metadata['expected']}")
        whole = isinstance(item.default, int) and not isinstance(item.default, bool)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if valid is not None and not (number and valid(value) and (not whole or float(value).is_integer())):
            raise ConfigError(f"invalid {method} parameter `{item.name}`: {item.name} = {value!r} is out of "
                              f"range; expected {item.metadata['expected']}")


def _positive(value: float) -> bool:
    return 0 < value < math.inf


_POSITIVE = "a finite number > 0"


def _non_negative(value: float) -> bool:
    return 0 <= value < math.inf


_NON_NEGATIVE = "a finite number >= 0"


@dataclass(frozen=True)
class FovExParameters:
    """FovEx's hyper-parameters; defaults are the reference's (ViT-B/16, 224 px)."""

    scanpath_length: int = _option(10, "Fixations per image.", lambda v: 1 <= v <= 1000,
                                   "a whole number from 1 to 1000")
    optimization_steps: int = _option(20, "Gradient steps per fixation.", lambda v: 1 <= v <= 100_000,
                                      "a whole number from 1 to 100000")
    lr: float = _option(0.1, "Signed-gradient step, in [-1, 1] image units.", _positive, _POSITIVE)
    foveation_sigma: float = _option(0.15, "Fovea width: exp(-d^2 / sigma).", _positive, _POSITIVE)
    blur_filter_size: int = _option(41, "Gaussian blur kernel (odd).", lambda v: 1 <= v <= 1001 and v % 2 == 1,
                                    "an odd whole number from 1 to 1001")
    blur_sigma: float = _option(10.0, "Gaussian blur sigma in pixels.", _positive, _POSITIVE)
    forgetting: float = _option(0.1, "Memory decay per fixation.", lambda v: 0 <= v <= 1, "a number in [0, 1]")
    random_restart: bool = _option(True, "Restart at a random position after a step that does not improve.")
    heatmap_sigma: float = _option(0.15, "Width of each fixation's Gaussian in the map.", _positive, _POSITIVE)
    patience: int = _option(0, "End a fixation's search after this many steps without improvement "
                               "(0: always all steps).", lambda v: 0 <= v <= 100_000, "a whole number from 0 to 100000")
    converge: int = _option(0, "End a fixation's search once it has sampled this many random restarts and its best "
                               "loss is below the converge ratio times the lowest loss a restart reached (0: never).",
                            lambda v: 0 <= v <= 100_000, "a whole number from 0 to 100000")
    converge_ratio: float = _option(0.1, "With converge: the best loss must be below this times the restarts' lowest.",
                                    lambda v: 0 < v <= 1, "a number in (0, 1]")
    precision: str = _option("fp32", "The model's passes: fp32, or under autocast in bf16 (CPUs and GPUs) or fp16 "
                                     "(GPUs).", choices=PRECISIONS)

    def __post_init__(self) -> None:
        _check("FovEx", self)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CAMParameters:
    """The class-activation-map methods' layer (None: `target_layer` chooses it)."""

    layer: str | None = _option(None, "Target layer (default: the last spatial map).")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CAMBatchParameters(CAMParameters):
    """Score-CAM's and Ablation-CAM's layer, and how many masked or ablated copies of one
    image a forward pass holds (it sets the memory, not the maps)."""

    cam_batch: int = _option(32, "Masked (cam:scorecam) or ablated (cam:ablationcam) copies of an image per forward "
                                 "pass.", lambda v: 1 <= v <= 100_000, "a whole number from 1 to 100000")

    def __post_init__(self) -> None:
        _check("CAM", self)


@dataclass(frozen=True)
class FullGradParameters:
    """FullGrad has no parameter: it reads the bias of every convolution and batch norm,
    not one layer."""

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RISEParameters:
    """RISE's masks; defaults are the paper's."""

    masks: int = _option(4000, "Random masks.", lambda v: 1 <= v <= 1_000_000, "an integer >= 1 and <= 1000000")
    grid: int = _option(7, "Mask grid cells per side.", lambda v: 1 <= v <= 1000, "an integer >= 1 and <= 1000")
    p_keep: float = _option(0.5, "Probability of keeping a cell.", lambda v: 0 < v <= 1, "in (0, 1]")
    mask_batch: int = _option(100, "Masked images per forward pass.", lambda v: 1 <= v <= 100_000,
                              "an integer >= 1 and <= 100000")
    precision: str = _option("fp32", "The model's passes: fp32, or under autocast in bf16 (CPUs and GPUs) or fp16 "
                                     "(GPUs).", choices=PRECISIONS)

    def __post_init__(self) -> None:
        _check("RISE", self)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CentreParameters:
    """The centre bias's width (`net2brain_fovex.explain.methods.centre`); the default
    follows Clarke & Tatler (2014)."""

    centre_sigma: float = _option(0.235, "Centre bias: the Gaussian's standard deviation as a fraction of each side.",
                                  _positive, _POSITIVE)

    def __post_init__(self) -> None:
        _check("centre", self)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PerturbationParameters:
    """Meaningful perturbation's mask optimisation
    (`net2brain_fovex.explain.methods.perturbation`); defaults are the paper's (Fong &
    Vedaldi 2017, Sec. 4), at 224 px. Prefixed: FovEx has `lr` and `blur_sigma` too."""

    perturbation_iterations: int = _option(300, "Adam steps on the mask.", lambda v: 1 <= v <= 100_000,
                                           "a whole number from 1 to 100000")
    perturbation_lr: float = _option(0.1, "Adam's learning rate.", _positive, _POSITIVE)
    perturbation_l1: float = _option(1e-4, "lambda1: weight of the deleted area, mean |1 - m|.", _non_negative,
                                     _NON_NEGATIVE)
    perturbation_tv: float = _option(1e-2, "lambda2: weight of the mask's total variation.", _non_negative,
                                     _NON_NEGATIVE)
    perturbation_tv_beta: float = _option(3.0, "beta: the exponent of the total variation.", lambda v: 1 <= v <= 10,
                                          "a number from 1 to 10")
    perturbation_blur_sigma: float = _option(10.0, "Sigma of the Gaussian blur that replaces deleted pixels, in pixels.",
                                             _positive, _POSITIVE)
    perturbation_mask_scale: int = _option(8, "Pixels per mask cell: the mask is (H/scale) x (W/scale), upsampled.",
                                           lambda v: 1 <= v <= 10_000, "a whole number from 1 to 10000")
    perturbation_mask_blur_sigma: float = _option(5.0, "Sigma of the blur of the upsampled mask, in pixels (0: none).",
                                                  _non_negative, _NON_NEGATIVE)
    perturbation_jitter: int = _option(4, "tau: each step shifts the image by 0 to tau - 1 pixels down and right, "
                                          "at random (0 or 1: no jitter).", lambda v: 0 <= v <= 1000,
                                       "a whole number from 0 to 1000")
    perturbation_noise: float = _option(0.0, "Standard deviation of Gaussian noise added to the perturbed image each "
                                             "step, in normalised units (0: none).", _non_negative, _NON_NEGATIVE)
    perturbation_circle_init: bool = _option(True, "Start from the smallest centred disc whose deletion removes 99% of "
                                                   "the class score (the paper); off: from nothing deleted.")

    def __post_init__(self) -> None:
        _check("perturbation", self)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GAEParameters:
    """GAE has no parameter (`net2brain_fovex.explain.methods.gae`): Chefer et al.'s rule
    reads every block's attention and its gradient."""

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RolloutParameters:
    """Attention rollout's pruning (`net2brain_fovex.explain.methods.rollout`); the default
    is the paper's (Abnar & Zuidema 2020: nothing discarded, heads averaged)."""

    discard_ratio: float = _option(0.0, "Attention rollout: the fraction of each attention row's lowest weights set "
                                        "to 0 in every block (never the class token's); 0: none (the paper), 0.9: "
                                        "jacobgil's vit-explain.", lambda v: 0 <= v < 1, "a number in [0, 1)")

    def __post_init__(self) -> None:
        _check("rollout", self)

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
    backward : bool
        It runs the model backwards (gradients), which keeps every layer's output.
    pass_size : str or None
        The parameter that sets how many images one forward pass holds (RISE's
        `mask_batch`); None: the batch size. Both size the memory estimate.
    library, extra : str or None
        The import name of the optional library it runs on, and the pip extra of this
        distribution that installs it (None: the core's dependencies suffice).
    """

    name: str
    summary: str
    parameters: type
    function: str
    layer: bool = False
    fixations: bool = False
    backward: bool = True
    pass_size: str | None = None
    library: str | None = None
    extra: str | None = None

    def require(self) -> None:
        """A `ConfigError` with the pip command when the method's library does not import."""
        if self.library is not None:
            require_library(self.library, self.extra, f"method {self.name}")

    def load(self) -> Callable:
        """The method's function (its module is imported on first use), once its library imports."""
        self.require()
        module, _, attribute = self.function.partition(":")
        return getattr(importlib.import_module(f"net2brain_fovex.explain.methods.{module}"), attribute)


# the library of the cam:* methods and the extra that installs it
CAM_LIBRARY = {"library": "pytorch_grad_cam", "extra": "cam"}
# the methods of pytorch-grad-cam (`methods/library_cam.py`): name, summary, parameters, flags
_LIBRARY_CAMS = [
    ("scorecam", "Score-CAM, through pytorch-grad-cam (Wang et al. 2020)", CAMBatchParameters,
     {"layer": True, "backward": False, "pass_size": "cam_batch"}),
    ("xgradcam", "XGrad-CAM, through pytorch-grad-cam (Fu et al. 2020)", CAMParameters, {"layer": True}),
    ("layercam", "Layer-CAM, through pytorch-grad-cam (Jiang et al. 2021)", CAMParameters, {"layer": True}),
    ("eigencam", "Eigen-CAM, class-agnostic, through pytorch-grad-cam (Muhammad & Yeasin 2020)", CAMParameters,
     {"layer": True, "backward": False}),
    ("hirescam", "HiResCAM, through pytorch-grad-cam (Draelos & Carin 2020)", CAMParameters, {"layer": True}),
    ("ablationcam", "Ablation-CAM, through pytorch-grad-cam (Desai & Ramaswamy 2020)", CAMBatchParameters,
     {"layer": True, "backward": False, "pass_size": "cam_batch"}),
    ("fullgrad", "FullGrad, every bias's gradient, no layer, through pytorch-grad-cam (Srinivas & Fleuret 2019)",
     FullGradParameters, {}),
]

METHODS: Registry[Method] = Registry("method", [
    Method("fovex", "FovEx: foveated fixations found by gradient descent (Panda et al. 2025)",
           FovExParameters, "fovex:fovex", fixations=True),
    Method("gradcam", "Grad-CAM (Selvaraju et al. 2017)", CAMParameters, "gradcam:gradcam", layer=True),
    Method("gradcam++", "Grad-CAM++ (Chattopadhay et al. 2018)", CAMParameters,
           "gradcam_plus_plus:gradcam_plus_plus", layer=True),
    *(Method(f"cam:{name}", summary, parameters, f"library_cam:{name}", **{**CAM_LIBRARY, **flags})
      for name, summary, parameters, flags in _LIBRARY_CAMS),
    Method("rise", "RISE: randomised input sampling (Petsiuk et al. 2018)", RISEParameters, "rise:rise",
           backward=False, pass_size="mask_batch"),
    Method("random", "random CAM weights (the FovEx paper's baseline)", CAMParameters, "random_cam:random_cam",
           layer=True, backward=False),
    Method("centre", "centre bias: a Gaussian at the image centre, whatever the image (the saliency benchmarks' "
           "baseline)", CentreParameters, "centre:centre", backward=False),
    Method("perturbation", "meaningful perturbation: a smooth mask optimised to delete the class with blur "
           "(Fong & Vedaldi 2017)", PerturbationParameters, "perturbation:perturbation"),
    Method("gae", "GAE: gradient-weighted attention rollout, vision transformers only (Chefer et al. 2021)",
           GAEParameters, "gae:gae"),
    Method("rollout", "attention rollout, vision transformers only (Abnar & Zuidema 2020)", RolloutParameters,
           "rollout:rollout", backward=False),
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
    """The help text of a parameter (its field's metadata), with its range."""
    item = next(f for f in fields(kind) if f.name == name)
    expected = item.metadata.get("expected")
    return f"{item.metadata['help']} [{expected}]" if expected else item.metadata["help"]
