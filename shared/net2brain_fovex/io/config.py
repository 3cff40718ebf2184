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
from .paths import what_is_there
from .provenance import build_provenance, current_command
from .provenance import plain as _plain

__all__ = ["PROVENANCE_MARKER", "normalise_key", "load_config", "write_resolved_config", "read_resolved_config",
           "config_path_for", "record_options", "options_output"]

PROVENANCE_MARKER = "# --- provenance (comments: not options; shown by `net2brain info FILE`) ---"


class _DuplicateKey(Exception):
    def __init__(self, key: object, first: int, second: int) -> None:
        super().__init__(key)
        self.key, self.first, self.second = key, first, second


class _StrictLoader(yaml.SafeLoader):
    """Safe loading that refuses a key given twice in one mapping: PyYAML keeps the last
    value without a word, so a forgotten earlier line would silently lose."""

    def construct_mapping(self, node, deep=False):
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden by design
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise _DuplicateKey(key, seen[key], line)
                seen[key] = line
            except TypeError:  # an unhashable key: the base class refuses it with its own message
                pass
        return super().construct_mapping(node, deep)


def _parse_yaml(text: str) -> tuple[Any, dict[object, int]]:
    """The document of `text` and the line of each of its top-level keys."""
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        lines = {}
        if isinstance(node, yaml.MappingNode):
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    lines.setdefault(key_node.value, key_node.start_mark.line + 1)
        return loader.construct_document(node), lines
    finally:
        loader.dispose()


def normalise_key(key: str) -> str:
    """`batch-size`, `batch_size` and the flag spelling of either all become `batch_size`."""
    return key.strip().lstrip("-").replace("-", "_")


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file with safe loading and return its normalised mapping.

    Raises
    ------
    ConfigError
        When the file is missing, is not valid YAML, is not a mapping, or repeats a key
        (the same key twice in one mapping, or one option in two spellings as
        `batch-size` and `batch_size`), naming the key and both lines. A byte-order mark
        (as editors on Windows write) is allowed.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; give the path of a YAML file")
    if not path.is_file():
        raise ConfigError(f"config file {path} {what_is_there(path)}; give the path of a YAML file")
    try:
        raw, lines = _parse_yaml(path.read_text(encoding="utf-8-sig"))
    except _DuplicateKey as duplicate:
        raise ConfigError(f"config file {path}: key {duplicate.key!r} is given twice, on lines {duplicate.first} and "
                          f"{duplicate.second}; keep one") from None
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
    spelled: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            raise ConfigError(f"config file {path}: key {key!r} is not an option name")
        name = normalise_key(key)
        if name in config:
            raise ConfigError(f"config file {path}: option {key!r} (line {lines.get(key, '?')}) is given twice, also as "
                              f"{spelled[name]!r} (line {lines.get(spelled[name], '?')}); keep one")
        config[name], spelled[name] = value, key
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
    text = Path(path).read_text(encoding="utf-8-sig")
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
