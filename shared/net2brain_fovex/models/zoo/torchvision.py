"""torchvision: the models of `torchvision.models` and of its task modules, each with the
transforms of its default weights; pretrained weights from `$TORCH_HOME/hub/checkpoints`.

Families (task, what goes in, the preprocessing of the default weights' transforms):

* classification (`torchvision.models`): `ImageClassification`, images (B, 3, H, W).
* segmentation (`torchvision.models.segmentation`: DeepLabV3, FCN, LRASPP):
  `SemanticSegmentation` resizes the shorter side to 520 and crops nothing; the toolbox
  needs square batches, so the 520 px square at the centre is kept (crop = resize = 520),
  ImageNet normalisation. The model returns a dict {"out", "aux"}.
* detection (`torchvision.models.detection`: Faster / Mask / Keypoint R-CNN, RetinaNet,
  FCOS, SSD, SSDlite): `ObjectDetection` only scales to [0, 1]; the model normalises and
  resizes inside (`GeneralizedRCNNTransform`). Its input is therefore unnormalised
  (mean 0, std 1) and a square of the size the model resizes to (the shorter side resized
  to it, then centre-cropped): 800 for the R-CNNs, RetinaNet and FCOS, 320 for
  `fasterrcnn_mobilenet_v3_large_320_fpn` and SSDlite, 300 for SSD (read from the
  model's `transform`), so that the model's internal resize is the identity. With an
  `image_size` override the model still resizes to its own size inside. Images go in as
  a list of (3, H, W) tensors; in eval mode the model returns its detections.
* video (`torchvision.models.video`: R3D, MC3, R(2+1)D, S3D, MViT v1 / v2, Swin3D t / s /
  b): `VideoClassification`, frame by frame: R3D, MC3 and R(2+1)D resize to exactly
  128 x 171 and crop 112, S3D to 256 x 256 and crop 224, MViT and Swin3D the shorter side
  to 256 and crop 224. Clips (B, T, 3, H, W) go in as (B, 3, T, H, W); frames per clip
  (`clip_len` of the weights' evaluation): 16 for R3D, MC3, R(2+1)D and MViT (whose
  positional encoding is built for exactly 16 frames of 224 x 224), 128 for S3D, 32 for
  Swin3D. The output is Kinetics-400 class scores.

Left out: `torchvision.models.quantization` (int8 copies of the classifiers above, for CPU
inference backends: same architectures and layer names, quantised tensors in the hooks,
no gradients) and `torchvision.models.optical_flow` (RAFT takes a pair of frames and
returns a list of flow fields, one per refinement step: no features of one stimulus).

Default layers (`top`), in execution order:

* classification: ResNet / ResNeXt / Wide ResNet `layer1`..`layer4`, `avgpool`, `fc`;
  AlexNet the ReLUs of conv1-5 and fc6-7 and fc8; VGG the five max-pools and fc6 (ReLU),
  fc7 (ReLU), fc8; ViT the encoder blocks and the head; other families their children,
  containers opened one level (`children_opened`).
* segmentation: the encoder stages (`backbone.layer1`..`layer4` for ResNet encoders,
  every `backbone.N` block of a MobileNet), `classifier` and, when present,
  `aux_classifier`.
* detection: the backbone stages (`backbone.body.layer1`..`layer4` for ResNet, every
  `backbone.body.N` block of a MobileNet) and the FPN outputs (the 3 x 3 convolutions
  `backbone.fpn.layer_blocks.N`, and `backbone.fpn.extra_blocks.p6` / `p7` of RetinaNet
  and FCOS); SSD and SSDlite the feature maps their heads read (`backbone.features` of
  VGG or `backbone.features.N` of MobileNet, then `backbone.extra.N`). The backbone
  itself returns a dict of levels and the heads return lists of boxes (pooled over the
  images of a batch): neither is offered, and the toolbox's hooks record nothing for a
  module whose output is a dict.
* video: R3D, MC3, R(2+1)D `stem`, `layer1`..`layer4`, `avgpool`, `fc` (5-D maps
  (B, C, T, H, W), `time_axis` 2); S3D its `features.N`, `avgpool`, `classifier` (5-D,
  time axis 2); MViT the `blocks.N` (tokens (B, 1 + T' H' W', C), a class token first and
  time folded into the tokens: `prefix_tokens` 1) and `head`; Swin3D its `features.N`
  (channels last, (B, T', H', W', C): time axis 1) and `head`.
"""
from __future__ import annotations

import functools
import re

from ..built import Built, ModelEntry

__all__ = ["entries", "offers", "build", "preprocessing"]

# the modules of torchvision.models whose builders are offered, with their task
_MODULES = {
    "": "classification",
    ".segmentation": "segmentation",
    ".detection": "detection",
    ".video": "video",
}
# frames per clip of the weights' evaluation (`clip_len` in their documentation)
_CLIP_FRAMES = {"r3d_18": 16, "mc3_18": 16, "r2plus1d_18": 16, "mvit_v1_b": 16, "mvit_v2_s": 16, "s3d": 128,
                "swin3d_t": 32, "swin3d_s": 32, "swin3d_b": 32}
# detectors whose pretrained build freezes the backbone's batch norm (torchvision's
# `is_trained` switch); their v2 versions and SSD keep nn.BatchNorm2d
_FROZEN_NORM = re.compile(r"(fasterrcnn|maskrcnn|keypointrcnn|retinanet|fcos)_(?!.*_v2$)")


@functools.cache
def _names() -> dict[str, str]:
    """{name: task} of the classifiers, segmentation, detection and video models."""
    import importlib

    import torchvision

    names = {}
    for suffix, task in _MODULES.items():
        module = importlib.import_module("torchvision.models" + suffix)
        names.update(dict.fromkeys(torchvision.models.list_models(module=module), task))
    return names


@functools.cache
def entries() -> tuple[ModelEntry, ...]:
    from torchvision.models import get_model_weights

    def has_weights(name: str) -> bool:
        try:
            return bool(list(get_model_weights(name)))
        except (ValueError, AttributeError):
            return False

    return tuple(ModelEntry(name, task, "video" if task == "video" else "image", has_weights(name))
                 for name, task in _names().items())


def offers(name: str) -> bool:
    return name in _names()


def build(name: str, pretrained: bool) -> Built:
    """A torchvision model with its default weights' preprocessing, default layers and
    input (see the module's description).

    Parameters
    ----------
    name : str
        A name of `entries()`.
    pretrained : bool
        Default pretrained weights from the torch hub cache (`torchvision_pretrained`), or
        random ones.

    Returns
    -------
    Built

    Raises
    ------
    UnknownNameError
        A name torchvision does not offer here.
    WeightsError
        Pretrained weights missing from the cache while offline, or that do not load.
    """
    from ...errors import unknown_name
    from ..weights import torchvision_pretrained

    task = _names().get(name)
    if task is None:
        raise unknown_name("torchvision model", name, _names(), hint="`list_models(source='torchvision')` lists them")
    module = torchvision_pretrained(name) if pretrained else _random(name, task)
    if task == "classification":
        return Built(module, preprocessing(name), task=task, top=functools.partial(_classifier_top, name))
    if task == "segmentation":
        return Built(module, preprocessing(name), task=task, top=_segmentation_top, class_scores=False)
    if task == "detection":
        return Built(module, preprocessing(name, module), task=task, call=_image_list, top=_detection_top,
                     class_scores=False)
    return Built(module, preprocessing(name), task=task, input="video", call=_channels_first_clip,
                 top=functools.partial(_video_top, name), clip_frames=_CLIP_FRAMES[name],
                 time_axis=1 if name.startswith("swin3d") else 2, prefix_tokens=1 if name.startswith("mvit") else None)


def _random(name: str, task: str):
    """The architecture of the pretrained build with random weights: no ImageNet backbone
    weights (the builders' default would download them), the auxiliary head the FCN and
    DeepLabV3 weights carry, frozen batch norm where the pretrained detector has it, so
    that both builds have the same layers and state-dict keys."""
    from torchvision.models import get_model

    options = {}
    if task in ("segmentation", "detection"):
        options["weights_backbone"] = None
    if name.startswith(("fcn_", "deeplabv3_")):
        options["aux_loss"] = True
    module = get_model(name, weights=None, **options)
    if _FROZEN_NORM.match(name):
        _freeze_batch_norm(module)
    return module


def _freeze_batch_norm(module) -> None:
    """Replace every nn.BatchNorm2d by torchvision's FrozenBatchNorm2d (the same values in
    eval mode; no `num_batches_tracked` buffer), as the pretrained detectors are built."""
    from torch import nn
    from torchvision.ops import FrozenBatchNorm2d

    for parent in list(module.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                setattr(parent, child_name, FrozenBatchNorm2d(child.num_features, eps=child.eps))


def preprocessing(name: str, module=None):
    """The preprocessing of a torchvision model's default weights (ImageNet defaults when
    the model has no weights enum).

    Parameters
    ----------
    name : str
    module : torch.nn.Module, optional
        The built model: detectors need it (their input size is the one their transform
        resizes to).
    """
    from torchvision.models import get_model_weights

    from ..preprocessing import Preprocessing

    task = _names().get(name, "classification")
    if task == "detection":
        if module is None:
            raise ValueError(f"the input size of detector {name} is read from the built model: pass it as `module`")
        return _detection_preprocessing(module)
    try:
        preset = get_model_weights(name).DEFAULT.transforms()
    except (ValueError, AttributeError):
        return Preprocessing()
    if task == "segmentation":
        side = int(preset.resize_size[0])
        return Preprocessing(resize=side, crop=side, mean=tuple(preset.mean), std=tuple(preset.std),
                             interpolation=preset.interpolation.value)
    # the video presets resize frames without antialiasing (VideoClassification's antialias=False)
    video = {"antialias": False} if task == "video" else {}
    if task == "video" and len(preset.resize_size) == 2:
        return Preprocessing(resize=tuple(int(s) for s in preset.resize_size), resize_mode="squash",
                             crop=int(preset.crop_size[0]), mean=tuple(preset.mean), std=tuple(preset.std),
                             interpolation=preset.interpolation.value, **video)
    return Preprocessing(
        resize=int(preset.resize_size[0]),
        crop=int(preset.crop_size[0]),
        mean=tuple(preset.mean),
        std=tuple(preset.std),
        interpolation=preset.interpolation.value,
        **video,
    )


def _detection_preprocessing(module):
    """[0, 1] squares of the side the detector's transform resizes to (its fixed size, or
    its evaluation `min_size`): the internal resize is then the identity."""
    from ..preprocessing import Preprocessing

    transform = module.transform
    side = int(transform.fixed_size[0]) if transform.fixed_size else int(transform.min_size[-1])
    return Preprocessing(resize=side, crop=side, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def _image_list(module, batch):
    """Detectors take a list of (3, H, W) images."""
    return module(list(batch))


def _channels_first_clip(module, clips):
    """Clips (B, T, 3, H, W) into the (B, 3, T, H, W) of torchvision's video models."""
    return module(clips.permute(0, 2, 1, 3, 4))


def _classifier_top(name: str, module, available) -> list[str]:
    """ResNet / ResNeXt / Wide ResNet `layer1`..`layer4`, `avgpool`, `fc`; AlexNet the
    ReLUs of conv1-5 and fc6-7 and fc8; VGG the five max-pools and fc6 (ReLU), fc7 (ReLU),
    fc8; ViT the encoder blocks and the head; other families their children, containers
    opened one level (`children_opened`)."""
    from torch import nn

    from ..layers import children_opened

    if re.match(r"(resnet|resnext|wide_resnet)\d", name):
        return ["layer1", "layer2", "layer3", "layer4", "avgpool", "fc"]
    if name == "alexnet":
        return [f"features.{i}" for i in (1, 4, 7, 9, 11)] + ["classifier.2", "classifier.5", "classifier.6"]
    if name.startswith("vgg"):
        pools = [f"features.{i}" for i, m in enumerate(module.features) if isinstance(m, nn.MaxPool2d)]
        return pools + ["classifier.1", "classifier.4", "classifier.6"]
    if name.startswith("vit_"):
        blocks = [f"encoder.layers.{child}" for child, _ in module.encoder.layers.named_children()]
        return blocks + ["heads.head"]
    return children_opened(module)


def _stages(body, prefix: str) -> list[str]:
    """A ResNet's `layer1`..`layer4`, or the stage ends of a MobileNet's feature sequence:
    each block after which the next one strides (the last of each resolution), and the
    last block. Every block of a 520 px MobileNet would store 22 MB per image."""
    from torch import nn

    if hasattr(body, "layer1"):
        return [f"{prefix}.layer{i}" for i in range(1, 5)]
    blocks = list(body.named_children())
    strides = [max((max(m.stride) for m in block.modules() if isinstance(m, nn.Conv2d)), default=1)
               for _, block in blocks]
    ends = [blocks[i - 1][0] for i in range(1, len(blocks)) if strides[i] > 1] + [blocks[-1][0]]
    return [f"{prefix}.{child}" for child in ends]


def _segmentation_top(module, available) -> list[str]:
    """The encoder stages, `classifier` and `aux_classifier` when the model has one."""
    heads = [head for head, _ in module.named_children() if head in ("classifier", "aux_classifier")]
    return _stages(module.backbone, "backbone") + heads


def _detection_top(module, available) -> list[str]:
    """The backbone stages and the FPN outputs; SSD's feature maps."""
    from torch import nn

    backbone = module.backbone
    if hasattr(backbone, "fpn"):
        fpn = backbone.fpn
        return (_stages(backbone.body, "backbone.body")
                + [f"backbone.fpn.layer_blocks.{i}" for i, _ in fpn.layer_blocks.named_children()]
                + [f"backbone.fpn.extra_blocks.{child}" for child, block in fpn.extra_blocks.named_children()
                   if isinstance(block, nn.Conv2d)])
    # SSD's VGG feature sequence ends at conv4_3 (one map); SSDlite's holds two stages
    features = (["backbone.features"] if isinstance(backbone.features[0], nn.Conv2d)
                else [f"backbone.features.{child}" for child, _ in backbone.features.named_children()])
    return features + [f"backbone.extra.{child}" for child, _ in backbone.extra.named_children()]


def _video_top(name: str, module, available) -> list[str]:
    """R3D / MC3 / R(2+1)D stem, stages, pool and fc; S3D its features, pool and classifier;
    MViT its blocks and head; Swin3D its features and head."""
    if name.startswith(("r3d", "mc3", "r2plus1d")):
        return ["stem", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"]
    if name == "s3d":
        return [f"features.{child}" for child, _ in module.features.named_children()] + ["avgpool", "classifier"]
    if name.startswith("mvit"):
        return [f"blocks.{child}" for child, _ in module.blocks.named_children()] + ["head"]
    return [f"features.{child}" for child, _ in module.features.named_children()] + ["head"]
