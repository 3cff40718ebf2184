"""`--config FILE.yaml` for every command: file values fill the options that were not
given on the command line, after type checks against the command's own signature.

Conversion follows the Python annotations of the command function (str, int, float,
bool, Path, Literal choices, their Optional forms and tuples of them), so it does not
depend on the internals of the Typer release installed.
"""
from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from cli_common.messages import command_flags, command_line_message, parameters_named
from net2brain_fovex.errors import ConfigError, ToolboxError, closest_names
from net2brain_fovex.io import provenance
from net2brain_fovex.io.config import load_config

_FROM_USER = ("COMMANDLINE", "ENVIRONMENT", "PROMPT")
# Path options that name what a command writes (or its config file), not what it reads.
OUTPUT_OPTIONS = frozenset({"out", "out_dir", "plot", "png_dir", "config"})


def with_config(function: Callable) -> Callable:
    """Decorate a Typer command whose signature has `ctx: typer.Context` and
    `config: Path | None`; the command receives the merged values and can read them
    all back with `resolved_options(ctx)`. The command runs in a provenance scope
    (`net2brain_fovex.io.provenance.command_scope`): its name, resolved options and input paths
    (its path options but `OUTPUT_OPTIONS`) are recorded in the outputs it writes. Errors
of the core reach the user with the command's flags in place of Python names
(`cli_common.messages`)."""
    hints = typing.get_type_hints(function)
    names = [n for n in inspect.signature(function).parameters if n not in ("ctx", "config")]
    path_options = [n for n in names if _names_paths(hints[n]) and n not in OUTPUT_OPTIONS]

    @functools.wraps(function)
    def wrapper(**kwargs: Any) -> Any:
        ctx = kwargs["ctx"]
        path = kwargs.get("config")
        from_config = set()  # the options whose value the config file gave
        if path is not None:
            for key, value in load_config(path).items():
                if key not in names:
                    close = closest_names(key, names)
                    hint = (f"; closest: {', '.join(k.replace('_', '-') for k in close)}" if close
                            else f"; the keys are the long options of `{ctx.command_path} --help`")
                    raise ConfigError(f"config file {path}: unknown option {key.replace('_', '-')!r}{hint}")
                # checked even where the command line wins: a wrong value is a broken file either way
                converted = convert(hints[key], value, f"config file {path}: option {key.replace('_', '-')!r}")
                source = ctx.get_parameter_source(key)
                if source is not None and source.name in _FROM_USER:
                    continue  # the command line wins
                kwargs[key] = converted
                from_config.add(key)
        ctx.meta["resolved"] = {name: kwargs[name] for name in names}
        inputs = [p for n in path_options for p in _as_list(kwargs[n])]
        try:
            with provenance.command_scope(ctx.command_path, ctx.meta["resolved"], inputs, config_file=path):
                return function(**kwargs)
        except ToolboxError as error:  # the core's Python names, as this command's flags
            message = str(error)
            named = [name for name in parameters_named(message) if name in from_config]
            if named and str(path) not in message:  # a value of the file: say where it is set
                message += f" (`{named[0]}` is set in config file {path})"
            error.args = (command_line_message(message, command_flags(ctx.command.params)), *error.args[1:])
            raise

    return wrapper


def _names_paths(annotation: Any) -> bool:
    """Whether an option's annotation is a Path (or Optional / a list of Paths)."""
    if annotation is Path:
        return True
    return any(_names_paths(a) for a in typing.get_args(annotation))


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def resolved_options(ctx: Any) -> dict[str, Any]:
    """The options of the running command after merging its config file."""
    return dict(ctx.meta.get("resolved", {}))


def require(options: dict[str, Any], *names: str) -> None:
    """Options that must be given, on the command line or in the config file."""
    for name in names:
        if options.get(name) in (None, ""):
            raise ConfigError(f"missing option --{name.replace('_', '-')}: give it on the command line or in --config")


def convert(annotation: Any, value: Any, where: str) -> Any:
    """Check a YAML value against a parameter annotation and convert it. Stricter than
    the command line: no float-to-int truncation, booleans only for flags."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return convert(args[0], value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return convert(inner[0], value, where)
    if origin in (tuple, list):
        values = value if isinstance(value, list) else [value]
        return tuple(convert(args[0], v, where) for v in values)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where} expects one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} expects true or false, got {value!r}")
        return value
    if isinstance(value, (bool, dict)) or value is None:
        raise ConfigError(f"{where} expects {_describe(annotation)}, got {value!r}")
    if annotation is int:
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        if not isinstance(value, int):
            raise ConfigError(f"{where} expects a whole number, got {value!r}")
        return value
    if annotation is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} expects a number, got {value!r}") from None
    if isinstance(value, list):
        if annotation is str and all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
            return ",".join(str(v) for v in value)  # a YAML list is the spelling of NAME,NAME
        raise ConfigError(f"{where} expects {_describe(annotation)}, got a list")
    if annotation is Path:
        return Path(str(value))
    return str(value)


def _describe(annotation: Any) -> str:
    return {int: "a whole number", float: "a number", Path: "a path"}.get(annotation, "text")
