"""Every file a run writes, checked together before any work (`check_outputs`).

An entry point lists each file it will write (its output, the resolved-options sidecar,
tables beside it, figures, overlays, maps, shard files) with the Python parameter it
comes from and the format it is written in, and every input it reads. Refused, before
anything is read or written:

* an output that is one of the inputs: the same path, a symbolic link to it or a hard
  link of it, or a file of an input folder; whatever `overwrite` says (replacing an
  input destroys it);
* a new file in an input folder of the kind (suffix) of the files it holds: a plot
  among the stimulus images would be a stimulus of the next run (an output of another
  kind, as `acts.h5` beside the images, is fine);
* two outputs of the run on the same file;
* an existing output that is not a regular file (a folder, a FIFO, a device), even with
  `overwrite`; any other existing output without `overwrite` (unless it is one a run
  may replace, as the maps an interrupted searchlight left);
* an output whose suffix names another format than the one it is written in
  (`plot=p.csv` for a PNG); figures are written in the format their suffix names;
* an output whose folder is not a writable folder and cannot be created (a file of that
  name, or a parent that is a file or read-only). A missing folder is fine: it is created,
  with its parents, when the run writes there (`net2brain_fovex.io.atomic.make_output_folder`),
  so that a refused run leaves none behind.

The run's config file (`net2brain_fovex.io.provenance.command_scope`) counts as an
input too. Within an entry point, the first output listed (the run's main output) is
locked against other runs first (`net2brain_fovex.io.locks`).
"""
from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import OutputError
from .atomic import check_output_folder
from .locks import lock_output

__all__ = ["Output", "FORMATS", "check_outputs", "suffix_of", "figure_format"]

# the suffixes each format is written under; the first is the one to suggest
FORMATS = {
    "hdf5": (".h5", ".hdf5"),
    "csv": (".csv",),
    "npy": (".npy",),
    "yaml": (".yaml", ".yml"),
    "nifti": (".nii.gz", ".nii"),
    "png": (".png",),
    "figure": (".png", ".pdf", ".svg", ".jpg", ".jpeg"),
    "html": (".html", ".htm"),
    "folder": (),
}
# suffixes that name a format: an output ending in one of them must be written in it
_NAMED = {suffix for suffixes in FORMATS.values() for suffix in suffixes} | {
    ".npz", ".npy", ".mat", ".json", ".txt", ".tsv", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".mp4",
    ".avi", ".mov", ".webm", ".pt", ".pth", ".bin", ".safetensors", ".py", ".nii.gz",
}


@dataclass(frozen=True)
class Output:
    """One file (or folder) a run writes.

    Attributes
    ----------
    parameter : str
        The Python parameter it comes from (`out`, `plot`), for messages.
    path : Path
    format : str
        A key of `FORMATS`.
    replaceable : bool
        It may exist already without `overwrite` (left by an interrupted run of the job).
    folder_made : bool
        Its folder is created by the run, so it need not exist yet.
    """

    parameter: str
    path: Path
    format: str
    replaceable: bool = False
    folder_made: bool = False


def suffix_of(path: str | Path) -> str:
    """The suffix that names a file's format: `.nii.gz` for `map.nii.gz`, else the last."""
    name = Path(path).name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def figure_format(path: str | Path) -> str:
    """The format a figure is written in: the one its suffix names (`png` without one)."""
    suffix = suffix_of(path)
    return {".jpg": "jpeg", ".jpeg": "jpeg"}.get(suffix, suffix.lstrip(".") or "png")


def check_outputs(outputs: Iterable[Output], inputs: Mapping[str, Iterable[str | Path | None]] | None = None, *,
                  overwrite: bool = False) -> None:
    """Refuse, before any work, outputs that would destroy an input, collide with each
    other, replace a file without `overwrite`, or contradict their format (module docstring).

    Parameters
    ----------
    outputs : iterable of Output
        The main output first: it is locked (`lock_output`).
    inputs : mapping of str to paths, optional
        The inputs by the parameter that names them; a folder stands for itself and its
        files. The running command's config file is added.
    overwrite : bool
        Existing regular files may be replaced.

    Raises
    ------
    OutputError
        The first output that may not be written, naming its parameter and what is wrong,
        or another run holds the main output.
    """
    from .provenance import current_config_file

    outputs = list(outputs)
    if outputs:  # the run's main output (listed first): no other run may write it meanwhile
        lock_output(outputs[0].path)
    given = {name: [Path(p) for p in paths if p is not None] for name, paths in (inputs or {}).items()}
    config = current_config_file()
    if config is not None:
        given.setdefault("config", []).append(config)
    known, folders = _identities(given)
    seen: dict[str, str] = {}
    for output in outputs:
        path = Path(output.path)
        allowed = FORMATS[output.format]
        suffix = suffix_of(path)
        if output.format != "folder" and suffix in _NAMED and suffix not in allowed:
            raise OutputError(f"`{output.parameter}` {path} ends in {suffix} but is written as {output.format}; "
                              f"give a name ending in {allowed[0]}")
        key = _real(path)
        if key in seen:
            raise OutputError(f"`{output.parameter}` and `{seen[key]}` are the same file {path}; give them different paths")
        seen[key] = output.parameter
        matched = known.get(key) or (known.get(_inode(path)) if path.exists() else None)
        if matched is not None:
            raise OutputError(f"`{output.parameter}` {path} is an input of this run (`{matched}`): writing it would "
                              "destroy the input; write the output elsewhere")
        folder, kinds = folders.get(_real(path.parent), (None, set()))
        if folder is not None and suffix_of(path) in kinds:
            raise OutputError(f"`{output.parameter}` {path} would add a {suffix_of(path)} file to {path.parent}, a "
                              f"folder of inputs (`{folder}`): the next run would read it as one; write the output "
                              "elsewhere")
        _check_existing(output, path, overwrite)
        if not output.folder_made or path.parent.is_dir():  # a folder made later is checked when it exists
            check_output_folder(path)


def _check_existing(output: Output, path: Path, overwrite: bool) -> None:
    if not (path.exists() or path.is_symlink()):
        return
    if not path.exists():  # a dangling link: writing would go where it points
        raise OutputError(f"`{output.parameter}` {path} is a broken link; remove it or give another path")
    mode = path.stat().st_mode
    if output.format == "folder":
        if not stat.S_ISDIR(mode):
            raise OutputError(f"`{output.parameter}` {path} is a file, not a folder; give a folder")
        return
    if stat.S_ISDIR(mode):
        raise OutputError(f"`{output.parameter}` {path} is a folder; give a file name")
    if not stat.S_ISREG(mode):
        raise OutputError(f"`{output.parameter}` {path} is not a regular file (a FIFO, socket or device); "
                          "give the path of a file")
    if not overwrite and not output.replaceable:
        raise OutputError(f"output {path} exists already; add `overwrite=True` to replace it")


def _real(path: Path) -> str:
    return os.path.realpath(path)


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _identities(inputs: Mapping[str, list[Path]]) -> tuple[dict, dict]:
    """Every input file's real path and (device, inode), a folder's files with it; and
    every input folder's real path with its parameter and the suffixes of its files."""
    known: dict = {}
    folders: dict[str, tuple[str, set[str]]] = {}
    for name, paths in inputs.items():
        for path in paths:
            members = [path]
            if path.is_dir():
                try:
                    members += [child for child in path.iterdir() if not child.name.startswith(".")]
                except OSError:
                    pass
                folders[_real(path)] = (name, {suffix_of(member) for member in members[1:]})
            for member in members:
                known.setdefault(_real(member), name)
                inode = _inode(member) if member.exists() else None
                if inode is not None:
                    known.setdefault(inode, name)
    return known, folders
