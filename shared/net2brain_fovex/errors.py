"""Typed errors of the toolbox.

Every error a user can cause is a `ToolboxError`: the command-line layer prints its
message as one line and exits with code 2. Messages say what was received, what was
expected and how to fix it. `ConfigError`, `InputError` and `UnknownNameError` are
also `ValueError`s, so that Python code can catch them the usual way.

Messages name what the user controls in Python terms, in backticks: a parameter
(`` `radius` must be a positive number of millimetres, got 0 ``), a parameter with a
value (`` add `overwrite=True` to replace it ``) or a core function
(`` written by `extract_to_file` ``). The command-line layer shows the same message
with flags and commands in their place (the radius flag, the overwrite flag, the
extract command); backticks hold nothing else.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "ToolboxError", "ConfigError", "InputError", "OutputError", "ModelError", "WeightsError", "UnknownNameError",
    "closest_names", "unknown_name", "listed", "reason", "described",
]


class ToolboxError(Exception):
    """Base class of every error caused by bad usage, configuration or input."""


class ConfigError(ToolboxError, ValueError):
    """A configuration file or option is invalid."""


class InputError(ToolboxError, ValueError):
    """An input file or folder is missing, unreadable or malformed."""


class OutputError(ToolboxError):
    """An output cannot be written (exists already, folder missing, not writable)."""


class ModelError(ToolboxError):
    """A model cannot be found, built or run."""


class WeightsError(ModelError):
    """Model weights are missing or do not fit the model."""


class UnknownNameError(ConfigError):
    """A name chosen from a registry (model, layer, metric, ...) does not exist."""


def closest_names(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The registered names closest to `name`, best first (may be empty).

    Parameters
    ----------
    name : str
        The name asked for.
    choices : iterable of str
        The valid names.
    n : int, default 3
        How many to return at most.
    """
    choices = list(choices)
    close = difflib.get_close_matches(name, choices, n=n, cutoff=0.5)
    if not close:
        # substring matches catch abbreviations that difflib scores low ("layer4" -> "layer4.1")
        close = [c for c in choices if name.lower() in c.lower()][:n]
    return close


def unknown_name(kind: str, name: str, choices: Iterable[str], *, hint: str = "") -> UnknownNameError:
    """An `UnknownNameError` whose message lists the closest valid names.

    Parameters
    ----------
    kind : str
        What was asked for (`layer`, `metric`), the start of the message.
    name : str
        The name asked for.
    choices : iterable of str
        The valid names.
    hint : str, optional
        How to find the valid names, in parentheses at the end.
    """
    close = closest_names(name, choices)
    message = f"unknown {kind} {name!r}"
    if close:
        message += "; closest: " + ", ".join(close)
    if hint:
        message += f" ({hint})"
    return UnknownNameError(message)


def listed(names: Iterable[object], limit: int = 5) -> str:
    """Names for a message, the first `limit` of them: `a, b, c, ... (4 more)`."""
    names = [str(name) for name in names]
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def reason(error: BaseException) -> str:
    """An exception's message for one line of ours: its first line, or its type's name
    when it has no message."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def described(error: BaseException) -> str:
    """An exception of someone else's code (a user's factory, a model) with its type:
    `TypeError: build() missing 1 required positional argument: 'depth'`."""
    text = str(error).strip()
    return type(error).__name__ + (f": {text.splitlines()[0]}" if text else "")
