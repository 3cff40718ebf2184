"""Choosing the compute device."""
from __future__ import annotations

import torch

from .errors import ConfigError

__all__ = ["resolve_device"]


def resolve_device(spec: str = "auto") -> torch.device:
    """`auto` takes CUDA when available, then Apple's MPS, else the CPU; `cuda`,
    `cuda:N`, `mps` and `cpu` are checked for availability."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ConfigError(f"unknown device {spec!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("`device=cuda` was asked for but no CUDA GPU is available; use `device=auto` or cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"`device` {spec}: only {torch.cuda.device_count()} CUDA device(s) are available")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("`device=mps` was asked for but MPS is not available; use `device=auto` or cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unsupported device {spec!r}; use auto, cpu, cuda, cuda:N or mps")
    return device
