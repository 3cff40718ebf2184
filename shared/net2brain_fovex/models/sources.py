"""Model sources: the libraries users name models from (`SOURCES`).

Each source lists the models it offers, tells whether it offers a name, and builds a
model with pretrained or random weights together with its own preprocessing. `auto`
looks a plain name up in the sources in registration order. Models given as a factory
(`module:function`) or a TorchScript file are not looked up here
(`net2brain_fovex.models.loading`).

This module imports no torch, torchvision or timm until a source is used.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import unknown_name
from ..registry import Registry

if TYPE_CHECKING:
    import torch

    from .preprocessing import Preprocessing

__all__ = ["ModelSource", "SOURCES", "AUTO", "list_models", "find_source"]

AUTO = "auto"


@dataclass(frozen=True)
class ModelSource:
    """A library of models.

    Attributes
    ----------
    name, summary : str
    names : callable () -> tuple of str
        Every model name the source offers.
    offers : callable (name) -> bool
        Whether the source offers a model name (may accept names `names` leaves out).
    build : callable (name, pretrained) -> (torch.nn.Module, Preprocessing)
        The model with pretrained weights (from the local caches) or random ones, and the
        preprocessing of its pretrained weights.
    """

    name: str
    summary: str
    names: Callable[[], tuple[str, ...]]
    offers: Callable[[str], bool]
    build: Callable[[str, bool], tuple[torch.nn.Module, Preprocessing]]


@functools.cache
def _torchvision_names() -> tuple[str, ...]:
    import torchvision

    return tuple(torchvision.models.list_models(module=torchvision.models))


def _torchvision_build(name: str, pretrained: bool):
    from torchvision.models import get_model

    from .preprocessing import from_torchvision
    from .weights import torchvision_pretrained

    module = torchvision_pretrained(name) if pretrained else get_model(name, weights=None)
    return module, from_torchvision(name)


@functools.cache
def _timm_names() -> tuple[str, ...]:
    import timm

    return tuple(timm.list_models())


def _timm_offers(name: str) -> bool:
    import timm

    return timm.is_model(name)


def _timm_build(name: str, pretrained: bool):
    import timm

    from .preprocessing import from_timm
    from .weights import timm_pretrained

    module = timm_pretrained(name) if pretrained else timm.create_model(name, pretrained=False)
    return module, from_timm(module)


SOURCES: Registry[ModelSource] = Registry("model source", [
    ModelSource("torchvision", "torchvision's image-classification models",
                _torchvision_names, lambda name: name in _torchvision_names(), _torchvision_build),
    ModelSource("timm", "every timm architecture", _timm_names, _timm_offers, _timm_build),
], hint="`list_models` lists the models of every source")


def list_models(source: str | None = None, contains: str | None = None) -> list[tuple[str, str]]:
    """(source, name) pairs of every model on offer.

    Parameters
    ----------
    source : str, optional
        Only this source (a name of `SOURCES`).
    contains : str, optional
        Only names containing this text (case-insensitive).
    """
    chosen = list(SOURCES.values()) if source is None else [SOURCES[source]]
    pairs = [(entry.name, name) for entry in chosen for name in entry.names()]
    if contains:
        pairs = [(s, name) for s, name in pairs if contains.lower() in name.lower()]
    return pairs


def find_source(name: str, source: str = AUTO) -> str:
    """The source that offers model `name`: the first that does for `auto`.

    Raises `UnknownNameError` with the closest names of the sources searched.

    Parameters
    ----------
    name : str
        A model name, as `resnet18`.
    source : str, default "auto"
        A name of `SOURCES`, or `auto` to ask them in registration order (torchvision,
        then timm).

    Returns
    -------
    str
        The name of the source.

    Raises
    ------
    UnknownNameError
        No source searched offers `name`, or `source` is unknown.
    """
    searched = list(SOURCES.values()) if source == AUTO else [SOURCES[source]]
    for entry in searched:
        if entry.offers(name):
            return entry.name
    choices = list(dict.fromkeys(n for entry in searched for n in entry.names()))
    raise unknown_name(
        "model", name, choices,
        hint="`list_models` lists them; a factory is given as module:function, a TorchScript model as a file",
    )
