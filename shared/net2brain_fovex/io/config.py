"""YAML configuration files: safe loading, key normalisation, and the resolved record.

A config file is a mapping whose keys are the long flag names of a command, with dashes
or underscores (`batch-size` or `batch_size`). Type checking against the command's
options happens where the options are defined (the command-line layer); this module
knows nothing about any particular command.

The resolved record (`<output stem>.config.yaml`, `write_resolved_config`) holds the
run's options as YAML, then its provenance (`net2brain_fovex.io.provenance`) as YAML *comments*
after a marker line:

    # resolved options of `net2brain extract`; give this file as its config to repeat the run
    model: resnet18
    ...
    # --- provenance (comments: not options; shown by `net2brain info FILE`) ---
    # package: net2brain-fovex
    # ...

Comments were chosen over a reserved key so that the record stays a plain config file:
the command's config option (and any YAML reader) sees only the options, with no key to
skip or to mistake for an option. The provenance block omits `config` (the options above
are the config); `read_resolved_config` returns both parts.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .atomic import atomic_output
from .provenance import build_provenance, current_command
from .provenance import plain as _plain

__all__ = ["PROVENANCE_MARKER", "normalise_key", "load_config", "write_resolved_config", "read_resolved_config",
           "config_path_for", "record_options", "options_output"]

PROVENANCE_MARKER = "# --- provenance (comments: not options; shown by `net2brain info FILE`) ---"


def normalise_key(key: str) -> str:
    """`batch-size`, `batch_size` and the flag spelling of either all become `batch_size`."""
    return key.strip().lstrip("-").replace("-", "_")


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file with safe loading and return its normalised mapping.

    Raises
    ------
    ConfigError
        When the file is missing, is not valid YAML, is not a mapping, or repeats a key
        (as `batch-size` and `batch_size`).
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; give the path of a YAML file")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; give the path of a YAML file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        if isinstance(error, yaml.constructor.ConstructorError):  # a !!python/... tag: never constructed
            problem += "; configs are read with safe loading (plain values only): remove the tag"
        raise ConfigError(f"config file {path} is not valid YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read config file {path}: it is not UTF-8 text; save the YAML file as UTF-8") from None
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror or error}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"config file {path} must be a mapping of option names to values "
            f"(as 'batch-size: 32'), not a {type(raw).__name__}"
        )
    config: dict[str, Any] = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            raise ConfigError(f"config file {path}: key {key!r} is not an option name")
        name = normalise_key(key)
        if name in config:
            raise ConfigError(f"config file {path}: option {key!r} is given twice")
        config[name] = value
    return config


def write_resolved_config(path: str | Path, command: str, values: dict[str, Any]) -> Path:
    """Write the fully resolved options of one run as YAML (atomically) and return the path.

    The file can be given back as the command's config to repeat the run. The run's provenance
    follows the options as YAML comments (see the module docstring).

    Parameters
    ----------
    path : path
        The YAML file; an existing one is replaced.
    command : str
        The command named in the first comment line (as `net2brain extract`, or `python`).
    values : dict
        The options. Top-level keys are written with dashes for underscores (`batch-size`),
        values in plain form (`net2brain_fovex.io.provenance.plain`: paths as text).

    Returns
    -------
    Path
        `path`.

    Raises
    ------
    OutputError
        The folder is missing or not writable, or the write fails.
    """
    path = Path(path)
    record = {key.replace("_", "-"): _plain(value) for key, value in values.items()}
    text = f"# resolved options of `{command}`; give this file as its config to repeat the run\n"
    text += yaml.safe_dump(record, sort_keys=False, allow_unicode=True)
    provenance = {key: value for key, value in build_provenance(config=values).items() if key != "config"}
    block = yaml.safe_dump(provenance, sort_keys=False, allow_unicode=True, width=float("inf"))
    text += PROVENANCE_MARKER + "\n" + "".join(f"# {line}".rstrip() + "\n" for line in block.splitlines())
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def read_resolved_config(path: str | Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The options (keys as written) and the provenance (None when the file has no
    provenance block) of a record written by `write_resolved_config`; the provenance's
    `config` is the options.

    Raises
    ------
    ConfigError
        As `load_config` (missing file, not YAML, not a mapping), or a damaged
        provenance block.
    """
    load_config(path)  # the checks, with their messages
    text = Path(path).read_text(encoding="utf-8")
    options = yaml.safe_load(text) or {}
    lines = text.splitlines()
    if PROVENANCE_MARKER not in lines:
        return options, None
    block = []
    for line in lines[lines.index(PROVENANCE_MARKER) + 1:]:
        if not line.startswith("#"):
            break
        block.append(line[2:] if line.startswith("# ") else line[1:])
    try:
        provenance = yaml.safe_load("\n".join(block)) or {}
    except yaml.YAMLError:
        raise ConfigError(f"{path}: the provenance comments after the options are damaged") from None
    if not isinstance(provenance, dict):
        raise ConfigError(f"{path}: the provenance comments after the options are damaged")
    return options, {**provenance, "config": options}


def config_path_for(output: str | Path) -> Path:
    """Where the resolved config of an output goes: `acts.h5` -> `acts.config.yaml`."""
    output = Path(output)
    return output.with_name(output.stem + ".config.yaml")


def options_output(output: str | Path, config: dict[str, Any] | None, sidecar: str | Path | None = None,
                   parameter: str = "out", folder_made: bool = False, replaceable: bool = False) -> list:
    """The sidecar `record_options` will write, as a checked output
    (`net2brain_fovex.io.outputs.Output`): none without options to record.

    Parameters
    ----------
    output : path
        The run's output the sidecar belongs to.
    config : dict or None
        The options to record.
    sidecar : path, optional
        Its path (default `config_path_for(output)`).
    parameter : str, default "out"
        The parameter of the output, for messages.
    folder_made : bool, default False
        Its folder is created by the run.
    replaceable : bool, default False
        It may exist without `overwrite` (a resumed run writes it again).
    """
    from .outputs import Output

    if config is None:
        return []
    return [Output(parameter, Path(sidecar or config_path_for(output)), "yaml", folder_made=folder_made,
                   replaceable=replaceable)]


def record_options(output: str | Path, config: dict[str, Any] | None, sidecar: str | Path | None = None) -> Path | None:
    """Write a run's resolved options beside its output, as `write_resolved_config` does
    (`sidecar`, default `config_path_for(output)`), when there are options to record;
    the command is the one running (`net2brain_fovex.io.provenance.command_scope`), else
    "python". Returns the sidecar's path, or None when `config` is None.

    Parameters
    ----------
    output : path
        The run's output (`acts.h5` -> `acts.config.yaml`).
    config : dict or None
        The resolved options; None writes nothing.
    sidecar : path, optional
        Another file for the record.

    Returns
    -------
    Path or None

    Raises
    ------
    OutputError
        The sidecar cannot be written.
    """
    if config is None:
        return None
    return write_resolved_config(sidecar or config_path_for(output), current_command() or "python", config)
