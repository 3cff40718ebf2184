"""Provenance: what made an output, recorded in every file the tools write.

Fields (`build_provenance`, in this order)
------------------------------------------
package, package_version
    The distribution (`net2brain-fovex`) and `net2brain_fovex.__version__`.
python, torch, torchvision, numpy
    Versions (None for a library that is not installed); `cuda` is torch's CUDA build
    (None on CPU builds), `gpu` the GPU's name when the device is a CUDA device.
platform, hostname
    `platform.platform()` and the machine's name.
command, command_line
    The command (`net2brain extract`) and the invocation as typed: the program name and
    its arguments, shell-quoted (`shlex.join`), as `cli_common.runner.run` received them.
    None when a core function is called from Python.
created
    UTC time the record was made (ISO 8601, seconds).
config
    The resolved options of the run (its config file merged with the options given).
inputs_sha256, inputs_count
    A SHA-256 over the input files' names, sizes and modification times (one line
    `name\\0size\\0mtime_ns` per file, in input order; see `files_sha256`) and the number
    of files. Contents are not read, so it is cheap on millions of stimuli; it changes
    when a file is replaced, touched, added, removed or renamed. The inputs are the data
    a command reads: the stimuli (their ids as names) for extract and explain; stimuli,
    maps and ground truth for evaluate; the shard files for merge; otherwise the files
    named by the command's path options other than its outputs (`out`, `out_dir`,
    `plot`, `png_dir`, `config`), a folder counting as its files (not hidden, not
    recursive). Model and weights files are recorded by name in `config`.
seed, device
    The seed and the device the run used; None where a command has none.

Where it is stored
------------------
* HDF5 outputs (activations, attributions, evaluation curves, RDMs, merged shards): the
  root attribute `provenance`, a JSON string. A merged file also keeps its shards' records
  as `shard_provenance` (a JSON list, in shard order); its `provenance` is the merge's.
* Everything else (CSV, NIfTI, PNG): the sidecar `<stem>.config.yaml` (or the
  searchlight folder's `searchlight.config.yaml`) holds the resolved options as YAML and,
  after them, the provenance as YAML *comments* (`net2brain_fovex.io.config.write_resolved_config`).
  Comments keep the sidecar a plain config: the command's config option and any YAML
  reader see only the options, while `net2brain info` / `fovex info` read both.

The run context
---------------
`cli_common.runner.run` opens an `invocation` (the command line) and
`cli_common.config.with_config` a `command_scope` (the command, its resolved options and
its input paths) around each command. Every record built inside one invocation is the
same apart from `created` and the fields a writer gives explicitly, so a command's HDF5
file and its sidecar agree. Outside a command (core functions called from Python) the
records hold what the caller passes. This module imports no typer or rich.
"""
from __future__ import annotations

import contextlib
import json
import platform
import shlex
import socket
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from .. import __version__

__all__ = ["PACKAGE", "ATTRIBUTE", "SHARDS_ATTRIBUTE", "files_sha256", "input_entries", "format_command_line",
           "invocation", "command_scope", "current_command", "current_config_file", "current_command_line", "build_provenance",
           "provenance_attr", "to_json", "parse_attr", "plain"]

PACKAGE = "net2brain-fovex"
ATTRIBUTE = "provenance"
SHARDS_ATTRIBUTE = "shard_provenance"


# ------------------------------------------------------------------ input fingerprints


def files_sha256(entries: Iterable[tuple[str, str | Path]]) -> str:
    """A SHA-256 over (name, file) entries: each file's name as given, its size and its
    modification time (nanoseconds), one line per entry, in order. Contents are not read.
    For stimuli (ids as names) it equals `net2brain_fovex.extraction.stimuli.fingerprint`.
    """
    from ..extraction.stimuli import Stimulus, fingerprint  # the one implementation, shared with resume signatures

    return fingerprint([Stimulus(str(name), Path(path)) for name, path in entries])


def input_entries(paths: Iterable[str | Path]) -> list[tuple[str, Path]]:
    """(name, file) entries of input paths: a file is named by its file name; a folder
    stands for its files (not hidden, not recursive, sorted by name), named
    `folder/file`. Paths that do not exist are left out."""
    entries: list[tuple[str, Path]] = []
    for path in map(Path, paths):
        if path.is_file():
            entries.append((path.name, path))
        elif path.is_dir():
            children = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
            entries.extend((f"{path.name}/{child.name}", child) for child in children)
    return entries


# ------------------------------------------------------------------ the run context


@dataclass
class _Run:
    command_line: str | None = None
    command: str | None = None
    options: dict | None = None
    input_paths: tuple[Path, ...] = ()
    config_file: Path | None = None  # the config the options came from: an input no output may replace
    record: dict | None = None  # the first record built in this run, reused by later outputs


_run: _Run | None = None


def format_command_line(program: str, argv: Sequence[str]) -> str:
    """The invocation as a shell would accept it again: `net2brain extract` with the
    argument `a b.h5` becomes `net2brain extract 'a b.h5'`."""
    return shlex.join([program, *map(str, argv)])


@contextlib.contextmanager
def invocation(command_line: str | None) -> Iterator[None]:
    """Record the command line of one invocation of a tool (`cli_common.runner.run`)."""
    global _run
    previous, _run = _run, _Run(command_line=command_line)
    try:
        yield
    finally:
        _run = previous


@contextlib.contextmanager
def command_scope(command: str | None, options: dict, input_paths: Iterable[str | Path] = (),
                  config_file: str | Path | None = None) -> Iterator[None]:
    """Record the running command, its resolved options and the paths it reads
    (`cli_common.config.with_config`).

    Inside the block, provenance records (`build_provenance`) take the command, the options
    and the fingerprint of the inputs from here, and the first record built is reused by
    later ones. The command line of an enclosing `invocation` is kept; on exit the previous
    scope is restored.

    Parameters
    ----------
    command : str or None
        The command's name, as `net2brain extract`.
    options : dict
        Its resolved options (a copy is kept).
    input_paths : iterable of path, default ()
        The files and folders it reads (`input_entries`).
    config_file : path, optional
        The config file its options came from (`current_config_file`).

    Yields
    ------
    None
    """
    global _run
    previous = _run
    _run = _Run(command_line=previous.command_line if previous else None, command=command,
                options=dict(options), input_paths=tuple(Path(p) for p in input_paths),
                config_file=None if config_file is None else Path(config_file))
    try:
        yield
    finally:
        _run = previous


def current_config_file() -> Path | None:
    """The config file of the command running now (None outside one or without one)."""
    return _run.config_file if _run else None


def current_command() -> str | None:
    """The command running now (`net2brain extract`; None outside one)."""
    return _run.command if _run else None


def current_command_line() -> str | None:
    """The command line of the invocation running now (None outside one)."""
    return _run.command_line if _run else None


# ------------------------------------------------------------------ records


def build_provenance(
    *,
    config: dict | None = None,
    inputs: Iterable[tuple[str, str | Path]] | None = None,
    seed: int | None = None,
    device: Any = None,
    inputs_sha256: str | None = None,
    inputs_count: int | None = None,
) -> dict[str, Any]:
    """The provenance record of an output (fields: see the module docstring).

    Parameters
    ----------
    config : dict, optional
        The resolved options (default: the running command's).
    inputs : iterable of (name, path), optional
        The input files (default: the running command's input paths, `input_entries`).
    inputs_sha256, inputs_count : optional
        A fingerprint computed already with `files_sha256` (instead of `inputs`).
    seed : int, optional
        Default: the command's `seed` option, if it has one.
    device : str or torch.device, optional
        Default: the command's `device` option (`auto` resolved), if it has one.

    Inside a command the first record is kept and later calls return it again with a
    new `created` and the fields given explicitly, so all outputs of a run agree.
    """
    given: dict[str, Any] = {}
    if config is not None:
        given["config"] = plain(config)
    if inputs is not None:
        entries = list(inputs)
        given["inputs_sha256"], given["inputs_count"] = files_sha256(entries), len(entries)
    elif inputs_sha256 is not None:
        given["inputs_sha256"], given["inputs_count"] = inputs_sha256, inputs_count
    if seed is not None:
        given["seed"] = int(seed)
    if device is not None:
        given["device"] = str(device)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    run = _run
    if run is not None and run.record is not None:
        record = {**run.record, **given, "created": created}
        return _with_gpu(record)
    options = (run.options if run else None) or {}
    record = {
        "package": PACKAGE, "package_version": __version__, **_versions(),
        "platform": platform.platform(), "hostname": socket.gethostname(),
        "command": run.command if run else None, "command_line": run.command_line if run else None,
        "created": created,
        "config": plain(options) if run and run.options is not None else None,
        "inputs_sha256": None, "inputs_count": None,
        "seed": options.get("seed") if isinstance(options.get("seed"), int) else None,
        "device": _option_device(options.get("device")),
    }
    if run is not None and "inputs_sha256" not in given and run.input_paths:
        entries = input_entries(run.input_paths)
        record["inputs_sha256"], record["inputs_count"] = files_sha256(entries), len(entries)
    record.update(given)
    record = _with_gpu(record)
    if run is not None:
        run.record = record
    return record


def provenance_attr(**fields: Any) -> str:
    """`build_provenance(**fields)` as the JSON string stored in HDF5 attributes."""
    return to_json(build_provenance(**fields))


def to_json(record: Any) -> str:
    """A provenance record (or a list of them) as JSON."""
    return json.dumps(record, default=str)


def parse_attr(value: Any) -> Any:
    """A JSON attribute read back (None stays None; text that is no JSON is returned as is)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def plain(value: Any) -> Any:
    """A YAML- and JSON-safe form of an option value (paths and tuples become strings and
    lists, numpy scalars Python numbers; anything else its text)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    item = getattr(value, "item", None)
    if callable(item):
        with contextlib.suppress(Exception):
            return plain(item())
    return str(value)


def _versions() -> dict[str, str | None]:
    versions = {
        "python": platform.python_version(),
        "torch": _version("torch", "torch"),
        "torchvision": _version("torchvision", "torchvision"),
        "numpy": _version("numpy", "numpy"),
    }
    torch = sys.modules.get("torch")
    versions["cuda"] = getattr(getattr(torch, "version", None), "cuda", None) if torch is not None else None
    return versions


def _version(module_name: str, distribution: str) -> str | None:
    """A library's version without importing it (its `__version__` if it is loaded)."""
    module = sys.modules.get(module_name)
    if module is not None and getattr(module, "__version__", None):
        return str(module.__version__)
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def _option_device(spec: Any) -> str | None:
    """A `device` option as recorded: `auto` resolved when torch is loaded already."""
    if spec is None:
        return None
    spec = str(spec)
    if spec.strip().lower() == "auto" and "torch" in sys.modules:
        with contextlib.suppress(Exception):
            from ..device import resolve_device

            return str(resolve_device("auto"))
    return spec


def _with_gpu(record: dict) -> dict:
    """Add the GPU's name for a CUDA device (drop a stale one for other devices)."""
    record.pop("gpu", None)
    device = record.get("device") or ""
    torch = sys.modules.get("torch")
    if device.startswith("cuda") and torch is not None:
        with contextlib.suppress(Exception):
            if torch.cuda.is_available():
                record["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return record
