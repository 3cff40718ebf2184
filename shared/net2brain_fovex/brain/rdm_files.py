"""RDM files: our HDF5 layout and the RDMs read from any RDM file or folder; `rdms_to_file`,
which computes the RDMs of activations or brain recordings and writes them.

Our layout (`kind` = "rdms"): `/stimuli` (n,) ids; `/rdms/<name>` one dataset per layer
(n, n) or per ROI (subjects, n, n) or (subjects, time, n, n); root attributes `metric`
and `provenance` (JSON, `net2brain_fovex.io.provenance`).

Brain RDMs are read from
* our HDF5 files (every `/rdms/<roi>`; a 2-D dataset is one subject);
* Net2Brain's .npz and MATLAB .mat files (`rdm_formats`); the file name (without
  suffix) is the ROI;
* rsatoolbox's HDF5 files (`RDMs.save(..., file_type='hdf5')`): RDMs with the same
  rdm descriptor `name` (or `roi`, `layer`, `model`) are the subjects of one ROI (and
  times, by the rdm descriptors `subject` and `time`); without one, all are the subjects
  of one ROI named by the file-wide descriptor `name` or `roi`, else the file name;
* a folder of such files, each giving its ROIs.
Model RDMs are read from our HDF5 files, from a .mat struct array with fields `RDM`
and `name` (one model / layer per entry) or from an rsatoolbox HDF5 file (one layer per
RDM, named by its rdm descriptor `name` (or `roi`, `layer`, `model`), else its `index`).
Pickle files (rsatoolbox's `file_type='pkl'`) are refused: unpickling can run code.
`rdms_to_file(..., format="rsatoolbox")` writes rsatoolbox's layout instead of ours.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from ..errors import ConfigError, InputError
from ..io.atomic import atomic_output
from ..io.config import options_output, record_options
from ..io.hdf5 import ACTIVATIONS_KIND, RDMS_KIND, check_name, open_h5, read_stimuli
from ..io.locks import holds_outputs
from ..io.outputs import Output, check_outputs
from ..io.paths import what_is_there
from ..memory import check_memory
from ..selection import ALL, select
from .activation_inputs import check_activation_layers
from .categories import read_categories
from .parameters import RDMParameters
from .rdm_formats import (
    is_rsatoolbox,
    mat_rdms,
    mat_struct_entries,
    npz_rdms,
    refuse_pickle,
    rsatoolbox_rdms,
    square_rdm,
    write_rsatoolbox,
)
from .registry import RDM_FORMATS, RDM_METRICS

if TYPE_CHECKING:  # the figures import matplotlib: only when pictures are drawn
    from ..figures.rdm import RDMPicture

__all__ = ["RDMSet", "RDMFile", "write_rdms", "read_rdm_file", "read_model_rdms", "read_brain_rdms", "validate_rdms",
           "align_to_model", "reorder_index", "choose_rdms", "feature_chunks", "rdms_from_activations", "rdms_to_file"]

BRAIN_SUFFIXES = (".h5", ".hdf5", ".npz", ".mat")


@dataclass
class RDMSet:
    """RDMs by name (layer or ROI), the stimulus ids when the file has them, the metric."""

    rdms: dict[str, np.ndarray]
    stimuli: list[str] | None
    metric: str | None
    source: str
    model: str | None = None


def write_rdms(
    path: str | Path, stimuli: Sequence[str], rdms: Mapping[str, np.ndarray], *, metric: str,
    attrs: Mapping | None = None,
) -> Path:
    """Write an RDM file atomically: `/stimuli`, `/rdms/<name>` in the given order; root
    attributes `kind`, `metric`, `attrs` and `provenance` (`net2brain_fovex.io.provenance`, built for
    the running command unless `attrs` has one).

    Every RDM dataset also gets the attribute `metric`. The RDMs are written as given (not
    validated; their names are: `check_name`), and an existing file at `path` is replaced
    without a check: callers check first (`check_new_output`).

    Parameters
    ----------
    path : path
        The HDF5 file to write; its folder must exist.
    stimuli : sequence of str
        The stimulus ids, in the order of the RDMs' rows.
    rdms : mapping of str to array
        One RDM or stack of RDMs per name: (n, n), (subjects, n, n) or (subjects, time, n, n).
    metric : str
        The RDM metric, recorded as an attribute (free text, such as `simulated`).
    attrs : mapping, optional
        Further root attributes, of values h5py can store (not None).

    Returns
    -------
    Path
        `path`.

    Raises
    ------
    InputError
        A name that cannot be a dataset name (`check_name`: empty, `.`, with a `/`).
    OutputError
        The folder is missing or not writable, or the write fails (a full disk).
    """
    from ..io.provenance import provenance_attr

    for name in rdms:  # a `/` would make a nested group that no reader takes for an RDM
        check_name(name, "an RDM (a layer or ROI)")
    path = Path(path)
    attrs = dict(attrs or {})
    attrs.setdefault("provenance", provenance_attr())
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w") as file:
            file.attrs["kind"] = RDMS_KIND
            file.attrs["metric"] = metric
            for key, value in attrs.items():
                file.attrs[key] = value
            file.create_dataset("stimuli", data=np.array(list(stimuli), dtype=h5py.string_dtype()))
            group = file.create_group("rdms", track_order=True)
            for name, matrix in rdms.items():
                dataset = group.create_dataset(name, data=matrix)
                dataset.attrs["metric"] = metric
    return path


def _write_rsatoolbox_file(path: str | Path, stimuli: Sequence[str], rdms: Mapping[str, np.ndarray], *, metric: str,
                           attrs: Mapping) -> Path:
    """`write_rsatoolbox`, atomically, with the provenance attribute; `InputError` for a
    name or id that is not ASCII (rsatoolbox's `load_rdm` decodes them as ASCII)."""
    from ..io.provenance import provenance_attr

    path = Path(path)
    other = next((s for s in [*stimuli, *rdms] if not s.isascii()), None)
    if other is not None:
        raise InputError(f"{other!r} is not ASCII text, which rsatoolbox's load_rdm cannot read from {path}; rename "
                         "it, or write our layout (`format` net2brain)")
    with atomic_output(path) as tmp:
        write_rsatoolbox(tmp, stimuli, rdms, metric=metric, attrs={"provenance": provenance_attr(), **attrs})
    return path


def read_rdm_file(path: str | Path) -> RDMSet:
    """Our HDF5 RDM layout."""
    with open_h5(path, RDMS_KIND) as file:
        group = file.get("rdms")
        if not isinstance(group, h5py.Group) or not len(group):
            raise InputError(f"{path} holds no RDMs (no datasets under /rdms); give a file written by `rdms_to_file`")
        stimuli = read_stimuli(file)
        rdms = {}
        for name, dataset in group.items():
            if not isinstance(dataset, h5py.Dataset) or dataset.dtype.kind not in "fiu":
                kind = dataset.dtype if isinstance(dataset, h5py.Dataset) else "a group"
                raise InputError(f"{path}: RDM {name!r} holds {kind}, not numbers; give a file written by `rdms_to_file`")
            rdms[name] = dataset[()]
            shape = rdms[name].shape
            if len(shape) >= 2 and shape[-1] == shape[-2] and shape[-1] != len(stimuli):
                raise InputError(f"{path}: RDM {name!r} is for {shape[-1]} stimuli, but /stimuli lists {len(stimuli)} ids; "
                                 "give a file written by `rdms_to_file`")
        metric, model = file.attrs.get("metric"), file.attrs.get("model")
        return RDMSet(
            rdms, stimuli, str(metric) if metric is not None else None, str(path),
            str(model) if model is not None else None,
        )


def read_model_rdms(path: str | Path) -> RDMSet:
    """Model RDMs (one (n, n) matrix per layer) from our HDF5 file or a .mat struct array."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"model RDM file {path} is a folder; give the file written by `rdms_to_file` (or a .mat file)")
    if not path.is_file():
        raise InputError(f"model RDM file {path} {what_is_there(path)}; give the file written by `rdms_to_file` (or a .mat file)")
    refuse_pickle(path)
    if path.suffix.lower() == ".mat":
        entries = mat_struct_entries(path)
        if not entries or any(not getattr(e, "name", None) for e in entries):
            raise InputError(f"{path}: expected a struct array with fields RDM and name (one model per entry)")
        rdms = {check_name(str(e.name), f"a model RDM of {path}"): square_rdm(np.asarray(e.RDM, dtype=float), path)
                for e in entries}
        result = RDMSet(rdms, None, None, str(path))
    elif is_rsatoolbox(path):
        result = _rsatoolbox_model_rdms(path)
    else:
        result = read_rdm_file(path)
    for name, matrix in result.rdms.items():
        if matrix.ndim != 2:
            raise InputError(f"{path}: model RDM {name!r} has shape {matrix.shape}; expected (stimuli, stimuli)")
        validate_rdms(matrix, f"{path}: model RDM {name!r}")
    if not result.rdms:
        raise InputError(f"{path} holds no RDMs; give a file written by `rdms_to_file` (or a .mat struct array)")
    return result


def read_brain_rdms(path: str | Path) -> RDMSet:
    """Brain RDMs by ROI, each (subjects, n, n) or (subjects, time, n, n)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in BRAIN_SUFFIXES and not p.name.startswith("."))
        if not files:
            raise InputError(f"brain RDM folder {path} holds no {', '.join(BRAIN_SUFFIXES)} files; put the brain RDM "
                             "files there, or give one file")
        merged = RDMSet({}, None, None, str(path))
        for file in files:
            part = read_brain_rdms(file)
            for roi, stack in part.rdms.items():
                if roi in merged.rdms:
                    raise InputError(f"ROI {roi!r} appears twice in {path}; rename one of the files")
                merged.rdms[roi] = stack
            if part.stimuli is not None:
                if merged.stimuli is not None and merged.stimuli != part.stimuli:
                    raise InputError(f"{file} lists other stimuli than the other files in {path}")
                merged.stimuli = part.stimuli
        return merged
    if not path.is_file():
        raise InputError(f"brain RDM file or folder {path} {what_is_there(path)}; give a file or a folder of files")
    refuse_pickle(path)
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5") and is_rsatoolbox(path):
        result = _rsatoolbox_brain_rdms(path)
    elif suffix in (".h5", ".hdf5"):
        result = read_rdm_file(path)
        result.rdms = {roi: stack[None] if stack.ndim == 2 else stack for roi, stack in result.rdms.items()}
    elif suffix == ".npz":
        result = RDMSet({path.stem: npz_rdms(path)}, None, None, str(path))
    elif suffix == ".mat":
        result = RDMSet({path.stem: mat_rdms(path)}, None, None, str(path))
    else:
        raise InputError(f"brain RDMs {path}: unsupported file type; use {', '.join(BRAIN_SUFFIXES)} or a folder")
    for roi, stack in result.rdms.items():
        if stack.ndim not in (3, 4):
            raise InputError(
                f"{path}: ROI {roi!r} has shape {stack.shape}; expected (subjects, n, n) or (subjects, time, n, n)"
            )
        validate_rdms(stack, f"{path}: ROI {roi!r}")
    return result


def _rsatoolbox_model_rdms(path: Path) -> RDMSet:
    """One model RDM per RDM of an rsatoolbox file, by its name (else its index)."""
    found = rsatoolbox_rdms(path)
    names = found.names or [str(i) for i in found.rdm_descriptors.get("index", range(len(found.matrices)))]
    if len(set(names)) != len(names):
        twice = next(n for i, n in enumerate(names) if n in names[:i])
        raise InputError(f"{path}: two RDMs are named {twice!r}; as model RDMs each needs its own name "
                         "(rdm descriptor 'name')")
    rdms = {check_name(name, f"a model RDM of {path}"): matrix
            for name, matrix in zip(names, found.matrices, strict=True)}
    return RDMSet(rdms, found.stimuli, found.measure, str(path))


def _rsatoolbox_brain_rdms(path: Path) -> RDMSet:
    """Brain RDMs of an rsatoolbox file: by ROI (the RDMs' name), each (subjects, n, n), or
    (subjects, time, n, n) when the file has the rdm descriptor `time`."""
    found = rsatoolbox_rdms(path)
    names = found.names or [found.name or path.stem] * len(found.matrices)
    descriptors = found.rdm_descriptors
    rdms = {}
    for roi in dict.fromkeys(names):
        rows = [i for i, name in enumerate(names) if name == roi]
        check_name(roi, f"an ROI of {path}")
        if "time" not in descriptors:
            rdms[roi] = found.matrices[rows]
            continue
        times = [descriptors["time"][i] for i in rows]
        subjects = [descriptors["subject"][i] for i in rows] if "subject" in descriptors else \
            [times[:k].count(t) for k, t in enumerate(times)]
        cells = {(s, t): i for s, t, i in zip(subjects, times, rows, strict=True)}
        subject_keys, time_keys = list(dict.fromkeys(subjects)), list(dict.fromkeys(times))
        if len(cells) != len(rows) or len(cells) != len(subject_keys) * len(time_keys):
            raise InputError(f"{path}: ROI {roi!r} does not hold one RDM per subject and time (rdm descriptors "
                             f"'subject' and 'time'); save every subject at every time once")
        rdms[roi] = np.stack([np.stack([found.matrices[cells[s, t]] for t in time_keys]) for s in subject_keys])
    return RDMSet(rdms, found.stimuli, found.measure, str(path))


def validate_rdms(stack: np.ndarray, where: str) -> None:
    """Raise `InputError` unless the last two axes hold square, symmetric, finite RDMs."""
    if stack.ndim < 2 or stack.shape[-1] != stack.shape[-2]:
        raise InputError(f"{where} is not square: shape {stack.shape}; an RDM is (stimuli, stimuli)")
    if stack.shape[-1] < 3:
        raise InputError(f"{where} has {stack.shape[-1]} stimuli; RSA needs at least 3")
    finite = np.isfinite(stack)
    if not finite.all():
        index = np.unravel_index(int(np.argmin(finite)), stack.shape)
        raise InputError(f"{where} holds NaN or infinite values (first at index {tuple(int(i) for i in index)}); "
                         "recompute it from finite data")
    scale = max(float(np.abs(stack).max()), 1e-12)
    asymmetry = np.abs(stack - np.swapaxes(stack, -1, -2)).max()
    if asymmetry > 1e-5 * scale:
        raise InputError(f"{where} is not symmetric (largest difference {asymmetry:.3g}); an RDM must be")


def align_to_model(model: RDMSet, brain: RDMSet) -> dict[str, np.ndarray]:
    """Brain RDM stacks in the model's stimulus order.

    Counts must agree; when both sides name their stimuli, the names must match as sets
    and the brain side is reordered to the model's order. Raises `InputError` naming
    the first mismatches.
    """
    n = next(iter(model.rdms.values())).shape[-1]
    for roi, stack in brain.rdms.items():
        if stack.shape[-1] != n:
            raise InputError(
                f"ROI {roi!r} in {brain.source} has {stack.shape[-1]} stimuli, the model RDMs in {model.source} have {n}; "
                "give RDMs of the same stimuli"
            )
    if model.stimuli is None or brain.stimuli is None:
        return dict(brain.rdms)
    order = reorder_index(model.stimuli, brain.stimuli, wanted_source=model.source, given_source=brain.source)
    return {roi: stack[..., order[:, None], order[None, :]] for roi, stack in brain.rdms.items()}


def reorder_index(wanted: Sequence[str], given: Sequence[str], *, wanted_source: str, given_source: str,
                  wanted_name: str = "the model RDMs", given_name: str = "the brain data") -> np.ndarray:
    """Indices that put the `given` stimulus ids into the `wanted` order; `InputError`
    naming the first ids missing on either side (the sides called `wanted_name` and
    `given_name`), or an id listed twice."""
    if len(set(given)) != len(given):
        raise InputError(f"{given_source} lists a stimulus id twice")
    missing = [s for s in wanted if s not in set(given)]
    extra = [s for s in given if s not in set(wanted)]
    if missing or extra:
        raise InputError(
            f"stimulus ids differ between {wanted_source} and {given_source}: "
            f"missing from {given_name}: {', '.join(missing[:3]) or 'none'}; "
            f"not in {wanted_name}: {', '.join(extra[:3]) or 'none'}"
        )
    position = {s: i for i, s in enumerate(given)}
    return np.array([position[s] for s in wanted])


def feature_chunks(dataset: h5py.Dataset, memory_bytes: int, itemsize: int):
    """Stream an HDF5 dataset (n, d1, ...) in slabs along d1 of about `memory_bytes`.

    Returns (number of chunks, a function yielding (1, n, p_c) tensors). A slab holds at
    least one index of d1, so the smallest chunk is n x prod(d2, ...) values. Slabs of
    a row-chunked dataset are read as long contiguous runs of every row.
    """
    import torch

    n = dataset.shape[0]
    if dataset.ndim == 1:
        return 1, lambda: iter([torch.as_tensor(dataset[()]).reshape(1, n, 1)])
    inner = int(np.prod(dataset.shape[2:], dtype=np.int64))
    step = max(1, memory_bytes // max(1, n * inner * itemsize))
    starts = range(0, dataset.shape[1], step)

    def chunks():
        for start in starts:
            slab = dataset[:, start:start + step]
            yield torch.from_numpy(np.ascontiguousarray(slab).reshape(1, n, -1))

    return len(starts), chunks


def choose_rdms(rdms: RDMSet, layers: str | Sequence[str] = ALL) -> dict[str, np.ndarray]:
    """The RDMs of a selection (`all` or NAME,NAME, in the order given)."""
    names = select(layers, list(rdms.rdms), hint=f"{rdms.source} holds {len(rdms.rdms)} RDMs", order="given")
    return {name: rdms.rdms[name] for name in names}


def _chosen_layers(file: h5py.File, path: str | Path, layers: str | Sequence[str]) -> list[str]:
    """The selected layers of an open activations file."""
    group = file.get("layers")
    available = list(group) if isinstance(group, h5py.Group) else []
    if not available:
        raise InputError(f"{path} holds no layers (nothing under /layers); give a file written by `extract_to_file`")
    return select(layers, available, hint=f"{path} holds {len(available)} layers", order="given")


def rdm_names(*, activations: str | Path | None = None, layers: str | Sequence[str] = ALL,
              mask: Sequence[str | Path] = (), roi: str = "responses") -> list[str]:
    """The names of the RDMs `rdms_to_file` will write, from the inputs' headers: the
    chosen layers of `activations`, the ROIs of the `mask` files, or `roi`; each checked as
    a dataset and file name (`check_name`)."""
    from .nifti import roi_name

    if activations is not None:
        with open_h5(activations, ACTIVATIONS_KIND) as file:
            names = _chosen_layers(file, activations, layers)
    else:
        names = [roi_name(Path(m)) for m in mask] if mask else [roi]
    for name in names:
        check_name(name, "an RDM (a layer or ROI)")
    return names


def rdms_from_activations(
    path: str | Path,
    layers: str | Sequence[str] = ALL,
    *,
    parameters: RDMParameters | None = None,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
    chunk_bytes: int | None = None,
) -> tuple[RDMSet, dict]:
    """One RDM per layer of an activations file, streamed in feature chunks of about
    `parameters.memory` MB (peak memory: about two n x n matrices plus one chunk).

    Parameters
    ----------
    path : path
        An activations file (`extract_to_file`).
    layers : str or sequence of str, default "all"
        `all` or NAME,NAME (in the order given).
    parameters : RDMParameters, optional
        Metric, standardisation, precision, memory (default: the defaults).
    device : str, default "cpu"
    progress : callable (done, total), optional
        Called after every layer.
    chunk_bytes : int, optional
        Bytes per streamed chunk, finer than `parameters.memory` (in MB), for tests.

    Returns the RDMs (in the file's stimulus order) and the activation file's model
    attributes (model, source, weights).
    """
    from .rdm import rdm_from_chunks

    parameters = parameters or RDMParameters()
    metric, memory_bytes = parameters.metric, chunk_bytes or parameters.memory * 2**20
    itemsize = 8 if parameters.precision == "double" else 4
    with open_h5(path, ACTIVATIONS_KIND) as file:
        group = file.get("layers")
        names = _chosen_layers(file, path, layers)
        stimuli = read_stimuli(file)
        if len(stimuli) < 2:
            raise InputError(f"{path} holds {len(stimuli)} stimuli; an RDM needs at least 2: extract more stimuli")
        streams = {}
        for name in names:  # every layer is checked before any work
            dataset = group[name]
            if not isinstance(dataset, h5py.Dataset) or dataset.dtype.kind not in "fiu":
                kind = dataset.dtype if isinstance(dataset, h5py.Dataset) else "a group"
                raise InputError(f"{path}: layer {name!r} holds {kind}, not numbers; give a file written by `extract_to_file`")
            if dataset.ndim < 1 or dataset.shape[0] != len(stimuli):
                rows = dataset.shape[0] if dataset.ndim else 0
                raise InputError(f"{path}: layer {name!r} has {rows} rows for {len(stimuli)} stimuli (/stimuli); "
                                 "give a complete file written by `extract_to_file`")
            streams[name] = feature_chunks(dataset, memory_bytes, itemsize)
            if not RDM_METRICS[metric].streamable and streams[name][0] > 1:
                raise InputError(
                    f"layer {name} of {path} does not fit in `memory` and the {metric} metric cannot be "
                    "streamed (it ranks whole stimulus rows): raise `memory` or use another metric"
                )
        # every layer's RDM is held until the file is written, beside the work of one
        # (about two n x n matrices and a chunk)
        chunk = max(min(memory_bytes, group[name].size * itemsize) for name in names)
        check_memory((len(names) + 3) * len(stimuli) ** 2 * itemsize + chunk,
                     what=f"{len(names)} RDM(s) of {len(stimuli)} stimuli",
                     lower="choose fewer `layers` per run (or `precision=single`, or a lower `memory`)")
        rdms = {}
        for index, name in enumerate(names):
            count, chunks = streams[name]
            try:
                rdms[name] = rdm_from_chunks(chunks, (1, len(stimuli)), metric, standardize=parameters.standardize,
                                             precision=parameters.precision, device=device)[0]
            except InputError as error:  # NaN or infinite activations
                raise InputError(f"{path}: layer {name!r}: {error}") from None
            if progress:
                progress(index + 1, len(names))
        model = {key: str(file.attrs[key]) for key in ("model", "source", "weights") if key in file.attrs}
    return RDMSet(rdms, stimuli, metric, str(path)), model


@dataclass(frozen=True)
class RDMFile:
    """What `rdms_to_file` wrote: the file, its RDMs by name, its stimulus ids and the
    pictures drawn (`RDMPicture`s: each file, its heat map's order and its MDS)."""

    path: Path
    rdms: dict[str, np.ndarray]
    stimuli: list[str]
    plots: list[RDMPicture]


@holds_outputs
def rdms_to_file(
    out: str | Path,
    *,
    activations: str | Path | None = None,
    betas: Sequence[str | Path] = (),
    mask: Sequence[str | Path] = (),
    responses: Sequence[str | Path] = (),
    roi: str = "responses",
    key: str | None = None,
    stimuli: str | Path | None = None,
    layers: str | Sequence[str] = ALL,
    metric: str = RDMParameters.metric,
    standardize: bool = RDMParameters.standardize,
    precision: str = RDMParameters.precision,
    memory: int = RDMParameters.memory,
    device: str = "cpu",
    plot: str | Path | None = None,
    labels: str | Path | None = None,
    thumbnails: str | Path | None = None,
    format: str = RDM_FORMATS.default,
    overwrite: bool = False,
    config: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RDMFile:
    """Compute RDMs and write the RDM file `out`: one per layer of an activations file,
    or per ROI and subject of brain recordings.

    Parameters
    ----------
    out : path
        The HDF5 file to write (`write_rdms`).
    activations : path, optional
        An activations file (`extract_to_file`), with `layers`.
    betas, mask : sequences of path
        One 4D NIfTI per subject (one volume per stimulus) and one or more 3D ROI masks
        (`net2brain_fovex.brain.recordings.fmri_rdms`).
    responses : sequence of path
        One array file per subject, stimuli x channels [x time], for the ROI `roi`;
        `key` names the array inside (`load_responses`).
    stimuli : path, optional
        The stimulus ids of brain data: a stimulus folder or list (default 0 .. n-1).
    metric, standardize, precision, memory
        As `RDMParameters`.
    device : str, default "cpu"
    plot : path, optional
        A folder for one picture per RDM (the mean over subjects and time: its heat map
        beside its MDS, `net2brain_fovex.figures.rdm.rdm_figure`), created (with its
        parents) when the pictures are written.
    labels : path, optional
        With `plot`: a CSV of each stimulus's category (`stimulus,category`,
        `read_categories`); the heat maps group the categories, the MDS colours them.
    thumbnails : path, optional
        With `plot`: a folder holding each stimulus's image under its id, drawn at its
        MDS point.
    format : str, default "net2brain"
        A name of `RDM_FORMATS`: our layout (`write_rdms`) or rsatoolbox's
        (`write_rsatoolbox`, read by `rsatoolbox.rdm.load_rdm`; `out` must end in .h5 or
        .hdf5, the suffixes by which `load_rdm` picks its reader).
    overwrite : bool
        Replace an existing output.
    config : dict, optional
        The resolved options, recorded beside the file (`record_options`).
    progress : callable (done, total), optional

    Returns
    -------
    RDMFile

    Raises
    ------
    ConfigError
        Not exactly one of `activations`, `betas` and `responses`, or a bad option.
    InputError
        Unreadable or inconsistent inputs (headers are checked before any work).
    """
    from ..device import resolve_device
    from ..extraction.stimuli import discover_stimuli
    from .recordings import check_betas, fmri_rdms, load_responses, response_rdms

    parameters = RDMParameters(metric, standardize, precision, memory)
    RDM_FORMATS.check(format)
    if format == "rsatoolbox" and Path(out).suffix.lower() not in (".h5", ".hdf5"):
        raise ConfigError(f"`out` {out} must end in .h5 or .hdf5 with `format` rsatoolbox: rsatoolbox's load_rdm "
                          "picks its reader by the suffix")
    given = [name for name, value in (("activations", activations), ("betas", betas), ("responses", responses)) if value]
    if len(given) != 1:
        raise ConfigError("give exactly one of `activations`, `betas` (with `mask`) or `responses`")
    if mask and not betas:
        raise ConfigError("`mask` selects the ROIs of `betas` volumes; give `betas` with it, or leave `mask` out")
    if key is not None and not responses:
        raise ConfigError("`key` names the array inside `responses` files; give `responses` with it, or leave `key` out")
    if plot is not None and Path(plot).exists() and not Path(plot).is_dir():
        raise ConfigError(f"`plot` {plot} is a file, not a folder; give a folder for the heat maps")
    for name, value in (("labels", labels), ("thumbnails", thumbnails)):
        if value is not None and plot is None:
            raise ConfigError(f"`{name}` is drawn in the RDM pictures; give `plot` (a folder) with it, "
                              f"or leave `{name}` out")
    if labels is not None:
        read_categories(labels)  # its form, before any work
    if thumbnails is not None and not Path(thumbnails).is_dir():
        raise InputError(f"`thumbnails` {thumbnails} {what_is_there(Path(thumbnails))}; give the folder of the "
                         "stimulus images")
    if activations is not None and (labels, thumbnails) != (None, None):
        # the file's headers name the stimuli: their labels and images are checked before the RDMs are computed
        _picture_inputs(labels, thumbnails, check_activation_layers(Path(activations), layers)[1])
    names = rdm_names(activations=activations, layers=layers, mask=mask, roi=roi)
    outputs = [Output("out", Path(out), "hdf5"), *options_output(out, config)]
    outputs += [Output("plot", Path(plot) / f"{name}.png", "png") for name in names] if plot is not None else []
    check_outputs(outputs, {"activations": [activations], "betas": betas, "mask": mask, "responses": responses,
                            "stimuli": [stimuli], "labels": [labels], "thumbnails": [thumbnails]}, overwrite=overwrite)
    target = resolve_device(device)
    attrs: dict = {"standardize": standardize, "precision": precision}
    if activations is not None:
        result, model = rdms_from_activations(activations, layers, parameters=parameters, device=target,
                                              progress=progress)
        ids, rdms, attrs = result.stimuli, result.rdms, {**attrs, **model}
    else:
        ids = [s.id for s in discover_stimuli(stimuli)] if stimuli else None
        if betas:  # every header is checked before any work, and gives the stimulus count
            n = check_betas(list(betas), list(mask))
        elif ids is not None:
            n = load_responses(responses[0], key).shape[0]
        if ids is not None and len(ids) != n:
            raise ConfigError(f"`stimuli` {stimuli} lists {len(ids)} stimuli, the brain data have {n}; "
                              "give one volume (or response row) per stimulus, in the `stimuli` order")
        if betas:
            rdms = fmri_rdms(list(betas), list(mask), parameters=parameters, device=target, progress=progress)
        else:
            rdms = {roi: response_rdms(list(responses), key, parameters=parameters, device=target, progress=progress)}
        n = next(iter(rdms.values())).shape[-1]
        ids = ids if ids is not None else [str(i) for i in range(n)]
    attrs = {k: v for k, v in attrs.items() if v is not None}
    # every input's stimulus ids are known now: the labels and images must be theirs before anything is written
    categories, images = _picture_inputs(labels, thumbnails, ids)
    if format == "rsatoolbox":
        path = _write_rsatoolbox_file(out, ids, rdms, metric=metric, attrs=attrs)
    else:
        path = write_rdms(out, ids, rdms, metric=metric, attrs=attrs)
    plots = []
    if plot is not None:
        from ..figures.rdm import rdm_figure

        for name, matrix in rdms.items():
            first = matrix if matrix.ndim == 2 else matrix.reshape(-1, *matrix.shape[-2:]).mean(axis=0)
            label = name if matrix.ndim == 2 else f"{name} (mean of {int(matrix.size // matrix.shape[-1] ** 2)})"
            plots.append(rdm_figure(first, Path(plot) / f"{name}.png", title=f"{label}, {metric}", stimuli=ids,
                                    categories=categories, thumbnails=images))
    record_options(path, config)
    return RDMFile(path, rdms, ids, plots)


def _picture_inputs(labels: str | Path | None, thumbnails: str | Path | None,
                    ids: Sequence[str]) -> tuple[dict[str, str] | None, list[Path] | None]:
    """The categories of the stimuli `ids` (`read_categories`) and their images, each
    None when not given."""
    categories = read_categories(labels, ids) if labels is not None else None
    return categories, _thumbnail_files(Path(thumbnails), ids) if thumbnails is not None else None


def _thumbnail_files(folder: Path, ids: Sequence[str]) -> list[Path]:
    """The image of each stimulus in `folder` (named by its id), each checked to be a
    readable image; InputError naming the first that is not."""
    from PIL import Image, UnidentifiedImageError

    files = []
    for stimulus in ids:
        path = folder / stimulus
        if not path.is_file():
            raise InputError(f"`thumbnails` image {path} {what_is_there(path)}; give the folder holding every "
                             "stimulus's image under its id")
        try:
            with Image.open(path) as image:
                image.verify()
        except (OSError, UnidentifiedImageError, SyntaxError) as error:
            raise InputError(f"`thumbnails` image {path} is not a readable image ({error}); replace it") from None
        files.append(path)
    return files
