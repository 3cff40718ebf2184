"""Typed errors of the toolbox.

Every error a user can cause is a `ToolboxError`: the command-line layer prints its
message as one line and exits with code 2. Messages say what was received, what was
expected and how to fix it.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class ToolboxError(Exception):
    """Base class of every error caused by bad usage, configuration or input."""


class ConfigError(ToolboxError):
    """A configuration file or option is invalid."""


class InputError(ToolboxError):
    """An input file or folder is missing, unreadable or malformed."""


class OutputError(ToolboxError):
    """An output cannot be written (exists already, folder missing, not writable)."""


class ModelError(ToolboxError):
    """A model cannot be found, built or run."""


class WeightsError(ModelError):
    """Model weights are missing or do not fit the model."""


class UnknownNameError(ToolboxError):
    """A name chosen from a registry (model, layer, metric, ...) does not exist."""


def closest_names(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The registered names closest to `name`, best first (may be empty)."""
    choices = list(choices)
    close = difflib.get_close_matches(name, choices, n=n, cutoff=0.5)
    if not close:
        # substring matches catch abbreviations that difflib scores low ("layer4" -> "layer4.1")
        close = [c for c in choices if name.lower() in c.lower()][:n]
    return close


def unknown_name(kind: str, name: str, choices: Iterable[str], hint: str = "") -> UnknownNameError:
    """An `UnknownNameError` whose message lists the closest valid names."""
    close = closest_names(name, choices)
    message = f"unknown {kind} {name!r}"
    if close:
        message += "; closest: " + ", ".join(close)
    if hint:
        message += f" ({hint})"
    return UnknownNameError(message)
