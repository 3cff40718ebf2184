"""The rest of the class-activation-map family, through pytorch-grad-cam (J. Gildenblat
and contributors, https://github.com/jacobgil/pytorch-grad-cam; PyPI `grad-cam`, the
`cam` extra) rather than rewritten:

* Score-CAM (Wang et al., "Score-CAM: Score-Weighted Visual Explanations for
  Convolutional Neural Networks", CVPR Workshops 2020): w_k the softmax over the
  channels of the target logit on the image multiplied by channel k's upsampled,
  min-max normalised map (no gradients; `cam_batch` masked copies per forward pass);
* XGrad-CAM (Fu et al., "Axiom-based Grad-CAM", BMVC 2020):
  w_k = sum_ij g_ij A_ij / (sum_ij A_ij + 1e-7);
* Layer-CAM (Jiang et al., "LayerCAM: Exploring Hierarchical Class Activation Maps
  for Localization", IEEE TIP 2021): cam = sum_k ReLU(g_k) * A_k, per position;
* Eigen-CAM (Muhammad & Yeasin, "Eigen-CAM: Class Activation Map using Principal
  Components", IJCNN 2020): the projection of the centred activations on their first
  principal component (an SVD per image). It does not read the target: the same map
  for every class (class-agnostic); the sign of a principal component is arbitrary, so
  the map can highlight the complement of the object;
* HiResCAM (Draelos & Carin, "Use HiResCAM instead of Grad-CAM for faithful
  explanations of convolutional neural networks", arXiv 2011.08891, 2020):
  cam = sum_k g_k * A_k, per position;
* Ablation-CAM (Desai & Ramaswamy, "Ablation-CAM: Visual Explanations for Deep
  Convolutional Network via Gradient-free Localization", WACV 2020):
  w_k = (y - y_k) / y, y_k the target logit with channel k of the layer set to its
  minimum - 1e7 (0 when the layer's minimum is 0); `cam_batch` ablated copies per
  forward pass;
* FullGrad (Srinivas & Fleuret, "Full-Gradient Representation for Neural Network
  Visualization", NeurIPS 2019): |x * dY/dx| plus, for every Conv2d and BatchNorm2d
  with a bias b, |b * dY/dz| of its output z, each upsampled and min-max normalised per
  channel, summed. It has no target layer (no `layer` parameter); on a vision
  transformer only the patch embedding (a convolution) and the input gradient count.

with A_k the layer's channel k, g_k = dY_c/dA_k the gradient of the target logit.
The target layer follows our Grad-CAM's rule (`cam.target_layer`, or `layer`); a
transformer's token grid (B, tokens, D) goes to the library as the (B, D, g, g) map
of its patch tokens (`context.prefix_tokens` dropped), as `cam.as_maps` makes it. The
target is the library's `ClassifierOutputTarget` of each image's class. The library
keeps ReLU(cam), resizes it to the input (OpenCV, bilinear) and scales it; the maps are
then min-max normalised per image (`normalise_maps`), float32 (B, H, W) on the images'
device, as every method's.

How the library is run: on the frozen model (evaluation mode, no parameter gradients,
both restored after), through a wrapper that returns the logits and whose `zero_grad`
does nothing (the caller's gradients stay); the layer's output is handed on as a copy
(as `models.layers.capture` does), so that an in-place operation after it cannot change
what the library recorded; PyTorch's fused transformer path, which skips submodules'
hooks, is off during the call; the library's progress bars are silenced; a module the
library swaps in (Ablation-CAM's ablation layer) is swapped back whatever happens.
Score-CAM and Ablation-CAM run one image at a time (they loop over images anyway; it
bounds the memory of the masked copies), the others on the whole batch; every
computation of the library is per image, so a batch gives the maps of its images one by
one (up to float rounding).
"""
from __future__ import annotations

import contextlib
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from ...errors import unknown_name
from ...extras import require_library
from ..base import Attribution, Context, check_batch, frozen, logits_of, normalise_maps
from ..registry import CAM_LIBRARY, CAMBatchParameters, CAMParameters, FullGradParameters
from .cam import as_maps, did_not_run, not_a_map, resolve_layer

__all__ = ["library_cam", "scorecam", "xgradcam", "layercam", "eigencam", "hirescam", "ablationcam", "fullgrad"]


@dataclass(frozen=True)
class _Kind:
    """A pytorch-grad-cam class: its name, its parameters, whether it reads one layer and
    whether it runs per image."""

    cls: str
    parameters: type = CAMParameters
    layer: bool = True
    per_image: bool = False


_KINDS = {
    "scorecam": _Kind("ScoreCAM", CAMBatchParameters, per_image=True),
    "xgradcam": _Kind("XGradCAM"),
    "layercam": _Kind("LayerCAM"),
    "eigencam": _Kind("EigenCAM"),
    "hirescam": _Kind("HiResCAM"),
    "ablationcam": _Kind("AblationCAM", CAMBatchParameters, per_image=True),
    "fullgrad": _Kind("FullGrad", FullGradParameters, layer=False),
}


def library_cam(
    name: str, model: nn.Module, images: torch.Tensor, targets: torch.Tensor, context: Context,
    *,
    parameters: object = None,
) -> Attribution:
    """Maps of pytorch-grad-cam's method `name` (the module docstring).

    Parameters
    ----------
    name : str
        scorecam, xgradcam, layercam, eigencam, hirescam, ablationcam or fullgrad: the
        method `cam:NAME`.
    model : torch.nn.Module
        The classifier; run in evaluation mode, its parameters, gradients, modules and
        mode left as they were.
    images : tensor (B, 3, H, W)
        The model's normalised input batch.
    targets : LongTensor (B,)
        The class to explain per image (not read by Eigen-CAM).
    context : Context
        Uses `prefix_tokens` (dropped from a token grid).
    parameters : CAMParameters, CAMBatchParameters or FullGradParameters, optional
        `layer`: the dotted module path of the layer, default `target_layer(...)`;
        `cam_batch` (CAMBatchParameters of Score-CAM and Ablation-CAM): copies of an
        image per forward pass, default 32. FullGrad takes none (FullGradParameters).

    Returns
    -------
    Attribution
        Maps (B, H, W) float32 in [0, 1] on the images' device.

    Raises
    ------
    ConfigError
        When pytorch-grad-cam is not installed (the pip command), or `name` is unknown.
    UnknownNameError
        When `layer` is not a module of the model.
    ModelError
        When the layer does not run, or outputs neither a spatial map nor a token grid.
    """
    kind = _KINDS.get(name)
    if kind is None:
        raise unknown_name("pytorch-grad-cam method", name, _KINDS)
    require_library(CAM_LIBRARY["library"], CAM_LIBRARY["extra"], f"method cam:{name}")
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    check_batch(images, targets)
    height, width = images.shape[-2:]
    prefix = context.prefix_tokens
    parameters = parameters if parameters is not None else kind.parameters()
    layer = resolve_layer(model, images.shape, prefix, getattr(parameters, "layer", None)) if kind.layer else None
    with frozen(model), _modules_kept(model), _no_fastpath(), _quiet(), torch.enable_grad():
        module = dict(model.named_modules())[layer] if layer is not None else None
        cam = _build(pytorch_grad_cam, kind, model, module, parameters, images, prefix)
        seen: list[bool] = []
        # the check before the library's hooks (they fail on an output that is not a map), the copy after them
        hooks = [module.register_forward_hook(_check(layer, height, width, prefix, seen), prepend=True),
                 module.register_forward_hook(_copy)] if module is not None else []
        try:
            chunks = [slice(i, i + 1) for i in range(len(images))] if kind.per_image else [slice(None)]
            maps = []
            for chunk in chunks:
                inputs = images[chunk].detach().clone().requires_grad_(cam.uses_gradients)
                wanted = [ClassifierOutputTarget(int(target)) for target in targets[chunk]]
                try:
                    maps.append(torch.from_numpy(cam(inputs, wanted)))
                except Exception:
                    if layer is not None and not seen:  # the library fails on the missing activations
                        raise did_not_run(layer) from None
                    raise
        finally:
            for hook in hooks:
                hook.remove()
            cam.activations_and_grads.release()
    return Attribution(maps=normalise_maps(torch.cat(maps).float()).to(images.device))


def _build(library: types.ModuleType, kind: _Kind, model: nn.Module, module: nn.Module | None, parameters: object,
           images: torch.Tensor, prefix: int):
    """The library's CAM object on the model's logits (its hooks are on the layer from here on)."""
    wrapper = _Logits(model)
    if module is None:
        return getattr(library, kind.cls)(wrapper, [])  # FullGrad: every bias layer's output is a map already
    height, width = images.shape[-2:]
    options = {}
    if kind.cls == "AblationCAM":
        tokens = _is_token_grid(model, module, images)
        options = {"batch_size": parameters.cam_batch,
                   "ablation_layer": library.AblationLayerVit() if tokens else library.AblationLayer()}
    def grid(output: torch.Tensor) -> torch.Tensor:  # a token grid's (B, D, g, g) map; a map as it is
        return as_maps(output, height, width, prefix)

    cam = getattr(library, kind.cls)(wrapper, [module], reshape_transform=grid, **options)
    if kind.cls == "ScoreCAM":
        cam.batch_size = parameters.cam_batch  # read as an attribute (16 when it is not set)
    return cam


# ------------------------------------------------------------------ the methods
def _method(name: str, reference: str) -> Callable[..., Attribution]:
    """The method function of `cam:NAME`, calling `library_cam(name, ...)`."""

    def explain(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, context: Context, *,
                parameters: object = None) -> Attribution:
        return library_cam(name, model, images, targets, context, parameters=parameters)

    explain.__name__ = explain.__qualname__ = name
    explain.__doc__ = (f"{reference} maps, through pytorch-grad-cam: `library_cam({name!r}, model, images, targets, "
                       "context, parameters=...)`, which documents the parameters, result and errors.")
    return explain


scorecam = _method("scorecam", "Score-CAM (Wang et al., CVPR Workshops 2020)")
xgradcam = _method("xgradcam", "XGrad-CAM (Fu et al., BMVC 2020)")
layercam = _method("layercam", "Layer-CAM (Jiang et al., IEEE TIP 2021)")
eigencam = _method("eigencam", "Eigen-CAM (Muhammad & Yeasin, IJCNN 2020), class-agnostic")
hirescam = _method("hirescam", "HiResCAM (Draelos & Carin, 2020)")
ablationcam = _method("ablationcam", "Ablation-CAM (Desai & Ramaswamy, WACV 2020)")
fullgrad = _method("fullgrad", "FullGrad (Srinivas & Fleuret, NeurIPS 2019), without a target layer")


# ------------------------------------------------------------------ helpers
class _Logits(nn.Module):
    """The model as the library calls it: logits out; `zero_grad` does nothing (the
    parameters are frozen, so no gradient reaches them, and the caller's stay)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return logits_of(self.model(x))

    def zero_grad(self, set_to_none: bool = True) -> None:
        return None


def _check(layer: str, height: int, width: int, prefix: int, seen: list[bool]) -> Callable:
    """A forward hook noting that the layer ran, and a `ModelError` for an output that is
    not a map or token grid."""

    def hook(_module, _inputs, output):
        seen.append(True)
        if not isinstance(output, torch.Tensor) or as_maps(output, height, width, prefix) is None:
            raise not_a_map(layer, output, height, width, prefix)

    return hook


def _copy(_module, _inputs, output: torch.Tensor) -> torch.Tensor:
    """A forward hook after the library's: the rest of the model gets a copy of the output."""
    return output.clone()


def _is_token_grid(model: nn.Module, module: nn.Module, images: torch.Tensor) -> bool:
    """Whether the layer outputs tokens (B, tokens, D): one forward pass on one image."""
    shapes = []
    handle = module.register_forward_hook(lambda _m, _i, output: shapes.append(getattr(output, "ndim", 0)))
    try:
        with torch.no_grad():
            model(images[:1])
    finally:
        handle.remove()
    return bool(shapes) and shapes[-1] == 3


@contextlib.contextmanager
def _modules_kept(model: nn.Module) -> Iterator[None]:
    """Every submodule of `model` as it was, after the block (the library swaps modules in)."""
    kept = [(module, dict(module._modules)) for module in model.modules()]
    try:
        yield
    finally:
        for module, children in kept:
            if module._modules != children:
                module._modules.clear()
                module._modules.update(children)


@contextlib.contextmanager
def _no_fastpath() -> Iterator[None]:
    """PyTorch's fused transformer path off in the block: it skips the submodules' hooks."""
    enabled = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(enabled)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The library's tqdm progress bars (Score-CAM, Ablation-CAM) silenced in the block."""
    from pytorch_grad_cam import ablation_cam, score_cam

    silent = types.SimpleNamespace(tqdm=lambda iterable, *args, **kwargs: iterable)
    modules = [score_cam, ablation_cam]
    originals = [module.tqdm for module in modules]
    for module in modules:
        module.tqdm = silent
    try:
        yield
    finally:
        for module, original in zip(modules, originals, strict=True):
            module.tqdm = original
