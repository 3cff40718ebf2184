"""timm: every architecture of timm (`timm.list_models()`), built with timm's own
evaluation preprocessing; pretrained weights from the Hugging Face cache."""
from __future__ import annotations

import functools
import math

from ..built import Built, ModelEntry

__all__ = ["entries", "offers", "build", "preprocessing", "top"]

def _task(name: str) -> str:
    """timm's architectures by how they were trained: DINOv2 / DINOv3 without labels,
    the `_clip` ViTs as CLIP image towers, every other one (BEiT and EVA-02 included:
    their timm weights are fine-tuned on labels) a classifier."""
    if "dino" in name:
        return "self-supervised"
    return "vision-language" if "_clip" in name else "classification"


@functools.cache
def entries() -> tuple[ModelEntry, ...]:
    import timm

    with_weights = {name.split(".")[0] for name in timm.list_models(pretrained=True)}
    return tuple(ModelEntry(name, _task(name), "image", name in with_weights) for name in timm.list_models())


def offers(name: str) -> bool:
    import timm

    return timm.is_model(name)


def build(name: str, pretrained: bool) -> Built:
    import timm

    from ..weights import timm_pretrained

    module = timm_pretrained(name) if pretrained else timm.create_model(name, pretrained=False)
    return Built(module, preprocessing(module), task=_task(name), top=top,
                 class_scores=getattr(module, "num_classes", 0) > 0)


def preprocessing(module):
    """The evaluation preprocessing of a timm model, from its data config: the shorter
    side resized to floor(crop / crop_pct), a centre crop."""
    from timm.data import resolve_data_config

    from ..preprocessing import Preprocessing

    config = resolve_data_config({}, model=module)
    crop = int(config["input_size"][-1])
    interpolation = config.get("interpolation", "bilinear")
    if interpolation not in ("bilinear", "bicubic", "nearest"):
        interpolation = "bilinear"
    return Preprocessing(
        resize=math.floor(crop / config.get("crop_pct", 0.875)),
        crop=crop,
        mean=tuple(config["mean"]),
        std=tuple(config["std"]),
        interpolation=interpolation,
    )


def top(module, available) -> list[str]:
    """The stages of timm's `feature_info` and the classifier head."""
    from torch import nn

    if not getattr(module, "feature_info", None):
        from ..layers import children_opened

        return children_opened(module)
    names = [info["module"] for info in module.feature_info]
    heads = module.get_classifier() if hasattr(module, "get_classifier") else None
    heads = heads if isinstance(heads, (tuple, list)) else [heads]
    by_identity = {id(m): n for n, m in module.named_modules()}
    names += [by_identity[id(h)] for h in heads
              if isinstance(h, nn.Module) and not isinstance(h, nn.Identity) and id(h) in by_identity]
    return names
