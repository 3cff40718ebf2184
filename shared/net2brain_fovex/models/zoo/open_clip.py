"""open_clip: the image towers of the CLIP-family models of open_clip (Radford et al. 2021,
"Learning transferable visual models from natural language supervision", ICML; Cherti
et al. 2023, "Reproducible scaling laws for contrastive language-image learning",
CVPR), as `MODEL:TAG` for the pretrained weights `open_clip.list_pretrained()` lists
(`ViT-B-32:laion2b_s34b_b79k`) and as `MODEL` for each architecture of
`open_clip.list_models()` with random weights.

Only the visual tower (`model.visual` of `open_clip.create_model`) is built, from the
model's config with open_clip's own tower builder: the text tower is never made, so a
model whose text side is a transformers model needs no file of it. A pretrained tag
whose weights were trained with QuickGELU gets QuickGELU (`create_model` only warns
when the model name lacks `-quickgelu`). The output is the image embedding.

Pretrained weights: every tag names a file of a Hugging Face repository (its `hf_hub`:
`open_clip_pytorch_model.bin` unless the tag names another, with its `.safetensors`
twin preferred, as open_clip does). It is read from the Hugging Face cache
(`$HF_HOME/hub/models--ORG--NAME/snapshots/...`); with `HF_HUB_OFFLINE=1` nothing else
is tried, otherwise open_clip downloads it there. The file holds the whole CLIP model:
the tower takes its `visual.` entries (`visual_state`).

Preprocessing is the tag's (the architecture's defaults without one), read as open_clip
merges it (`PreprocessCfg` defaults, the tag's mean, std, interpolation and resize
mode, the tower's image size S):

* `resize_mode` shortest (OpenAI, LAION, DataComp, MetaCLIP and most tags): the shorter
  side resized to S, a centre crop of S; maps exactly.
* squash (SigLIP, CLIPA, the 378 px worldwide and some other tags): both sides resized
  to S, the aspect ratio not kept; maps exactly (resize_mode squash, crop S).
* longest (no tag of open_clip 3.3 uses it): the longer side resized to S and the
  shorter one padded; approximated by squash, with a warning.

Interpolation is bicubic (bilinear where the tag says so: CLIPA, MobileCLIP and a few
others); mean and std are the tag's (OpenAI's for most, ImageNet's for CLIPA, 0.5 for
SigLIP, 0 and 1 for MobileCLIP).

Default layers (`top`): for ViT towers the transformer blocks
`transformer.resblocks.N` (batch first, (B, 1 + patches, width), the class token first)
and `embedding`, the projected image embedding (open_clip's projection is a parameter,
not a module: `embedding` is an identity the tower's output goes through, `call`; a
CoCa tower's output is (embedding, tokens) and `embedding` records the first); for ModifiedResNet
towers (RN50, ...) `layer1`..`layer4` and `attnpool` (the embedding); for timm-backed
towers (ConvNeXt, EVA, SigLIP, ...) the trunk's stages (`trunk.` + timm's
`feature_info`) and `head` (the embedding).
"""
from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Mapping

from ...errors import ModelError, WeightsError, listed, reason, unknown_name
from ..built import Built, ModelEntry

__all__ = ["TASK", "entries", "offers", "build", "visual_state", "preprocessing", "top"]

TASK = "vision-language"


@functools.cache
def entries() -> tuple[ModelEntry, ...]:
    import open_clip

    tagged = [ModelEntry(f"{model}:{tag}", TASK, "image", True) for model, tag in open_clip.list_pretrained()]
    return tuple(tagged) + tuple(ModelEntry(model, TASK, "image", False) for model in open_clip.list_models())


def offers(name: str) -> bool:
    import open_clip

    model, _, tag = name.partition(":")
    return model in open_clip.list_models() and (not tag or tag in open_clip.list_pretrained_tags_by_model(model))


def build(name: str, pretrained: bool) -> Built:
    """The visual tower of open_clip model `name` (`MODEL` or `MODEL:TAG`), with the
    tag's weights from the Hugging Face cache when `pretrained`, else random ones."""
    import torch
    from open_clip import get_model_config, get_pretrained_cfg
    from open_clip.model import _build_vision_tower, set_model_preprocess_cfg
    from open_clip.timm_model import TimmModel
    from open_clip.transformer import VisionTransformer

    from ..weights import apply_state_dict, load_state_dict_file

    model, tag = _parsed(name)
    if pretrained and not tag:
        raise WeightsError(_untagged(model))
    path = _weights_file(model, tag) if pretrained else None  # a missing file is reported before any building
    config = get_model_config(model)
    tag_config = get_pretrained_cfg(model, tag) if tag else {}
    quick_gelu = config.get("quick_gelu", False) or tag_config.get("quick_gelu", False)
    try:
        visual = _build_vision_tower(config["embed_dim"], config["vision_cfg"], quick_gelu)
    except Exception as error:  # open_clip and timm raise anything for a config they cannot build
        raise ModelError(f"open_clip cannot build the image tower of {model} ({reason(error)}); check its open_clip "
                         "config") from None
    if path:
        apply_state_dict(visual, visual_state(load_state_dict_file(path)), path)
    set_model_preprocess_cfg(visual, _preprocess_cfg(visual, tag_config))
    call = None
    prefix_tokens = 0
    if isinstance(visual, VisionTransformer):
        visual.embedding = torch.nn.Identity()
        call = _through_embedding
        prefix_tokens = 1  # open_clip's ViT always prepends its class token
    elif isinstance(visual, TimmModel):
        count = getattr(visual.trunk, "num_prefix_tokens", 0)
        prefix_tokens = count if isinstance(count, int) else 0
    return Built(visual, preprocessing(visual.preprocess_cfg), task=TASK, call=call, top=top,
                 class_scores=False, prefix_tokens=prefix_tokens, adapt_state=visual_state)


def _parsed(name: str) -> tuple[str, str]:
    """(MODEL, TAG) of `MODEL[:TAG]`; `UnknownNameError` for a model or tag open_clip lacks."""
    import open_clip

    model, _, tag = name.partition(":")
    if model not in open_clip.list_models():
        raise unknown_name("open_clip model", model, open_clip.list_models(), hint="`list_models` lists them")
    tags = open_clip.list_pretrained_tags_by_model(model)
    if tag and tag not in tags:
        raise unknown_name("pretrained tag", tag, tags, hint=f"tags of open_clip model {model}: {listed(tags)}"
                           if tags else f"open_clip model {model} has none; use `weights=random`")
    return model, tag


def _untagged(model: str) -> str:
    import open_clip

    tags = open_clip.list_pretrained_tags_by_model(model)
    if not tags:
        return f"open_clip has no pretrained weights for {model}; use `weights=random` or a file"
    return (f"open_clip model {model} needs a pretrained tag: name the weights as MODEL:TAG, e.g. {model}:{tags[0]} "
            f"(its tags: {listed(tags)}), or use `weights=random`")


def _through_embedding(module, batch):
    """A ViT tower's forward pass, its output (the image embedding) through `embedding`."""
    return module.embedding(module(batch))


# ------------------------------------------------------------------ weights
def _hub_file(tag_config: Mapping) -> tuple[str, list[str]]:
    """The Hugging Face repository of a tag and its file names, the preferred first (the
    safetensors twin open_clip looks for before the file the tag names)."""
    from open_clip.constants import HF_WEIGHTS_NAME
    from open_clip.pretrained import _get_safe_alternatives

    repo, file_name = os.path.split(tag_config["hf_hub"])
    file_name = file_name or HF_WEIGHTS_NAME
    return repo, [*_get_safe_alternatives(file_name), file_name]


def _weights_file(model: str, tag: str) -> str:
    """The cached weights file of `MODEL:TAG`; downloaded into the cache unless offline."""
    from huggingface_hub import constants, try_to_load_from_cache
    from open_clip import download_pretrained, get_pretrained_cfg

    from ..weights import offline

    tag_config = get_pretrained_cfg(model, tag)
    repo, file_names = _hub_file(tag_config)
    for file_name in file_names:
        cached = try_to_load_from_cache(repo, file_name)
        if isinstance(cached, str):
            return cached
    how = (f"on a machine with internet run `python -c \"import open_clip; open_clip.create_model('{model}', "
           f"pretrained='{tag}')\"` and copy its Hugging Face cache (~/.cache/huggingface/hub) to "
           f"{constants.HF_HUB_CACHE} (set HF_HOME to choose the cache folder), or download "
           f"https://huggingface.co/{repo}/resolve/main/{file_names[-1]} and pass the file as `weights=PATH`")
    if offline():
        folder = os.path.join(constants.HF_HUB_CACHE, f"models--{repo.replace('/', '--')}")
        raise WeightsError(f"pretrained weights for open_clip model {model}:{tag} are not in the Hugging Face cache "
                           f"({folder} holds no {' or '.join(file_names)}): {how}")
    try:
        return download_pretrained(tag_config)
    except Exception as error:  # huggingface_hub raises many kinds for a failed download
        raise WeightsError(f"cannot download pretrained weights for open_clip model {model}:{tag} "
                           f"({reason(error)}): {how}") from None


def visual_state(state: Mapping) -> dict:
    """The image tower's part of a state dict: the `visual.` entries of a whole open_clip
    model (its text tower and logit scale left out), with the prefix removed; a state dict
    of the tower alone as it is.

    Parameters
    ----------
    state : mapping of str to tensor

    Returns
    -------
    dict of str to tensor
    """
    prefix = "visual."
    if not any(key.startswith(prefix) for key in state):
        return dict(state)
    return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}


# ------------------------------------------------------------------ preprocessing
def _preprocess_cfg(visual, tag_config: Mapping) -> dict:
    """open_clip's preprocessing config as `create_model` sets it: the defaults, the tag's
    entries, the tower's image size."""
    from dataclasses import asdict

    from open_clip.transform import PreprocessCfg, merge_preprocess_dict

    config = merge_preprocess_dict(asdict(PreprocessCfg()), tag_config)
    config["size"] = visual.image_size
    return config


def preprocessing(config: Mapping):
    """The `Preprocessing` of an open_clip preprocessing config (`visual.preprocess_cfg`:
    size, mean, std, interpolation, resize_mode); see the module's notes.

    Parameters
    ----------
    config : mapping

    Returns
    -------
    Preprocessing

    Raises
    ------
    ModelError
        A non-square image size.
    """
    from open_clip.utils import to_2tuple

    from ..preprocessing import Preprocessing

    height, width = to_2tuple(config["size"])
    if height != width:
        raise ModelError(f"open_clip image size {height} x {width} is not square; the toolbox crops squares")
    mode = config.get("resize_mode", "shortest")
    if mode == "longest":
        warnings.warn("open_clip's resize_mode longest (pad to a square) is approximated by squash", stacklevel=2)
    return Preprocessing(
        resize=int(height),
        crop=int(height),
        mean=tuple(float(v) for v in config["mean"]),
        std=tuple(float(v) for v in config["std"]),
        interpolation="bilinear" if config.get("interpolation") == "bilinear" else "bicubic",
        resize_mode="shorter" if mode == "shortest" else "squash",
    )


# ------------------------------------------------------------------ layers
def top(module, available) -> list[str]:
    """ViT towers: `transformer.resblocks.N` and `embedding`; ModifiedResNet: `layer1`..
    `layer4`, `attnpool`; timm-backed towers: the trunk's `feature_info` stages and
    `head`."""
    from open_clip.modified_resnet import ModifiedResNet
    from open_clip.transformer import VisionTransformer

    if isinstance(module, VisionTransformer):
        return [f"transformer.resblocks.{i}" for i in range(len(module.transformer.resblocks))] + ["embedding"]
    if isinstance(module, ModifiedResNet):
        return ["layer1", "layer2", "layer3", "layer4", "attnpool"]
    stages = getattr(module.trunk, "feature_info", None) or []
    return [f"trunk.{info['module']}" for info in stages] + ["head"]
