"""RDM files: our HDF5 layout, Net2Brain's .npz files, MATLAB .mat files, folders of them.

Our layout (`kind` = "rdms"): `/stimuli` (n,) ids; `/rdms/<name>` one dataset per layer
(n, n) or per ROI (subjects, n, n) or (subjects, time, n, n); root attributes `metric`
and `provenance` (JSON, `shared.provenance`).

Brain RDMs are read from
* our HDF5 files (every `/rdms/<roi>`; a 2-D dataset is one subject);
* Net2Brain's .npz: the first array, (subjects, n, n) or (subjects, time, n, n); the
  file name (without suffix) is the ROI;
* MATLAB .mat: the first variable that holds RDMs: a numeric array (subjects, n, n),
  (subjects, time, n, n) or condensed vectors (subjects, n(n-1)/2); or a struct array
  with a field `RDM` (the layout of the MATLAB RSA toolbox). A 1-D struct array is one
  entry per subject; a 2-D one is read as subjects x sessions and the sessions are
  averaged. The file name is the ROI;
* a folder of such files, each giving its ROIs.
Model RDMs are read from our HDF5 files or from a .mat struct array with fields `RDM`
and `name` (one model / layer per entry).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from .errors import InputError
from .storage import atomic_output, open_h5, read_stimuli

RDMS_KIND = "rdms"
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
    path: str | Path, stimuli: Sequence[str], rdms: Mapping[str, np.ndarray], metric: str, attrs: Mapping | None = None
) -> Path:
    """Write an RDM file atomically: `/stimuli`, `/rdms/<name>` in the given order; root
    attributes `kind`, `metric`, `attrs` and `provenance` (`shared.provenance`, built for
    the running command unless `attrs` has one)."""
    from .provenance import provenance_attr

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


def read_rdm_file(path: str | Path) -> RDMSet:
    """Our HDF5 RDM layout."""
    with open_h5(path, RDMS_KIND) as file:
        group = file.get("rdms")
        if not isinstance(group, h5py.Group) or not len(group):
            raise InputError(f"{path} holds no RDMs (no datasets under /rdms); give a file written by `net2brain rdm`")
        stimuli = read_stimuli(file)
        rdms = {}
        for name, dataset in group.items():
            if not isinstance(dataset, h5py.Dataset) or dataset.dtype.kind not in "fiu":
                kind = dataset.dtype if isinstance(dataset, h5py.Dataset) else "a group"
                raise InputError(f"{path}: RDM {name!r} holds {kind}, not numbers; give a file written by `net2brain rdm`")
            rdms[name] = dataset[()]
            shape = rdms[name].shape
            if len(shape) >= 2 and shape[-1] == shape[-2] and shape[-1] != len(stimuli):
                raise InputError(f"{path}: RDM {name!r} is for {shape[-1]} stimuli, but /stimuli lists {len(stimuli)} ids; "
                                 "give a file written by `net2brain rdm`")
        metric, model = file.attrs.get("metric"), file.attrs.get("model")
        return RDMSet(
            rdms, stimuli, str(metric) if metric is not None else None, str(path),
            str(model) if model is not None else None,
        )


def read_model_rdms(path: str | Path) -> RDMSet:
    """Model RDMs (one (n, n) matrix per layer) from our HDF5 file or a .mat struct array."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"model RDM file {path} is a folder; give the file written by `net2brain rdm` (or a .mat file)")
    if not path.is_file():
        raise InputError(f"model RDM file {path} does not exist; give the file written by `net2brain rdm` (or a .mat file)")
    if path.suffix.lower() == ".mat":
        entries = _mat_struct_entries(path)
        if not entries or any(not getattr(e, "name", None) for e in entries):
            raise InputError(f"{path}: expected a struct array with fields RDM and name (one model per entry)")
        rdms = {str(e.name): _square(np.asarray(e.RDM, dtype=float), path) for e in entries}
        result = RDMSet(rdms, None, None, str(path))
    else:
        result = read_rdm_file(path)
    for name, matrix in result.rdms.items():
        if matrix.ndim != 2:
            raise InputError(f"{path}: model RDM {name!r} has shape {matrix.shape}; expected (stimuli, stimuli)")
        validate_rdms(matrix, f"{path}: model RDM {name!r}")
    if not result.rdms:
        raise InputError(f"{path} holds no RDMs; give a file written by `net2brain rdm` (or a .mat struct array)")
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
        raise InputError(f"brain RDMs {path} do not exist; give a file or a folder of files")
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        result = read_rdm_file(path)
        result.rdms = {roi: stack[None] if stack.ndim == 2 else stack for roi, stack in result.rdms.items()}
    elif suffix == ".npz":
        result = RDMSet({path.stem: _npz_first(path)}, None, None, str(path))
    elif suffix == ".mat":
        result = RDMSet({path.stem: _mat_rdms(path)}, None, None, str(path))
    else:
        raise InputError(f"brain RDMs {path}: unsupported file type; use {', '.join(BRAIN_SUFFIXES)} or a folder")
    for roi, stack in result.rdms.items():
        if stack.ndim not in (3, 4):
            raise InputError(
                f"{path}: ROI {roi!r} has shape {stack.shape}; expected (subjects, n, n) or (subjects, time, n, n)"
            )
        validate_rdms(stack, f"{path}: ROI {roi!r}")
    return result


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


def _npz_first(path: Path) -> np.ndarray:
    import zipfile

    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise InputError(f"{path} is not an .npz archive; save the RDMs with numpy.savez")
        with data:
            if not data.files:
                raise InputError(f"{path} holds no arrays; save the RDMs with numpy.savez")
            name, array = data.files[0], data[data.files[0]]
    except ValueError as error:  # pickled object arrays are refused by allow_pickle=False
        raise InputError(f"cannot read {path} without unpickling ({error}); save plain numeric arrays") from None
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise InputError(f"cannot read {path}: not a valid .npz file ({error}); save the RDMs with numpy.savez") from None
    if array.dtype.kind not in "fiu":
        raise InputError(f"{path}: the array {name!r} holds {array.dtype}, not numbers; save numeric RDMs")
    return array.astype(float)


def _load_mat(path: Path) -> dict:
    from scipy.io import loadmat

    try:
        content = loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except (ValueError, TypeError, OSError, NotImplementedError) as error:
        raise InputError(f"cannot read MATLAB file {path}: {error}") from None
    return {k: v for k, v in content.items() if not k.startswith("__")}


def _mat_struct_entries(path: Path) -> list:
    for value in _load_mat(path).values():
        if isinstance(value, np.ndarray) and value.dtype == object:
            entries = [e for e in value.ravel() if hasattr(e, "RDM")]
            if entries:
                return entries
        elif hasattr(value, "RDM"):
            return [value]
    return []


def _mat_rdms(path: Path) -> np.ndarray:
    for value in _load_mat(path).values():
        if isinstance(value, np.ndarray) and value.dtype == object and value.size and hasattr(value.flat[0], "RDM"):
            rdms = np.array([[_square(np.asarray(e.RDM, dtype=float), path) for e in np.atleast_1d(row)]
                             for row in (value if value.ndim == 2 else value[:, None])])
            return rdms.mean(axis=1)  # subjects x sessions: average the sessions
        if hasattr(value, "RDM"):
            return _square(np.asarray(value.RDM, dtype=float), path)[None]
        if isinstance(value, np.ndarray) and value.dtype.kind in "fiu" and value.ndim >= 2:
            array = value.astype(float)
            if array.shape[-1] == array.shape[-2]:
                return array if array.ndim > 2 else array[None]
            if _is_condensed(array.shape[-1]):
                return np.stack([_square(v, path) for v in array.reshape(-1, array.shape[-1])]).reshape(
                    *array.shape[:-1], *_square(array.reshape(-1, array.shape[-1])[0], path).shape
                )
    raise InputError(f"{path} holds no RDMs (a numeric (subjects, n, n) array or a struct array with a field RDM)")


def _is_condensed(length: int) -> bool:
    n = int(round((1 + np.sqrt(1 + 8 * length)) / 2))
    return n * (n - 1) // 2 == length


def _square(matrix: np.ndarray, path: Path) -> np.ndarray:
    """A square RDM from a square matrix or a condensed upper triangle."""
    matrix = np.asarray(matrix, dtype=float)
    if matrix.ndim == 1:
        if not _is_condensed(matrix.size):
            raise InputError(f"{path}: a vector of {matrix.size} values is no condensed RDM")
        from scipy.spatial.distance import squareform

        return squareform(matrix, checks=False)
    return matrix


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
    order = reorder_index(model.stimuli, brain.stimuli, model.source, brain.source)
    return {roi: stack[..., order[:, None], order[None, :]] for roi, stack in brain.rdms.items()}


def reorder_index(wanted: Sequence[str], given: Sequence[str], wanted_source: str, given_source: str) -> np.ndarray:
    """Indices that put the `given` stimulus ids into the `wanted` order; `InputError`
    naming the first ids missing on either side, or an id listed twice."""
    if len(set(given)) != len(given):
        raise InputError(f"{given_source} lists a stimulus id twice")
    missing = [s for s in wanted if s not in set(given)]
    extra = [s for s in given if s not in set(wanted)]
    if missing or extra:
        raise InputError(
            f"stimulus ids differ between {wanted_source} and {given_source}: "
            f"missing from the brain data: {', '.join(missing[:3]) or 'none'}; "
            f"not in the model RDMs: {', '.join(extra[:3]) or 'none'}"
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


def rdms_from_activations(
    path: str | Path,
    layers: Sequence[str] | None,
    metric: str,
    standardize: bool = False,
    precision: str = "single",
    device: str = "cpu",
    memory_bytes: int = 2 * 2**30,
    progress=None,
) -> tuple[RDMSet, dict]:
    """One RDM per layer of an activations file, streamed in feature chunks of about
    `memory_bytes` (peak memory: about two n x n matrices plus one chunk).

    Returns the RDMs (in the file's stimulus order) and the activation file's model
    attributes (model, source, weights).
    """
    from .rdm import check_metric, rdm_from_chunks
    from .storage import ACTIVATIONS_KIND

    check_metric(metric)
    itemsize = 8 if precision == "double" else 4
    with open_h5(path, ACTIVATIONS_KIND) as file:
        group = file.get("layers")
        available = list(group) if isinstance(group, h5py.Group) else []
        if not available:
            raise InputError(f"{path} holds no layers (nothing under /layers); give a file written by `net2brain extract`")
        names = available if layers is None else list(layers)
        for name in names:
            if name not in available:
                from .errors import unknown_name

                raise unknown_name("layer", name, available, hint=f"{path} holds {len(available)} layers")
        stimuli = read_stimuli(file)
        if len(stimuli) < 2:
            raise InputError(f"{path} holds {len(stimuli)} stimuli; an RDM needs at least 2: extract more stimuli")
        streams = {}
        for name in names:  # every layer is checked before any work
            dataset = group[name]
            if not isinstance(dataset, h5py.Dataset) or dataset.dtype.kind not in "fiu":
                kind = dataset.dtype if isinstance(dataset, h5py.Dataset) else "a group"
                raise InputError(f"{path}: layer {name!r} holds {kind}, not numbers; give a file written by `net2brain extract`")
            if dataset.ndim < 1 or dataset.shape[0] != len(stimuli):
                rows = dataset.shape[0] if dataset.ndim else 0
                raise InputError(f"{path}: layer {name!r} has {rows} rows for {len(stimuli)} stimuli (/stimuli); "
                                 "give a complete file written by `net2brain extract`")
            streams[name] = feature_chunks(dataset, memory_bytes, itemsize)
            if metric == "spearman" and streams[name][0] > 1:
                raise InputError(
                    f"layer {name} of {path} does not fit in --memory and the spearman metric cannot be "
                    "streamed (it ranks whole stimulus rows): raise --memory or use another metric"
                )
        rdms = {}
        for index, name in enumerate(names):
            count, chunks = streams[name]
            try:
                rdms[name] = rdm_from_chunks(chunks, (1, len(stimuli)), metric, standardize, precision, device)[0]
            except InputError as error:  # NaN or infinite activations
                raise InputError(f"{path}: layer {name!r}: {error}") from None
            if progress:
                progress(index + 1, len(names))
        model = {key: str(file.attrs[key]) for key in ("model", "source", "weights") if key in file.attrs}
    return RDMSet(rdms, stimuli, metric, str(path)), model
