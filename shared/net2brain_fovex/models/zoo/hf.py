"""hf: the vision models of transformers (Wolf et al. 2020, "Transformers: state-of-the-art
natural language processing", EMNLP demos), by Hugging Face hub id
(`facebook/dinov2-small`) or as a folder written by `save_pretrained` (config.json, the
weights, optionally preprocessor_config.json).

Any hub id of an architecture transformers builds for images or clips works; the
catalogue (`entries`) lists well-known ones per task. The model class and the task come
from the config (`architectures`, then `model_type`):

* `...ForImageClassification` / `...ForVideoClassification`: the classifier with its
  head (`AutoModelForImageClassification` / `AutoModelForVideoClassification`; DeiT's
  distilled `...WithTeacher` as it is, its two heads averaged); the output is its logits
  (class scores);
* depth estimation (DPT, Depth Anything, GLPN, ...): `AutoModelForDepthEstimation`;
* semantic segmentation (SegFormer, UperNet, ...): `AutoModelForSemanticSegmentation`;
  universal / instance segmentation (Mask2Former, MaskFormer, OneFormer):
  `AutoModelForUniversalSegmentation`;
* detection (DETR, Conditional and Deformable DETR, YOLOS, ...):
  `AutoModelForObjectDetection`;
* CLIP and SigLIP: the image tower only (`CLIPVisionModelWithProjection`, whose output
  is the projected image embedding, `SiglipVisionModel`); the text tower is never built;
* video backbones (VideoMAE, TimeSformer, ViViT without a head) and image backbones
  (DINOv2, DINO and MAE ViTs, BEiT pre-training, ...): `AutoModel`. MAE runs without
  masking and with its patches in order (`mask_ratio` 0, a fixed `noise`).

A config of another kind (a text, audio or multimodal language model) is refused
(`ModelError`).

Weights: `pretrained` reads `from_pretrained(name)` from the folder or from the Hugging
Face cache (`$HF_HOME/hub`); with `HF_HUB_OFFLINE=1` nothing else is tried (no network,
no retries). `random` builds the model from its config alone (`from_config`), which
must be in the folder or the cache. A missing file is a `WeightsError` saying how to
fetch it.

Preprocessing comes from the image processor (preprocessor_config.json, read with
`AutoImageProcessor`, which normalises legacy formats), mapped onto the toolbox's resize,
square centre crop and normalisation (`preprocessing`):

* `size` {"shortest_edge": N}: the shorter side resized to N (`resize_mode` shorter);
  a `longest_edge` beside it (DETR, Mask2Former: 800 / 1333) is not applied;
* `size` {"height": H, "width": W}: both sides resized to H x W (`resize_mode` squash);
* `crop_size` with `do_center_crop`: the crop; without a centre crop the crop is the
  resized side, so nothing is cut when H = W. The toolbox's crop is square: for
  H != W (or a non-square `crop_size`) the crop is the smaller side, which cuts the
  longer one;
* ConvNeXt's `crop_pct`: shorter side N / crop_pct, crop N (N < 384), else squash N;
* DPT / Depth Anything `keep_aspect_ratio` (resize keeping the aspect ratio, each side a
  multiple of `ensure_multiple_of`, no crop): approximated by the shorter side resized
  to the target and a square centre crop of it;
* `image_mean` / `image_std`, with the rescaling folded in (`rescale_factor`, ViViT's
  `offset`: values in [-1, 1] before normalisation); `do_normalize` false: mean 0, std 1;
* `resample` 0 nearest, 2 bilinear, 3 bicubic (1 Lanczos as bicubic, others bilinear).

The pixels equal those of transformers' PIL image processors, except that a centre crop
whose offset is a half pixel lands one pixel apart (torchvision rounds it to even,
transformers down).

Without an image processor config the preprocessing is ImageNet's at the config's
`image_size` S (shorter side floor(S * 256 / 224), crop S; a warning says so for
pretrained weights).

Default layers (`top`): the blocks of the encoder or backbone, the children of each
outermost ModuleList named `layer`, `layers`, `block`, `blocks` or `stages` outside a
decoder, neck or head (`vit.layers.N`, `encoder.layer.N` for DINOv2 and VideoMAE,
`vision_model.encoder.layers.N` for CLIP, `segformer.stages.N`, `swin.encoder.layers.N`,
`convnext.encoder.stages.N`, `model.encoder.layers.N` for DETR), the stages of a timm
backbone inside (DETR's `model.backbone.model.layer1..4`), a DPT neck's fusion layers
(`neck.fusion_stage.layers.N`), Mask2Former's pixel-decoder output
(`model.pixel_level_module.decoder.mask_projection`), and the output module: the head
(`classifier`, DeiT's `cls_classifier` and `distillation_classifier`, `head`, `decode_head`,
`visual_projection`, `class_labels_classifier`, `bbox_predictor`, `class_predictor`), or without one the backbone's final norm
(`layernorm`). Transformer blocks give (B, tokens, dim) with the class token (and
DINOv2's register tokens, DeiT's distillation token) first (`prefix_tokens`).
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import math
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ...errors import InputError, ModelError, WeightsError, reason
from ..built import Built, ModelEntry

__all__ = ["CATALOGUE", "entries", "offers", "build", "preprocessing", "top"]

# known vision checkpoints of the hub, by task; any other hub id of a supported
# architecture works as well
CATALOGUE: tuple[tuple[str, str], ...] = (
    ("facebook/dinov2-small", "self-supervised"),
    ("facebook/dinov2-base", "self-supervised"),
    ("facebook/dinov2-large", "self-supervised"),
    ("facebook/dinov2-giant", "self-supervised"),
    ("facebook/dinov2-with-registers-small", "self-supervised"),
    ("facebook/dinov2-with-registers-base", "self-supervised"),
    ("facebook/dino-vits8", "self-supervised"),
    ("facebook/dino-vits16", "self-supervised"),
    ("facebook/dino-vitb8", "self-supervised"),
    ("facebook/dino-vitb16", "self-supervised"),
    ("facebook/vit-mae-base", "self-supervised"),
    ("facebook/vit-mae-large", "self-supervised"),
    ("microsoft/beit-base-patch16-224-pt22k", "self-supervised"),
    ("google/vit-base-patch16-224", "classification"),
    ("microsoft/beit-base-patch16-224", "classification"),
    ("microsoft/swin-tiny-patch4-window7-224", "classification"),
    ("microsoft/swinv2-tiny-patch4-window8-256", "classification"),
    ("facebook/convnext-tiny-224", "classification"),
    ("facebook/convnextv2-tiny-1k-224", "classification"),
    ("facebook/deit-base-patch16-224", "classification"),
    ("microsoft/resnet-50", "classification"),
    ("google/mobilenet_v2_1.0_224", "classification"),
    ("apple/mobilevit-small", "classification"),
    ("nvidia/mit-b0", "classification"),
    ("Intel/dpt-large", "depth"),
    ("Intel/dpt-hybrid-midas", "depth"),
    ("LiheYoung/depth-anything-small-hf", "depth"),
    ("LiheYoung/depth-anything-base-hf", "depth"),
    ("LiheYoung/depth-anything-large-hf", "depth"),
    ("depth-anything/Depth-Anything-V2-Small-hf", "depth"),
    ("depth-anything/Depth-Anything-V2-Base-hf", "depth"),
    ("depth-anything/Depth-Anything-V2-Large-hf", "depth"),
    ("vinvino02/glpn-nyu", "depth"),
    ("nvidia/segformer-b0-finetuned-ade-512-512", "segmentation"),
    ("nvidia/segformer-b1-finetuned-ade-512-512", "segmentation"),
    ("nvidia/segformer-b2-finetuned-ade-512-512", "segmentation"),
    ("nvidia/segformer-b3-finetuned-ade-512-512", "segmentation"),
    ("nvidia/segformer-b4-finetuned-ade-512-512", "segmentation"),
    ("nvidia/segformer-b5-finetuned-ade-640-640", "segmentation"),
    ("facebook/mask2former-swin-tiny-ade-semantic", "segmentation"),
    ("facebook/mask2former-swin-small-ade-semantic", "segmentation"),
    ("facebook/mask2former-swin-large-ade-semantic", "segmentation"),
    ("facebook/mask2former-swin-tiny-coco-instance", "segmentation"),
    ("facebook/detr-resnet-50", "detection"),
    ("facebook/detr-resnet-101", "detection"),
    ("hustvl/yolos-tiny", "detection"),
    ("hustvl/yolos-small", "detection"),
    ("MCG-NJU/videomae-base", "video"),
    ("MCG-NJU/videomae-base-finetuned-kinetics", "video"),
    ("MCG-NJU/videomae-large-finetuned-kinetics", "video"),
    ("MCG-NJU/videomae-base-finetuned-ssv2", "video"),
    ("facebook/timesformer-base-finetuned-k400", "video"),
    ("facebook/timesformer-base-finetuned-k600", "video"),
    ("google/vivit-b-16x2-kinetics400", "video"),
    ("openai/clip-vit-base-patch32", "vision-language"),
    ("openai/clip-vit-base-patch16", "vision-language"),
    ("openai/clip-vit-large-patch14", "vision-language"),
    ("openai/clip-vit-large-patch14-336", "vision-language"),
    ("laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "vision-language"),
    ("google/siglip-base-patch16-224", "vision-language"),
    ("google/siglip-large-patch16-384", "vision-language"),
    ("google/siglip-so400m-patch14-384", "vision-language"),
)
_TASKS = dict(CATALOGUE)

# owner/name, as the hub spells repository ids
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")

# model types of CLIP-like models: the class of the image tower and whether the config
# nests it (`vision_config`)
_TOWERS = {
    "clip": ("CLIPVisionModelWithProjection", True),
    "clip_vision_model": ("CLIPVisionModelWithProjection", False),
    "siglip": ("SiglipVisionModel", True),
    "siglip_vision_model": ("SiglipVisionModel", False),
}
# image backbones trained without labels (what `AutoModel` builds of them)
_SELF_SUPERVISED_TYPES = ("dinov2", "dinov2_with_registers", "dinov3_vit", "dinov3_convnext", "vit_mae", "vit_msn",
                          "ijepa")
_SELF_SUPERVISED_NAMES = ("dino", "mae", "msn", "ijepa", "pt22k", "pt1k")
# model types with an image classifier whose `AutoModel` takes text as well
_NOT_BACKBONES = ("cohere2_vision", "perceiver", "siglip2", "metaclip_2")


@functools.cache
def entries() -> tuple[ModelEntry, ...]:
    return tuple(ModelEntry(name, task, "video" if task == "video" else "image", True) for name, task in CATALOGUE)


def offers(name: str) -> bool:
    """A catalogue id, a string shaped like a hub id (`owner/name`), or a folder holding
    a config.json."""
    return name in _TASKS or bool(_HUB_ID.fullmatch(name)) or (Path(name) / "config.json").is_file()


def build(name: str, pretrained: bool) -> Built:
    """The transformers model `name` (a hub id or a `save_pretrained` folder) with its
    pretrained weights from the folder or the Hugging Face cache, or random ones from its
    config; its preprocessing from its image processor config."""
    with _quiet():
        config = _config(name)
        plan = _plan(config, name)
        module = _model(name, plan, pretrained)
        settings = _processor_settings(name)
    if settings is None and pretrained:
        warnings.warn(f"{name} has no preprocessor_config.json (in the folder or the Hugging Face cache): "
                      "ImageNet preprocessing is used", stacklevel=2)
    module.eval()
    accepted = inspect.signature(module.forward).parameters
    call = functools.partial(
        _forward,
        interpolate="interpolate_pos_encoding" in accepted,
        patch=_patch_size(plan.config) if "noise" in accepted else None,
        logits=plan.class_scores,
    )
    video = plan.task == "video"
    return Built(
        module,
        preprocessing(settings, _image_size(plan.config)),
        task=plan.task,
        input="video" if video else "image",
        call=call,
        top=top,
        clip_frames=getattr(plan.config, "num_frames", None) if video else None,
        time_axis=2 if video else None,  # tubelet embeddings (Conv3d) give (B, C, T, H, W)
        class_scores=plan.class_scores,
        prefix_tokens=_prefix_tokens(module),
    )


@dataclass(frozen=True)
class _Plan:
    """What to build: the task, the transformers class (by name) and the config it takes."""

    task: str
    loader: str
    config: object
    class_scores: bool = False


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """transformers' load reports and progress bars off (our own messages say what
    matters), restored afterwards."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _config(name: str):
    """The model's config from the folder or the cache (never the network offline)."""
    from transformers import AutoConfig

    from ..weights import offline

    folder = Path(name)
    if folder.is_dir() and not (folder / "config.json").is_file():
        raise InputError(f"model folder {folder} has no config.json; save a transformers model there with "
                         "save_pretrained, or give a hub id as `model`")
    try:
        return AutoConfig.from_pretrained(name, local_files_only=offline())
    except ValueError as error:  # a model type this transformers does not know (remote code, newer release)
        raise ModelError(f"transformers cannot read the config of {name} ({reason(error)}); the hf source builds "
                         "the vision architectures of the installed transformers") from None
    except OSError as error:  # not in the cache offline, no such repository, unreadable JSON
        if folder.is_dir():
            raise InputError(f"cannot read {folder / 'config.json'} ({reason(error)}); save the model again with "
                             "save_pretrained") from None
        raise WeightsError(_missing(name, "the config", error)) from None


def _missing(name: str, what: str, error: BaseException) -> str:
    """How to get a hub model onto a machine without network."""
    from huggingface_hub.constants import HF_HUB_CACHE

    return (f"{what} of {name} is not available ({reason(error)}): on a machine with internet run "
            f"`python -c \"from transformers import AutoModel, AutoImageProcessor; AutoModel.from_pretrained('{name}'); "
            f"AutoImageProcessor.from_pretrained('{name}')\"` and copy its Hugging Face cache (HF_HOME/hub) to "
            f"{HF_HUB_CACHE}, or save the model with save_pretrained to a folder and pass the folder as `model`")


def _plan(config, name: str) -> _Plan:
    """The task and class of a config: its architectures first (a head decides), then its
    model type; `ModelError` for a model that is not a vision model."""
    import transformers
    from transformers.models.auto import modeling_auto as auto

    model_type = config.model_type
    architectures = tuple(config.architectures or ())

    def named(*suffixes: str) -> bool:
        return any(architecture.endswith(suffixes) for architecture in architectures)

    video_types = auto.MODEL_FOR_VIDEO_CLASSIFICATION_MAPPING_NAMES
    if named("ForVideoClassification") and model_type in video_types:
        return _Plan("video", "AutoModelForVideoClassification", config, class_scores=True)
    teachers = [architecture for architecture in architectures if architecture.endswith("WithTeacher")
                and hasattr(transformers, architecture)]
    if teachers:  # DeiT's distilled classifiers: both heads, averaged
        return _Plan(_TASKS.get(name, "classification"), teachers[0], config, class_scores=True)
    if named("ForImageClassification") and model_type in auto.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES:
        return _Plan(_TASKS.get(name, "classification"), "AutoModelForImageClassification", config, class_scores=True)
    if named("ForSemanticSegmentation") and model_type in auto.MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES:
        return _Plan("segmentation", "AutoModelForSemanticSegmentation", config)
    if model_type in auto.MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES:
        return _Plan("depth", "AutoModelForDepthEstimation", config)
    if model_type in _TOWERS:
        loader, nested = _TOWERS[model_type]
        return _Plan("vision-language", loader, _tower_config(config) if nested else config)
    if model_type in video_types:
        return _Plan("video", "AutoModel", config)
    if named("ForUniversalSegmentation", "ForInstanceSegmentation", "ForSegmentation") and \
            model_type in auto.MODEL_FOR_UNIVERSAL_SEGMENTATION_MAPPING_NAMES or \
            model_type in ("mask2former", "maskformer", "oneformer"):
        return _Plan("segmentation", "AutoModelForUniversalSegmentation", config)
    if model_type in auto.MODEL_FOR_OBJECT_DETECTION_MAPPING_NAMES:
        return _Plan("detection", "AutoModelForObjectDetection", config)
    if _image_backbone(model_type):
        if model_type == "vit_mae":
            config.mask_ratio = 0.0  # MAE masks 75 % of the patches at random by default
        self_supervised = (model_type in _SELF_SUPERVISED_TYPES or named("ForPreTraining", "ForMaskedImageModeling")
                           or any(tag in name.lower() for tag in _SELF_SUPERVISED_NAMES))
        return _Plan(_TASKS.get(name, "self-supervised" if self_supervised else "classification"), "AutoModel", config)
    raise ModelError(f"{name} (model type {model_type}) is not a vision model the hf source can build: it takes "
                     "image classification, segmentation, detection, depth, video and CLIP / SigLIP models")


def _image_backbone(model_type: str) -> bool:
    """Whether `AutoModel` builds an image backbone of this model type (not the language
    model around a vision part, as for Llama 4)."""
    from transformers.models.auto import modeling_auto as auto

    if model_type in _NOT_BACKBONES:
        return False
    built = auto.MODEL_MAPPING_NAMES.get(model_type)
    if model_type in auto.MODEL_FOR_IMAGE_MAPPING_NAMES:
        return built == auto.MODEL_FOR_IMAGE_MAPPING_NAMES[model_type]
    return built is not None and model_type in auto.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES


def _tower_config(config):
    """The image tower's config of a CLIP / SigLIP config; CLIP's projection size lives
    beside it, in the outer config."""
    vision = config.vision_config
    if hasattr(config, "projection_dim"):
        vision.projection_dim = config.projection_dim
    return vision


def _model(name: str, plan: _Plan, pretrained: bool):
    import transformers

    from ..weights import offline

    cls = getattr(transformers, plan.loader)
    if not pretrained:
        return cls.from_config(plan.config) if plan.loader.startswith("Auto") else cls(plan.config)
    try:
        module, info = cls.from_pretrained(name, config=plan.config, local_files_only=offline(),
                                           output_loading_info=True)
    except OSError as error:  # no weights file in the folder or the cache
        if Path(name).is_dir():
            raise WeightsError(f"model folder {name} has no weights ({reason(error)}); save the model there with "
                               "save_pretrained, or use `weights=random`") from None
        raise WeightsError(_missing(name, "the weights", error)) from None
    except RuntimeError as error:  # shapes that do not fit the config
        raise WeightsError(f"the weights of {name} do not fit its config ({reason(error)})") from None
    missing = sorted(info.get("missing_keys", ()))
    if missing:
        warnings.warn(f"{len(missing)} parameter(s) of {name} are not in its weights and were initialised at random "
                      f"(first: {missing[0]})", stacklevel=3)
    return module


def _processor_settings(name: str) -> dict | None:
    """The image processor's settings (normalised by `AutoImageProcessor`), None when
    there is no processor config."""
    from transformers import AutoImageProcessor

    from ..weights import offline

    try:
        return AutoImageProcessor.from_pretrained(name, local_files_only=offline()).to_dict()
    except (OSError, ValueError, KeyError, ImportError):  # no preprocessor_config.json, an unknown processor
        return None


def _image_size(config) -> int:
    """The input side the config declares (a backbone's or tower's when nested), 224 by default."""
    for holder in (config, getattr(config, "backbone_config", None), getattr(config, "vision_config", None)):
        size = getattr(holder, "image_size", None)
        if isinstance(size, int):
            return size
        if isinstance(size, Sequence) and size:
            return int(max(size))
    return 224


def _patch_size(config) -> int:
    size = config.patch_size
    return int(size if isinstance(size, int) else size[0])


def _prefix_tokens(module) -> int:
    """Class (`cls_token`, CLIP's `class_embedding`), distillation and register tokens
    ahead of the patch tokens."""
    count = 0
    for parameter_name, parameter in module.named_parameters():
        last = parameter_name.rsplit(".", 1)[-1]
        if last in ("cls_token", "class_embedding", "distillation_token"):
            count += 1
        elif last == "register_tokens":  # (1, registers, dim)
            count += int(parameter.shape[1])
    return count


def _forward(module, batch, *, interpolate: bool, patch: int | None, logits: bool):
    """A normalised batch into a transformers model: keyword `pixel_values`, (B, 3, H, W)
    or clips (B, T, 3, H, W) as the video models take them; position embeddings
    interpolated to other input sizes where the model can; MAE's patches kept in order
    (its `noise` ascending, nothing masked). Classifiers give their logits."""
    import torch

    kwargs = {"pixel_values": batch, "return_dict": True}
    if interpolate:
        kwargs["interpolate_pos_encoding"] = True
    if patch is not None:
        patches = (batch.shape[-2] // patch) * (batch.shape[-1] // patch)
        kwargs["noise"] = torch.arange(patches, device=batch.device, dtype=torch.float32).expand(len(batch), -1)
    output = module(**kwargs)
    return output.logits if logits else output


# ------------------------------------------------------------------ preprocessing
_RESAMPLE = {0: "nearest", 1: "bicubic", 2: "bilinear", 3: "bicubic"}


def preprocessing(settings: Mapping | None, image_size: int = 224):
    """The toolbox's preprocessing for an image processor's settings (module docstring:
    the mapping and its approximations).

    Parameters
    ----------
    settings : mapping or None
        `image_processor.to_dict()`: size, crop_size, do_center_crop, image_mean,
        image_std, resample, ...; None: ImageNet's preprocessing at `image_size`.
    image_size : int, default 224
        The model's input side, for the ImageNet defaults.

    Returns
    -------
    Preprocessing
    """
    from ..preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

    if settings is None:
        return Preprocessing(resize=math.floor(image_size * 256 / 224), crop=image_size)
    size = dict(settings.get("size") or {})
    crop_size = dict(settings.get("crop_size") or {})
    centre_crop = bool(settings.get("do_center_crop")) and bool(crop_size)
    if size.get("height") and size.get("width"):
        height, width = int(size["height"]), int(size["width"])
        if settings.get("keep_aspect_ratio"):
            mode, resize, crop = "shorter", min(height, width), min(height, width)
        else:
            mode, resize, crop = "squash", (height, width) if height != width else height, min(height, width)
    elif size.get("shortest_edge"):
        side = int(size["shortest_edge"])
        crop_pct = settings.get("crop_pct")
        if crop_pct and side < 384:  # ConvNeXt's processor
            mode, resize, crop = "shorter", int(side / crop_pct), side
        elif crop_pct:
            mode, resize, crop = "squash", side, side
        else:
            mode, resize, crop = "shorter", side, side
    elif size.get("longest_edge"):
        side = int(size["longest_edge"])
        mode, resize, crop = "squash", side, side
    else:
        mode, resize, crop = "shorter", math.floor(image_size * 256 / 224), image_size
    if centre_crop:
        crop = min(int(crop_size.get("height") or crop), int(crop_size.get("width") or crop))
    mean, std = tuple(settings.get("image_mean") or IMAGENET_MEAN), tuple(settings.get("image_std") or IMAGENET_STD)
    if settings.get("do_normalize") is False:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    # the model sees ((255 x) * factor - offset - mean) / std for x in [0, 1]
    factor = float(settings.get("rescale_factor") or 1 / 255) if settings.get("do_rescale", True) else 1.0
    offset = 1.0 if settings.get("offset") else 0.0
    scale = 255 * factor
    resample = settings.get("resample")
    return Preprocessing(
        resize=resize,
        crop=crop,
        mean=tuple(float((m + offset) / scale) for m in _three(mean)),
        std=tuple(float(s / scale) for s in _three(std)),
        interpolation=_RESAMPLE.get(int(resample), "bilinear") if resample is not None else "bilinear",
        resize_mode=mode,
    )


def _three(values: Sequence[float]) -> tuple[float, float, float]:
    """Per-channel values; a single value for all three channels."""
    values = tuple(float(v) for v in (values if isinstance(values, Sequence) else [values]))
    return values * 3 if len(values) == 1 else values


# ------------------------------------------------------------------ default layers
_BLOCK_LISTS = ("layer", "layers", "block", "blocks", "stages")
_NOT_ENCODER = {"decoder", "neck", "head", "decode_head", "bbox_predictor", "transformer_module"}
_HEADS = ("classifier", "cls_classifier", "distillation_classifier", "head", "decode_head", "visual_projection",
          "class_labels_classifier", "bbox_predictor", "class_predictor")
_FINAL_NORMS = ("layernorm", "post_layernorm", "layer_norm", "norm")
_DECODER_OUTPUTS = ("pixel_level_module.decoder.mask_projection",)


def top(module, available: Sequence[str]) -> list[str]:
    """The encoder / backbone blocks, a DPT neck's fusion layers, Mask2Former's pixel
    decoder output and the head (without one, the final norm), in execution order
    (module docstring)."""
    from torch import nn

    executed = set(available)
    names: list[str] = []
    lists: list[str] = []
    for name, child in module.named_modules():
        if any(name.startswith(prefix + ".") for prefix in lists):
            continue
        parts = name.split(".")
        if isinstance(child, nn.ModuleList) and parts[-1] in _BLOCK_LISTS and (
                name.endswith("neck.fusion_stage.layers") or not _NOT_ENCODER & set(parts[:-1])):
            items = [f"{name}.{key}" for key, _ in child.named_children()]
            if items and all(item in executed for item in items):
                names += items
                lists.append(name)
        module_names = getattr(getattr(child, "feature_info", None), "module_name", None)
        if callable(module_names):  # a timm backbone inside (DETR's ResNet)
            names += [f"{name}.{stage}" for stage in module_names()]
        if name.endswith(_DECODER_OUTPUTS):
            names.append(name)
    shallow = [name for name in available if name.count(".") <= 1]
    heads = [name for name in shallow if name.rsplit(".", 1)[-1] in _HEADS]
    heads = [name for name in heads if not any(name.startswith(head + ".") for head in heads)]  # DPT's head.head
    norms = [name for name in shallow if name.rsplit(".", 1)[-1] in _FINAL_NORMS]
    names += heads or norms[-1:]
    chosen = set(names)
    return [name for name in available if name in chosen]
