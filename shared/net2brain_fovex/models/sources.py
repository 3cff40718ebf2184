"""Model sources: the libraries users name models from (`SOURCES`).

Each source is one module of `net2brain_fovex.models.zoo` with its catalogue, its name
lookup and its builder (`Built`: the model, its preprocessing, default layers and how a
batch goes in). `auto` looks a plain name up in the installed sources in registration
order. Models given as a factory (`module:function`) or a TorchScript file are not
looked up here (`net2brain_fovex.models.loading`).

Sources whose library is an optional extra (open_clip, transformers) say which pip
command installs it when they are used without it.

This module imports no torch, torchvision or timm until a source is used.
"""
from __future__ import annotations

import importlib
import importlib.util
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ConfigError, unknown_name
from ..extras import install_command
from ..registry import Registry
from .built import ModelEntry
from .registry import TASKS

if TYPE_CHECKING:
    from .built import Built

__all__ = ["ModelSource", "SOURCES", "AUTO", "list_models", "find_source", "installed_sources"]

AUTO = "auto"


@dataclass(frozen=True)
class ModelSource:
    """A library of models.

    Attributes
    ----------
    name, summary : str
    module : str
        Its module in `net2brain_fovex.models.zoo`.
    library : str or None
        The import name of the optional library it needs (None: a core dependency).
    extra : str or None
        The pip extra of this distribution that installs `library`.
    """

    name: str
    summary: str
    module: str
    library: str | None = None
    extra: str | None = None

    @property
    def installed(self) -> bool:
        return self.library is None or importlib.util.find_spec(self.library) is not None

    def zoo(self):
        """The source's module; `ConfigError` with the pip command when its library is missing."""
        if not self.installed:
            raise ConfigError(f"model source {self.name} needs the {self.library} library, which is not installed: "
                              f"{install_command(self.extra)}")
        return importlib.import_module(f"{__package__}.zoo.{self.module}")

    def entries(self) -> tuple[ModelEntry, ...]:
        return self.zoo().entries()

    def offers(self, name: str) -> bool:
        return self.zoo().offers(name)

    def build(self, name: str, pretrained: bool) -> Built:
        return self.zoo().build(name, pretrained)


SOURCES: Registry[ModelSource] = Registry("model source", [
    ModelSource("torchvision", "torchvision: classification, segmentation, detection and video models",
                "torchvision"),
    ModelSource("timm", "every timm architecture", "timm"),
    ModelSource("cornet", "CORnet-Z, -R, -RT and -S (Kubilius et al. 2019)", "cornet"),
    ModelSource("taskonomy", "the encoders of the 25 Taskonomy tasks (Zamir et al. 2018)", "taskonomy"),
    ModelSource("open_clip", "CLIP-family image towers of open_clip, as MODEL:TAG", "open_clip",
                library="open_clip", extra="clip"),
    ModelSource("hf", "vision models of transformers, by hub id or saved folder", "hf",
                library="transformers", extra="hf"),
], hint="`list_models` lists the models of every source")


def installed_sources(source: str | None = None) -> list[ModelSource]:
    """The sources to search: `source` alone (its library must be installed), or for None
    / `auto` every source whose library is installed."""
    if source not in (None, AUTO):
        entry = SOURCES[source]
        entry.zoo()  # the pip command when its library is missing
        return [entry]
    return [entry for entry in SOURCES.values() if entry.installed]


def list_models(source: str | None = None, contains: str | None = None,
                task: str | None = None) -> list[tuple[str, ModelEntry]]:
    """(source, entry) pairs of every model on offer.

    Parameters
    ----------
    source : str, optional
        Only this source (a name of `SOURCES`); otherwise every installed source (a
        warning names the ones whose library is missing, with the pip command).
    contains : str, optional
        Only names containing this text (case-insensitive).
    task : str, optional
        Only models of this task (a name of `TASKS`).
    """
    if task is not None:
        TASKS.check(task)
    chosen = installed_sources(source)
    if source is None:
        missing = [entry for entry in SOURCES.values() if not entry.installed]
        if missing:
            warnings.warn("sources not installed: " + "; ".join(
                f"{entry.name} ({install_command(entry.extra)})" for entry in missing),
                RuntimeWarning, stacklevel=2)
    pairs = [(entry.name, model) for entry in chosen for model in entry.entries()]
    if contains:
        pairs = [(s, model) for s, model in pairs if contains.lower() in model.name.lower()]
    if task:
        pairs = [(s, model) for s, model in pairs if model.task == task]
    return pairs


def find_source(name: str, source: str = AUTO) -> str:
    """The source that offers model `name`: the first installed one that does for `auto`.

    Parameters
    ----------
    name : str
        A model name, as `resnet18`.
    source : str, default "auto"
        A name of `SOURCES`, or `auto` to ask the installed ones in registration order
        (torchvision, timm, cornet, taskonomy, open_clip, hf).

    Returns
    -------
    str
        The name of the source.

    Raises
    ------
    UnknownNameError
        No source searched offers `name`, or `source` is unknown.
    ConfigError
        `source` names a source whose library is not installed.
    """
    searched = installed_sources(source)
    for entry in searched:
        if entry.offers(name):
            return entry.name
    choices = list(dict.fromkeys(model.name for entry in searched for model in entry.entries()))
    hint = "`list_models` lists them; a factory is given as module:function, a TorchScript model as a file"
    missing = [entry for entry in SOURCES.values() if not entry.installed] if source == AUTO else []
    if missing:  # a name of theirs (a hub id without transformers) was not looked up
        hint += "; sources not installed, so not searched: " + ", ".join(
            f"{entry.name} ({install_command(entry.extra)})" for entry in missing)
    raise unknown_name("model", name, choices, hint=hint)
