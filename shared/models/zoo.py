"""The models users choose by name: torchvision's and timm's classification models."""
from __future__ import annotations

import functools

from ..errors import ConfigError, unknown_name

SOURCES = ("torchvision", "timm")


@functools.cache
def torchvision_names() -> tuple[str, ...]:
    """torchvision's image-classification models (not detection, segmentation, video)."""
    import torchvision

    return tuple(torchvision.models.list_models(module=torchvision.models))


@functools.cache
def timm_names() -> tuple[str, ...]:
    """timm's architectures (all are image classifiers)."""
    import timm

    return tuple(timm.list_models())


def list_models(source: str | None = None, contains: str | None = None) -> list[tuple[str, str]]:
    """(source, name) pairs of every model on offer, optionally of one source and with
    names containing `contains` (case-insensitive)."""
    if source is not None and source not in SOURCES:
        raise ConfigError(f"unknown model source {source!r}; use {' or '.join(SOURCES)}")
    listing = {"torchvision": torchvision_names, "timm": timm_names}
    pairs = [(s, name) for s in SOURCES if source in (None, s) for name in listing[s]()]
    if contains:
        pairs = [(s, name) for s, name in pairs if contains.lower() in name.lower()]
    return pairs


def find_source(name: str, source: str = "auto") -> str:
    """The source that offers model `name`: torchvision first, then timm for `auto`.

    Raises `UnknownNameError` with the closest names of the sources searched.
    """
    if source not in ("auto", *SOURCES):
        raise ConfigError(f"unknown model source {source!r}; use auto, torchvision or timm")
    searched = SOURCES if source == "auto" else (source,)
    if "torchvision" in searched and name in torchvision_names():
        return "torchvision"
    if "timm" in searched:
        import timm

        if timm.is_model(name):
            return "timm"
    choices = list(dict.fromkeys(n for s in searched for n in (torchvision_names() if s == "torchvision" else timm_names())))
    raise unknown_name(
        "model", name, choices,
        hint="list models with `net2brain models`; a factory is given as module:function, a TorchScript model as a file",
    )
