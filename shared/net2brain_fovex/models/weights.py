"""Model weights from files and caches, loaded safely and offline-first.

* state-dict files (.pth, .pt, .bin with torch's `weights_only` loader; .safetensors);
  checkpoints that wrap the state dict under "state_dict", "model" or
  "model_state_dict", and DataParallel's "module." prefixes, are unwrapped.
* torchvision's pretrained weights come from `$TORCH_HOME/hub/checkpoints/<file>`;
  timm's from the Hugging Face cache (`$HF_HOME/hub`). When a file is missing and
  the network is off (`HF_HUB_OFFLINE=1`, or a failed download), the error names the
  missing file and says where to place it.
"""
from __future__ import annotations

import os
import pickle  # only for its UnpicklingError: files are read with weights_only (or safetensors)
from collections.abc import Mapping
from pathlib import Path

import torch

from ..errors import WeightsError, reason
from ..io.paths import what_is_there

__all__ = ["STATE_DICT_SUFFIXES", "offline", "load_state_dict_file", "apply_state_dict", "torchvision_pretrained",
           "timm_pretrained", "hub_checkpoint"]

STATE_DICT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")


def offline() -> bool:
    """True when the user asked for no network access (Hugging Face's switch)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict without running pickled code.

    Raises `WeightsError` for a missing file, an unsupported suffix, a file that needs
    pickle (refused by `weights_only`), or content that is not a mapping of tensors.
    """
    path = Path(path)
    if path.is_dir():
        raise WeightsError(f"weights file {path} is a folder; give the state-dict file itself as `weights=FILE`")
    if not path.is_file():
        raise WeightsError(f"weights file {path} {what_is_there(path)}; give a state-dict file, or `weights=pretrained` / random")
    if path.suffix.lower() not in STATE_DICT_SUFFIXES:
        raise WeightsError(
            f"weights file {path} has an unsupported suffix; use {', '.join(STATE_DICT_SUFFIXES)}"
        )
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        first_line = reason(error).split(". ")[0]
        if isinstance(error, pickle.UnpicklingError):  # torch's text proposes an unsafe reload: not offered
            first_line = "it holds pickled Python objects besides tensors, which could run code and are refused"
        raise WeightsError(
            f"cannot load weights from {path} safely ({first_line}); save a plain state dict "
            "with torch.save(model.state_dict(), path) or as .safetensors"
        ) from None
    return _unwrap(state, path)


def _unwrap(state: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(state, Mapping):
        for key in _WRAPPER_KEYS:
            inner = state.get(key)
            if isinstance(inner, Mapping) and inner and all(torch.is_tensor(v) for v in inner.values()):
                state = inner
                break
    if not isinstance(state, Mapping) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise WeightsError(f"{path} does not hold a state dict (a mapping of parameter names to tensors)")
    state = dict(state)
    if all(key.startswith("module.") for key in state):
        state = {key[len("module."):]: value for key, value in state.items()}
    return state


def apply_state_dict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], origin: str) -> None:
    """Load `state` into `model` strictly; a mismatch names the first differing keys.

    Keys and shapes are compared before loading; dtypes are not (the values are copied into
    the model's tensors).

    Parameters
    ----------
    model : torch.nn.Module
    state : mapping of str to tensor
        A state dict with exactly the model's keys and shapes.
    origin : str
        Where the weights come from (a file), for the message.

    Raises
    ------
    WeightsError
        Missing or unexpected keys, or a tensor of another shape.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong_shape = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong_shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (first: {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (first: {unexpected[0]})")
        if wrong_shape:
            key = wrong_shape[0]
            parts.append(f"{key} has shape {tuple(state[key].shape)}, the model {tuple(own[key].shape)}")
        raise WeightsError(f"weights in {origin} do not fit the model: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


def hub_checkpoint(name: str, file_name: str, url: str) -> Path:
    """An official weight file in the torch hub cache (`$TORCH_HOME/hub/checkpoints`), for
    sources whose files are on no hub the toolbox downloads from (CORnet, Taskonomy): a
    missing file is an error online or not, saying where to get it and where to put it.

    Parameters
    ----------
    name : str
        The model, for the message.
    file_name, url : str
        The official file name and where it is published.
    """
    cached = Path(torch.hub.get_dir()) / "checkpoints" / file_name
    if not cached.is_file():
        raise WeightsError(
            f"pretrained weights for {name} are not in the cache ({cached} is missing): download {url} on a machine "
            f"with internet and place it at {cached} (set TORCH_HOME to choose the cache folder), or pass the file "
            "as `weights=PATH`"
        )
    return cached


def torchvision_pretrained(name: str) -> torch.nn.Module:
    """A torchvision model with its default pretrained weights from the torch hub cache
    (downloaded only when the file is absent and the network is allowed)."""
    from torchvision.models import get_model, get_model_weights

    try:
        weights = get_model_weights(name).DEFAULT
    except (ValueError, AttributeError):
        raise WeightsError(f"torchvision offers no pretrained weights for {name}; use `weights=random` or a file") from None
    file_name = os.path.basename(weights.url)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / file_name
    how = (
        f"download {weights.url} on a machine with internet and place it at {cached} "
        "(set TORCH_HOME to choose the cache folder), or pass the file as `weights=PATH`"
    )
    if not cached.is_file() and offline():
        raise WeightsError(f"pretrained weights for {name} are not in the cache ({cached} is missing): {how}")
    try:
        return get_model(name, weights=weights)
    except (OSError, RuntimeError) as error:  # URLError is an OSError; a partial download a RuntimeError
        raise WeightsError(f"cannot load pretrained weights for {name} ({error}): {how}") from None


def timm_pretrained(name: str) -> torch.nn.Module:
    """A timm model with pretrained weights from the Hugging Face cache (or a download
    when the network is allowed)."""
    import timm

    try:
        return timm.create_model(name, pretrained=True)
    except Exception as error:  # huggingface_hub raises many kinds when offline
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(name)
        hub_id = getattr(cfg, "hf_hub_id", None) if cfg else None
        hf_home = os.environ.get("HF_HOME", "~/.cache/huggingface")
        source = f"the Hugging Face repository {hub_id}" if hub_id else getattr(cfg, "url", None) or "its weights"
        raise WeightsError(
            f"pretrained weights for timm model {name} are not available offline ({reason(error)}): "
            f"on a machine with internet run `python -c \"import timm; timm.create_model('{name}', pretrained=True)\"` "
            f"and copy {hf_home}/hub to this machine (HF_HOME), or download {source} and pass the file "
            "as `weights=PATH`"
        ) from None
