"""Splitting a run over the tasks of an array job, and putting the parts back together.

A shard I/N (0 <= I < N) takes the contiguous block of items
[floor(I n / N), floor((I + 1) n / N)) of an ordered list of n (stimuli, images, centres,
encoding work units): deterministic, disjoint, and together the whole list, so
concatenating the shards' outputs in shard order gives what one run writes. The shard `auto` reads the task from
SLURM: I = SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN, N = SLURM_ARRAY_TASK_COUNT.

A shard's output is named after the run's: `acts.h5` -> `acts.shard-002-of-008.h5`.
Its root attributes `shard_index`, `shard_count`, `items_total` and `job_sha256` (the
job without the shard: options, model, the whole input list) let a merge check that it
has every shard once and that all come from the same job.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import h5py
import numpy as np

from ..errors import ConfigError, InputError, listed
from .atomic import atomic_output, check_new_output
from .hdf5 import (
    ACTIVATIONS_KIND,
    ATTRIBUTIONS_KIND,
    ENCODE_SHARD_KIND,
    ENCODE_SHARD_NAME,
    SEARCHLIGHT_SHARD_KIND,
    SEARCHLIGHT_SHARD_NAME,
    locked,
    open_error,
    unfinished_message,
)
from .locks import holds_outputs
from .paths import what_is_there

__all__ = ["Shard", "parse_shard", "shard_outputs", "check_shards", "read_shard", "check_same", "OutputPlan", "plan_output", "merge_rows",
           "merge_activations", "merge_attributions", "MERGERS", "merge_shards", "shards_beside", "dataset_paths"]

log = logging.getLogger(__name__)
SHARD_ATTRS = ("shard_index", "shard_count", "items_total")
Read = TypeVar("Read")
_PATTERN = re.compile(r"^(?P<stem>.+)\.shard-(?P<index>\d+)-of-(?P<count>\d+)(?P<suffix>\.[^/]*)$")


@dataclass(frozen=True)
class Shard:
    """Part `index` (from 0) of `count` parts."""

    index: int
    count: int

    def bounds(self, total: int) -> tuple[int, int]:
        """The [start, stop) block of `total` items this shard takes."""
        return self.index * total // self.count, (self.index + 1) * total // self.count

    def take(self, items: Sequence) -> Sequence:
        """This shard's block of `items`."""
        start, stop = self.bounds(len(items))
        return items[start:stop]

    def path(self, out: str | Path) -> Path:
        """The shard's own output beside the run's output `out`."""
        out = Path(out)
        stem, suffix = _split_suffix(out.name)
        width = max(3, len(str(self.count)))
        return out.with_name(f"{stem}.shard-{self.index:0{width}d}-of-{self.count:0{width}d}{suffix}")

    def attrs(self, total: int) -> dict:
        return {"shard_index": self.index, "shard_count": self.count, "items_total": total}

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(spec: str | None, environ: Mapping[str, str] | None = None) -> Shard | None:
    """`I/N` or `auto` (from SLURM's array variables) as a Shard; None for no sharding.

    Parameters
    ----------
    spec : str, optional
        `I/N` with 0 <= I < N (as `0/8`), `auto`, or None or blank text for no sharding.
    environ : mapping of str to str, optional
        The environment `auto` reads (default `os.environ`): I = SLURM_ARRAY_TASK_ID -
        SLURM_ARRAY_TASK_MIN, N = SLURM_ARRAY_TASK_COUNT.

    Returns
    -------
    Shard or None

    Raises
    ------
    ConfigError
        Neither `I/N` nor `auto`, a shard that does not exist (N < 1 or I >= N), or `auto`
        without SLURM's array variables (or with values that are not whole numbers).
    """
    if spec is None or str(spec).strip() == "":
        return None
    spec = str(spec).strip()
    if spec == "auto":
        environ = os.environ if environ is None else environ
        try:
            task, first, count = (int(environ[name]) for name in
                                  ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT"))
        except KeyError as missing:
            raise ConfigError(
                f"`shard=auto` needs SLURM's array variables ({missing.args[0]} is not set); run it as a task of "
                "an sbatch array job, or give `shard=I/N`"
            ) from None
        except ValueError:
            raise ConfigError("`shard=auto`: SLURM's array variables are not whole numbers") from None
        shard = Shard(task - first, count)
        where = "SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN must lie in 0 .. SLURM_ARRAY_TASK_COUNT - 1 (use a contiguous array range)"
    else:
        match = re.fullmatch(r"(\d+)\s*/\s*(\d+)", spec)
        if match is None:
            raise ConfigError(f"`shard` {spec!r} is not I/N (e.g. 0/8) or auto")
        shard = Shard(int(match[1]), int(match[2]))
        where = "`shard=I/N` needs N >= 1 and 0 <= I < N"
    if shard.count < 1 or not 0 <= shard.index < shard.count:
        raise ConfigError(f"shard {shard.index}/{shard.count} does not exist: {where}")
    return shard


def shard_outputs(out: str | Path) -> list[Path]:
    """The shard files of the run output `out` found beside it, in shard order."""
    out = Path(out)
    stem, suffix = _split_suffix(out.name)
    found = []
    folder = out.parent if str(out.parent) else Path(".")
    for path in folder.glob(f"{glob_escape(stem)}.shard-*-of-*{glob_escape(suffix)}"):
        match = _PATTERN.match(path.name)
        if match and match["stem"] == stem and match["suffix"] == suffix:
            found.append((int(match["index"]), path))
    return [path for _, path in sorted(found)]


def check_shards(paths: Sequence[Path], kind: str | None = None) -> list[tuple[Path, dict]]:
    """The shard files in shard order with their attributes, after checking that they
    are one job's shards 0 .. N-1, each once.

    Parameters
    ----------
    paths : sequence of path
        The shard files, in any order.
    kind : str, optional
        The kind every shard must hold (default: any, but one for all).

    Returns
    -------
    list of (Path, dict)
        Each file with its root attributes, by `shard_index`.

    Raises
    ------
    ConfigError
        No `paths`.
    InputError
        A file that is not a shard (or not of `kind`), shards of different jobs or
        counts, a duplicate or a missing shard.
    """
    if not paths:
        raise ConfigError("give the shard files to merge (or the run's output, with its shards beside it)")
    shards = []
    for path in map(Path, paths):
        if path.is_dir():
            raise InputError(f"{path} is a folder; give the shard files (NAME.shard-I-of-N.EXT) to merge")
        if not path.is_file():
            raise InputError(f"{path} {what_is_there(path)}; give the shard files (NAME.shard-I-of-N.EXT) to merge")
        if not os.access(path, os.R_OK):
            raise InputError(f"cannot read {path}: permission denied; make it readable (chmod u+r)")
        try:
            with h5py.File(path, "r") as file:
                attrs = dict(file.attrs)
                unfinished = unfinished_message(path, file)
            if unfinished:
                raise InputError(unfinished)
        except OSError as error:
            raise open_error(path, error, "rerun that shard") from None
        if "shard_index" not in attrs:
            raise InputError(f"{path} is not a shard (no shard_index attribute); only `shard` outputs are merged")
        if kind is not None and attrs.get("kind") != kind:
            raise InputError(f"{path} holds {attrs.get('kind')}, not {kind}; merge shards of one command at a time")
        shards.append((path, attrs))
    first_path, first = shards[0]
    for path, attrs in shards[1:]:
        for key in ("kind", "shard_count", "items_total", "job_sha256"):
            if _plain(attrs.get(key)) != _plain(first.get(key)):
                raise InputError(
                    f"{path} and {first_path} come from different runs ({key} differs); "
                    "merge only the shards of one run, with the same options and inputs"
                )
    count = int(first["shard_count"])
    seen: dict[int, Path] = {}
    for path, attrs in shards:
        index = int(attrs["shard_index"])
        if index in seen:
            raise InputError(f"shard {index}/{count} is given twice: {seen[index]} and {path}")
        seen[index] = path
    missing = [i for i in range(count) if i not in seen]
    if missing:
        raise InputError(f"shard(s) {listed(missing)} of {count} are missing; run them (or wait for them) before merging")
    return sorted(shards, key=lambda item: int(item[1]["shard_index"]))


def read_shard(path: Path, read: Callable[[h5py.File], Read], what: str) -> Read:
    """`read(file)` of the shard file `path`, open for reading; `InputError` (rerun that
    shard) when another program holds it open for writing, when it is damaged, or when
    it lacks what `read` looks up (a `KeyError` or `ValueError`). `what` names the kind of
    shard in the message ("a searchlight shard")."""
    try:
        with h5py.File(path, "r") as file:
            return read(file)
    except OSError as error:
        if locked(error):
            raise open_error(path, error, "rerun that shard") from None
        raise InputError(f"{path} is not a complete {what} ({error}); rerun that shard") from None
    except (KeyError, ValueError) as error:
        raise InputError(f"{path} is not a complete {what} ({error}); rerun that shard") from None


def check_same(parts: Sequence[tuple[Path, Mapping]], keys: Sequence[str]) -> None:
    """`InputError` naming the first shard (path, what was read of it) whose value of one
    of `keys` differs from the first shard's; arrays are compared value by value (NaN
    equal to NaN)."""
    first_path, first = parts[0]
    for path, part in parts[1:]:
        for key in keys:
            a, b = part[key], first[key]
            if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                a, b = np.asarray(a), np.asarray(b)
                same = np.array_equal(a, b, equal_nan=a.dtype.kind == "f" and b.dtype.kind == "f")
            else:
                same = a == b
            if not same:
                raise InputError(f"{path} and {first_path} differ in their {key}; merge only the shards of one run")


@dataclass
class ShardPlan:
    """What a (possibly sharded) run works on and how its output is marked.

    Attributes
    ----------
    items : sequence
        This run's block of the items (all of them without a shard).
    signature : str
        Identifies the run for resuming (the job, and the shard).
    attrs : dict
        Root attributes of a shard's output (none without a shard).
    """

    items: Sequence
    signature: str
    attrs: dict


def plan_shard(job: Mapping, items: Sequence, shard: Shard | None) -> ShardPlan:
    """The block of `items` a run takes, its resume signature and its shard attributes;
    `job` describes the whole run (options, model, the fingerprint of all items)."""
    whole = job_signature(job)
    if shard is None:
        return ShardPlan(items, whole, {})
    return ShardPlan(shard.take(items), job_signature({**job, "shard": str(shard)}),
                     {**shard.attrs(len(items)), "job_sha256": whole})


@dataclass(frozen=True)
class OutputPlan:
    """The file a (possibly sharded, possibly resumed) run writes.

    Attributes
    ----------
    shard : Shard or None
    path : Path
        The run's output, or the shard's own file beside it.
    complete : bool
        `resume=True` found the file complete already: there is nothing to do.
    """

    shard: Shard | None
    path: Path
    complete: bool


def plan_output(out: str | Path, shard: str | Shard | None = None, *, resume: bool = False,
                overwrite: bool = False) -> OutputPlan:
    """Plan a run's output before any work: the shard (`I/N`, `auto` or a `Shard`), the
    file it writes, and whether a resumed run finds it complete. The file is checked with
    the run's other outputs (`net2brain_fovex.io.outputs.check_outputs`).

    Parameters
    ----------
    out : path
        The run's output file.
    shard : str or Shard, optional
        This run's shard (`parse_shard`); it writes `Shard.path(out)` instead of `out`.
    resume : bool, default False
        An existing output is complete (nothing to do), not an error.
    overwrite : bool, default False
        The run starts again (refused together with `resume`).

    Returns
    -------
    OutputPlan

    Raises
    ------
    ConfigError
        `resume` with `overwrite` (continue a run, or start it again), or a bad shard.
    """
    if resume and overwrite:
        raise ConfigError("`resume=True` continues an interrupted run and `overwrite=True` starts it again: "
                          "give one of them")
    part = shard if isinstance(shard, Shard) or shard is None else parse_shard(shard)
    target = Path(out) if part is None else part.path(out)
    if resume and target.exists():
        log.info("%s is complete already; nothing to resume", target)
        return OutputPlan(part, target, True)
    return OutputPlan(part, target, False)


def job_signature(job: Mapping) -> str:
    """A SHA-256 of a job description (JSON with sorted keys)."""
    return hashlib.sha256(json.dumps(job, sort_keys=True, default=str).encode()).hexdigest()


@holds_outputs
def merge_rows(paths: Sequence[str | Path], out: str | Path, kind: str, *, overwrite: bool = False) -> Path:
    """Concatenate the row datasets of one run's shard files (activations,
    attributions) into the file the unsharded run writes.

    Every dataset of the shards has one row per item; the merged file has the same
    datasets (same dtypes, shapes, dataset attributes), the shards' rows in shard
    order, and the root attributes of the run without the shard ones (its resume
    signature becomes the whole job's). Its `provenance` is the merge's (inputs: the
    shard files); `shard_provenance` keeps the shards' records (a JSON list, shard order).

    Parameters
    ----------
    paths : sequence of path
        The shard files, every shard of the run once, in any order.
    out : path
        The merged file, written atomically.
    kind : str
        The kind the shards must hold (`ACTIVATIONS_KIND`, `ATTRIBUTIONS_KIND`).
    overwrite : bool, default False
        Replace an existing `out`.

    Returns
    -------
    Path
        `out`.

    Raises
    ------
    ConfigError
        No `paths`.
    InputError
        Missing, duplicate or foreign shards (`check_shards`), or a shard whose rows do
        not add up.
    OutputError
        `out` exists and `overwrite` is False, or its folder cannot take it.
    """
    from .provenance import parse_attr, provenance_attr, to_json

    shards = check_shards(paths, kind)
    out = check_new_output(out, overwrite)
    files = [h5py.File(path, "r") for path, _ in shards]
    try:
        total = int(shards[0][1]["items_total"])
        count = int(shards[0][1]["shard_count"])
        for number, file in enumerate(files):
            start, stop = Shard(number, count).bounds(total)
            if file["stimuli"].shape[0] != stop - start:
                raise InputError(f"{shards[number][0]} holds {file['stimuli'].shape[0]} rows, shard {number}/{count} "
                                 f"of {total} items needs {stop - start}; rerun that shard")
        names = dataset_paths(files[0])
        with atomic_output(out) as tmp, h5py.File(tmp, "w", track_order=True) as merged:
            for name in names:
                _copy_rows(name, files, merged, total)
            attrs = {k: v for k, v in shards[0][1].items() if k not in (*SHARD_ATTRS, "job_sha256")}
            attrs["signature"] = shards[0][1]["job_sha256"]
            attrs["provenance"] = provenance_attr(inputs=[(path.name, path) for path, _ in shards])
            attrs["shard_provenance"] = to_json([parse_attr(a.get("provenance")) for _, a in shards])
            if "config" in attrs:
                config = json.loads(attrs["config"])
                config.pop("shard", None)
                attrs["config"] = json.dumps(config, sort_keys=True, default=str)
            merged.attrs.update(attrs)
    finally:
        for file in files:
            file.close()
    return out


def merge_activations(shards: Sequence[str | Path], out: str | Path, *, overwrite: bool = False) -> Path:
    """Join the shards of a sharded `extract_to_file` run (`merge_rows`)."""
    return merge_rows(shards, out, ACTIVATIONS_KIND, overwrite=overwrite)


def merge_attributions(shards: Sequence[str | Path], out: str | Path, *, overwrite: bool = False) -> Path:
    """Join the shards of a sharded `explain_to_file` run (`merge_rows`)."""
    return merge_rows(shards, out, ATTRIBUTIONS_KIND, overwrite=overwrite)


# the merge of each kind of shard (searchlight and encoding shards: `net2brain_fovex.brain.searchlight_files`,
# `net2brain_fovex.brain.encoding_files`)
MERGERS = {ACTIVATIONS_KIND: "merge_activations", ATTRIBUTIONS_KIND: "merge_attributions",
           SEARCHLIGHT_SHARD_KIND: "merge_searchlight", ENCODE_SHARD_KIND: "merge_encoding"}
# the shards of runs that write a folder lie inside it, named after these
_FOLDER_SHARDS = (SEARCHLIGHT_SHARD_NAME, ENCODE_SHARD_NAME)


@holds_outputs
def merge_shards(
    out: str | Path,
    shards: Sequence[str | Path] | None = None,
    *,
    kinds: Sequence[str] | None = None,
    overwrite: bool = False,
    config: dict | None = None,
) -> Path:
    """Join the shard files of one sharded run into exactly what the unsharded run
    writes: the activations or attribution file `out`, or the searchlight or encoding folder `out`.

    Parameters
    ----------
    out : path
        The unsharded output (a file, or a searchlight's or encoding run's output folder).
    shards : sequence of path, optional
        The shard files; default: those beside `out` (in `out` for a searchlight or an encoding run).
    kinds : sequence of str, optional
        The kinds of shard accepted (default: every kind of `MERGERS`).
    overwrite : bool
        Replace an existing output.
    config : dict, optional
        The resolved options, recorded beside a merged file (`record_options`).

    Raises
    ------
    InputError
        No shards, or missing, duplicate, foreign or damaged ones, or shards of a kind
        not in `kinds`.
    """
    paths = [Path(p) for p in shards] if shards else shards_beside(out)
    kind = check_shards(paths)[0][1].get("kind")
    if kind not in MERGERS or (kinds is not None and kind not in kinds):
        accepted = " or ".join(kinds or MERGERS)
        hint = f"; join them with `{MERGERS[kind]}`" if kind in MERGERS else ""
        raise InputError(f"{paths[0]} holds {kind}, not {accepted}{hint}")
    from .outputs import Output, check_outputs

    if kind == SEARCHLIGHT_SHARD_KIND:
        from ..brain.searchlight_files import merge_searchlight

        check_outputs([Output("out", Path(out), "folder")], {"shards": paths}, overwrite=overwrite)
        return merge_searchlight(paths, out, overwrite=overwrite)
    if kind == ENCODE_SHARD_KIND:
        from ..brain.encoding_files import merge_encoding

        return merge_encoding(paths, out, overwrite=overwrite)  # checks its outputs: it knows which files it writes
    from .config import options_output, record_options

    check_outputs([Output("out", Path(out), "hdf5"), *options_output(out, config)], {"shards": paths},
                  overwrite=overwrite)
    written = merge_rows(paths, out, kind, overwrite=overwrite)
    record_options(written, config)
    return written


def shards_beside(out: str | Path) -> list[Path]:
    """The shard files of the output `out` found beside it (for a searchlight or encoding
    folder, inside it), in shard order; `InputError` when there are none, or when a folder
    holds the shards of two commands."""
    out = Path(out)
    found = shard_outputs(out)
    if not found and out.is_dir():
        sets = [shards for shards in (shard_outputs(out / name) for name in _FOLDER_SHARDS) if shards]
        if len(sets) > 1:
            raise InputError(f"{out} holds the shards of two commands ({sets[0][0].name}, {sets[1][0].name}); give "
                             "the shard files of one as arguments")
        found = sets[0] if sets else []
    if not found:
        raise InputError(f"no shard files (NAME.shard-I-of-N.EXT) beside {out}; give the shard files as arguments")
    return found


def _copy_rows(name: str, files: list[h5py.File], merged: h5py.File, total: int) -> None:
    """Dataset `name` of every shard, stacked along rows, into `merged`."""
    source = files[0][name]
    folder = name.rpartition("/")[0]
    if folder and folder not in merged:
        merged.create_group(folder, track_order=True)
    chunks = (min(source.chunks[0], total), *source.shape[1:]) if source.chunks else None
    target = merged.create_dataset(name, shape=(total, *source.shape[1:]), dtype=source.dtype, chunks=chunks)
    target.attrs.update(dict(source.attrs))
    row = 0
    for file in files:
        part = file[name]
        if part.shape[1:] != source.shape[1:] or part.dtype != source.dtype:
            raise InputError(f"{file.filename}:/{name} is {part.shape} {part.dtype}, the first shard's "
                             f"{source.shape} {source.dtype}; the shards come from different runs")
        for start in range(0, part.shape[0], 256):  # bounded memory for large layers
            block = part[start:start + 256]
            target[row + start:row + start + len(block)] = block
        row += part.shape[0]


def dataset_paths(group: h5py.Group) -> list[str]:
    """Every dataset below `group`, each group in its own order (creation order where it
    tracks it; `visititems` would sort them by name)."""
    paths = []
    for node in group.values():
        if isinstance(node, h5py.Dataset):
            paths.append(node.name.lstrip("/"))
        else:
            paths += dataset_paths(node)
    return paths


def glob_escape(text: str) -> str:
    """`text` with glob wildcards escaped."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def _split_suffix(name: str) -> tuple[str, str]:
    """("acts", ".h5"), ("maps", ".nii.gz"): the stem before the known double suffixes."""
    for double in (".nii.gz", ".tar.gz"):
        if name.endswith(double):
            return name[: -len(double)], double
    stem, dot, suffix = name.rpartition(".")
    return (stem, dot + suffix) if dot and stem else (name, "")


def _plain(value):
    """An attribute value comparable with ==."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
