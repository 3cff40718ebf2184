"""The optional libraries (the pyproject extras) and the one message that says how to install one.

Heavy libraries (nilearn, himalaya, pytorch-grad-cam, open_clip, ...) are extras: a feature
that needs one checks for it before any work and names the pip command that installs it.
"""
from __future__ import annotations

import importlib

from .errors import ConfigError

__all__ = ["install_command", "require_library"]


def install_command(extra: str) -> str:
    """The pip command that installs the toolbox's `extra`."""
    return f"pip install 'net2brain-fovex[{extra}]'"


def require_library(library: str, extra: str | None, user: str) -> None:
    """Import `library`, or a `ConfigError` saying that `user` needs it, with the pip command."""
    try:
        importlib.import_module(library)
    except ImportError as error:
        raise ConfigError(f"{user} needs the {library} library, which is not installed or does not import ({error}): "
                          f"{install_command(extra)}") from None
