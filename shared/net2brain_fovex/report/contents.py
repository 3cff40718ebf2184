"""What a run folder holds, sorted into the parts of a report (`scan_run`).

A file's part is told by what it is, never by the command that wrote it (a pipeline's
folder mixes the outputs of many):

* tables: CSV files, told apart by their header (`TABLE_KINDS`: the columns each of our
  commands always writes); any other CSV is an "other" table;
* figures: PNG, JPEG, SVG and GIF images. An image under `overlays/<method>/` is an
  explanation overlay (the grid of methods by image); one a table names (the `plot`
  column of the searchlight and encoding summaries) or with the stem of a table or
  HDF5 file beside it (`rsa.png` beside `rsa.csv`) belongs to that output; a folder
  holding only images, at least `GALLERY_SIZE` of them, is a stimulus folder
  (thumbnails); the others are figures of their own;
* NIfTI maps, HDF5 files (their kind and provenance), `*.config.yaml` sidecars (what
  was run, with which options) and everything else (listed with a link).

Hidden files (locks, temporary files of a run in progress) are left out; an
interrupted run's `.partial` file is listed as such. A file that cannot be read (a
damaged CSV or HDF5 file) is listed as unreadable with the reason, so that the report of
a failed run still shows the rest; `RunContents.warn` warns of both.
"""
from __future__ import annotations

import csv
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..extraction.stimuli import natural_key
from ..io.paths import what_is_there

__all__ = ["TableKind", "TABLE_KINDS", "Table", "RunContents", "scan_run", "GALLERY_SIZE", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg", ".gif")
# a folder of this many images and nothing else is a folder of stimuli, not of figures
GALLERY_SIZE = 8
OVERLAYS = "overlays"


@dataclass(frozen=True)
class TableKind:
    """A kind of our CSV tables: its report section, its title and the header columns
    that tell it (those its command always writes)."""

    name: str
    section: str
    title: str
    columns: tuple[str, ...]


# The columns are the always-written ones of RESULT_COLUMNS (brain/rsa.py), SUMMARY_COLUMNS
# (brain/searchlight_files.py), SUMMARY_COLUMNS and PARTITION_COLUMNS (brain/encoding_files.py),
# the cka table (brain/cka.py) and the two tables of fovex evaluate (evaluate/evaluation.py);
# tests/report/test_contents.py holds them to those writers.
TABLE_KINDS = (
    TableKind("rsa", "rsa", "RSA", ("roi", "model", "layer", "score", "sem", "p")),
    TableKind("searchlight", "searchlight", "Searchlight maps", ("map", "subject", "layer", "statistic", "peak_value")),
    TableKind("encoding", "encoding", "Encoding", ("roi", "layer", "subject", "mean_r", "mean_r2")),
    TableKind("partition", "encoding", "Variance partitioning", ("roi", "subject", "measure", "spaces", "mean_r2")),
    TableKind("cka", "cka", "CKA", ("layer_a", "cka", "n_stimuli", "estimator")),
    TableKind("metrics", "evaluation", "Explanation metrics", ("method", "metric", "mean", "sem", "n", "better")),
    TableKind("metric-rows", "evaluation", "Metrics per image", ("image", "method", "target")),
)
OTHER_TABLE = TableKind("other", "tables", "Other tables", ())


@dataclass
class Table:
    """One CSV file: its kind, header, rows and the figures that belong to it."""

    path: Path
    kind: TableKind
    columns: list[str]
    rows: list[dict[str, str]]
    figures: list[Path] = field(default_factory=list)


@dataclass
class RunContents:
    """A run folder sorted into the parts of its report (paths are absolute)."""

    folder: Path
    tables: list[Table] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)  # figures of their own
    overlays: dict[Path, dict[str, dict[str, Path]]] = field(default_factory=dict)  # folder -> method -> image
    galleries: dict[Path, list[Path]] = field(default_factory=dict)  # stimulus folder -> its images
    maps: list[Path] = field(default_factory=list)
    data: list[dict] = field(default_factory=list)  # describe() of each HDF5 file
    data_figures: dict[Path, list[Path]] = field(default_factory=dict)  # HDF5 file -> its figures
    configs: list[dict] = field(default_factory=list)  # describe() of each sidecar
    partial: list[Path] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    others: list[Path] = field(default_factory=list)

    def files(self) -> list[Path]:
        """Every file of the folder the report shows or lists."""
        found = [t.path for t in self.tables] + [p for t in self.tables for p in t.figures] + self.figures
        found += [p for methods in self.overlays.values() for images in methods.values() for p in images.values()]
        found += [p for images in self.galleries.values() for p in images] + self.maps
        found += [Path(d["file"]) for d in self.data] + [p for ps in self.data_figures.values() for p in ps]
        found += [Path(c["file"]) for c in self.configs] + self.partial + [p for p, _ in self.unreadable] + self.others
        return sorted(found, key=lambda p: natural_key(str(p)))

    def warn(self) -> None:
        """A warning for each unfinished and each unreadable file (the page lists them)."""
        for path in self.partial:
            warnings.warn(f"{path} is unfinished (an interrupted run); the report lists it", RuntimeWarning,
                          stacklevel=2)
        for path, reason in self.unreadable:
            warnings.warn(f"{path} cannot be read ({reason}); the report lists it", RuntimeWarning, stacklevel=2)

    def reportable(self) -> bool:
        """Whether the folder holds any output of our commands (tables, figures, maps,
        data files or sidecars), not only foreign files."""
        return any((self.tables, self.figures, self.overlays, self.maps, self.data, self.configs, self.partial))


def scan_run(folder: str | Path, *, skip: Path | None = None) -> RunContents:
    """Sort the files of the run folder `folder` (and its sub-folders) into a report's
    parts (module docstring).

    Parameters
    ----------
    folder : path
        A run's output folder, or a pipeline's.
    skip : path, optional
        A file left out (the report being written).

    Returns
    -------
    RunContents

    Raises
    ------
    InputError
        `folder` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} {what_is_there(folder)}; give the output folder of a run to report on")
    contents = RunContents(folder.resolve())
    images: list[Path] = []
    for path in _files(contents.folder, skip):
        name = path.name.lower()
        if name.endswith(".partial"):
            contents.partial.append(path)
        elif name.endswith((".csv", ".tsv")):
            _add_table(contents, path)
        elif name.endswith(IMAGE_SUFFIXES):
            images.append(path)
        elif name.endswith((".nii", ".nii.gz")):
            contents.maps.append(path)
        elif name.endswith((".h5", ".hdf5")):
            _add_data(contents, path)
        elif name.endswith(".config.yaml"):
            _add_config(contents, path)
        else:
            contents.others.append(path)
    _sort_images(contents, images)
    return contents


def _files(folder: Path, skip: Path | None) -> list[Path]:
    """Every visible regular file under `folder`, in natural order of the path; hidden
    files and folders (locks, temporary files) and `skip` left out."""
    skip = skip.resolve() if skip is not None else None
    found = []
    for root, folders, names in os.walk(folder):
        folders[:] = sorted((f for f in folders if not f.startswith(".")), key=natural_key)
        for name in sorted(names, key=natural_key):
            path = Path(root) / name
            if not name.startswith(".") and path.is_file() and path.resolve() != skip:
                found.append(path)
    return found


def _add_table(contents: RunContents, path: Path) -> None:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
            rows = list(reader)
            columns = list(reader.fieldnames or [])
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        contents.unreadable.append((path, _reason(error)))
        return
    if not columns:
        contents.unreadable.append((path, "an empty table (no header)"))
        return
    kind = next((k for k in TABLE_KINDS if set(k.columns) <= set(columns)), OTHER_TABLE)
    contents.tables.append(Table(path, kind, columns, rows))


def _add_data(contents: RunContents, path: Path) -> None:
    from ..io.file_info import describe

    try:
        contents.data.append(describe(path))
    except InputError as error:
        contents.unreadable.append((path, str(error).removeprefix(f"{path}: ")))


def _add_config(contents: RunContents, path: Path) -> None:
    from ..io.file_info import describe

    try:
        contents.configs.append(describe(path))
    except InputError as error:
        contents.unreadable.append((path, str(error).removeprefix(f"{path}: ")))


def _reason(error: Exception) -> str:
    if isinstance(error, UnicodeDecodeError):
        return "not UTF-8 text"
    return getattr(error, "strerror", None) or str(error)


def _sort_images(contents: RunContents, images: list[Path]) -> None:
    """Give each image its part: an overlay, a figure of a table or data file, a
    stimulus of a gallery, or a figure of its own (module docstring)."""
    claimed: set[Path] = set()
    for path in images:
        if path.parent.parent.name == OVERLAYS:
            folder, method = path.parent.parent, path.parent.name
            contents.overlays.setdefault(folder, {}).setdefault(method, {})[path.stem] = path
            claimed.add(path)
    by_path = {p.resolve(): p for p in images}
    for table in contents.tables:
        named = [(table.path.parent / row["plot"]).resolve() for row in table.rows if row.get("plot")]
        table.figures = [by_path[p] for p in dict.fromkeys(named) if p in by_path and by_path[p] not in claimed]
        table.figures += [p for p in images if p not in claimed and p not in table.figures
                          and p.parent == table.path.parent and _stem(p) == _stem(table.path)]
        claimed.update(table.figures)
    for description in contents.data:
        data = Path(description["file"])
        owned = [p for p in images if p not in claimed and p.parent == data.parent and _stem(p) == _stem(data)]
        if owned:
            contents.data_figures[data] = owned
            claimed.update(owned)
    folders: dict[Path, list[Path]] = {}
    for path in images:
        if path not in claimed:
            folders.setdefault(path.parent, []).append(path)
    for folder, members in folders.items():
        only_images = all(p.name.startswith(".") or p.suffix.lower() in IMAGE_SUFFIXES or p.is_dir()
                          for p in folder.iterdir())
        if only_images and len(members) >= GALLERY_SIZE:
            contents.galleries[folder] = members
        else:
            contents.figures.extend(members)


def _stem(path: Path) -> str:
    """`rsa` of rsa.csv and rsa.png, `metrics` of metrics.summary.csv and metrics.curves.h5."""
    return path.name.split(".")[0]
