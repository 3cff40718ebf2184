"""YAML configuration files: safe loading, key normalisation, and the resolved record.

A config file is a mapping whose keys are the long flag names of a command, with dashes
or underscores (`batch-size` or `batch_size`). Type checking against the command's
options happens where the options are defined (the command-line layer); this module
knows nothing about any particular command.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .storage import atomic_output


def normalise_key(key: str) -> str:
    """`batch-size`, `batch_size` and `--batch-size` all become `batch_size`."""
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
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; give the path of a YAML file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"config file {path} is not valid YAML{where}: {problem}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read config file {path}: {error}") from None
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

    The file can be passed back with `--config` to repeat the run.
    """
    path = Path(path)
    record = {key.replace("_", "-"): _plain(value) for key, value in values.items()}
    text = f"# resolved options of `{command}`; reuse with --config\n"
    text += yaml.safe_dump(record, sort_keys=False, allow_unicode=True)
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def config_path_for(output: str | Path) -> Path:
    """Where the resolved config of an output goes: `acts.h5` -> `acts.config.yaml`."""
    output = Path(output)
    return output.with_name(output.stem + ".config.yaml")


def _plain(value: Any) -> Any:
    """YAML-safe form of an option value (paths and tuples become strings and lists)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
