"""What one of our files holds and how it was made (`describe`, shown by `info`).

* HDF5 (activations, RDMs, attributions, evaluation curves, shards, merged files): the
  kind, the provenance (`net2brain_fovex.io.provenance`; a merged file also lists its shards'), the
  other root attributes (JSON strings decoded) and every dataset with its shape and
  dtype; an interrupted `.partial` file says how many rows it holds.
* NIfTI: shape, voxel size, affine, dtype, the range of the finite values and the
  number of NaN voxels, plus the sidecar's provenance.
* CSV: the columns and the number of rows, plus the sidecar's provenance.
* PNG: size and colour mode, plus the sidecar's provenance.
* YAML (a `<stem>.config.yaml` sidecar): the options and the provenance.

The sidecar of a CSV, NIfTI or PNG file is the first of `<stem>.config.yaml` (for
`metrics.summary.csv` also `metrics.config.yaml`), `searchlight.config.yaml` and
`demo.config.yaml` in the file's folder. A missing, unreadable or unknown file is an
`InputError`.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from ..errors import InputError
from .paths import what_is_there
from .provenance import ATTRIBUTE, SHARDS_ATTRIBUTE, parse_attr, plain

__all__ = ["FORMATS", "describe", "sidecar_for"]

FORMATS = "HDF5 (.h5), NIfTI (.nii, .nii.gz), CSV, PNG or a .config.yaml sidecar"
_HDF5_SUFFIXES = (".h5", ".hdf5", ".partial")
_STIMULI_SHOWN = 5


def describe(path: str | Path) -> dict[str, Any]:
    """A JSON-ready description of one of our files (see the module docstring).

    Raises
    ------
    InputError
        A missing or unreadable file, a damaged one, or one of an unknown format.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path} is a folder; give one of its files ({FORMATS})")
    if not path.is_file():
        raise InputError(f"{path} {what_is_there(path)}; give one of our files ({FORMATS})")
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror or error}") from None
    name = path.name.lower()
    import h5py

    if name.endswith(_HDF5_SUFFIXES) or h5py.is_hdf5(path):
        return _describe_hdf5(path)
    if name.endswith((".nii", ".nii.gz")):
        return _describe_nifti(path)
    if name.endswith((".csv", ".tsv")):
        return _describe_csv(path)
    if name.endswith((".yaml", ".yml")):
        return _describe_yaml(path)
    if name.endswith(".png"):
        return _describe_png(path)
    raise InputError(f"{path}: unknown format; info reads {FORMATS}")


# ------------------------------------------------------------------ formats


def _describe_hdf5(path: Path) -> dict[str, Any]:
    import h5py
    import numpy as np

    from .hdf5 import open_error  # h5py: not at start-up

    try:
        file = h5py.File(path, "r")
    except OSError as error:
        raise open_error(path, error, "give one of our files") from None
    with file:
        attrs = {key: _attribute(value) for key, value in file.attrs.items()}
        datasets: list[dict] = []

        def visit(name: str, node) -> None:
            if isinstance(node, h5py.Dataset):
                string = h5py.check_string_dtype(node.dtype) is not None
                datasets.append({"path": f"/{name}", "shape": list(node.shape), "dtype": "string" if string else str(node.dtype)})

        try:
            file.visititems(visit)
            stimuli = None
            if "stimuli" in file and isinstance(file["stimuli"], h5py.Dataset):
                ids = file["stimuli"][:_STIMULI_SHOWN]
                stimuli = {"count": int(file["stimuli"].shape[0]) if file["stimuli"].shape else 1,
                           "first": [s.decode() if isinstance(s, bytes) else str(s) for s in np.atleast_1d(ids)]}
            rows_done = int(file["_rows_done"][()]) if "_rows_done" in file else None
        except (OSError, KeyError, ValueError, RuntimeError) as error:
            raise InputError(f"{path} is a damaged HDF5 file ({error})") from None
    kind = attrs.pop("kind", None)
    description: dict[str, Any] = {
        "file": str(path), "format": "hdf5", "kind": kind if kind is not None else "unknown (not written by net2brain or fovex)",
        "provenance": attrs.pop(ATTRIBUTE, None),
    }
    if SHARDS_ATTRIBUTE in attrs:
        description["shard_provenance"] = attrs.pop(SHARDS_ATTRIBUTE)
    description["attributes"] = attrs
    if stimuli is not None:
        description["stimuli"] = stimuli
    if rows_done is not None:
        description["incomplete"] = {"rows_done": rows_done, "rows": stimuli["count"] if stimuli else None}
    description["datasets"] = [d for d in datasets if d["path"] != "/_rows_done"]
    return description


def _describe_nifti(path: Path) -> dict[str, Any]:
    import nibabel as nib
    import numpy as np

    try:
        image = nib.load(str(path))
        proxy = image.dataobj
        shape = tuple(int(n) for n in image.shape)
        low, high, finite, total = math.inf, -math.inf, 0, 0
        volumes = (proxy[..., i] for i in range(shape[3])) if len(shape) == 4 else [proxy]
        for volume in volumes:  # one volume at a time: a 4D series need not fit in memory
            data = np.asarray(volume)
            good = data[np.isfinite(data)] if data.dtype.kind == "f" else data.ravel()
            total += data.size
            finite += good.size
            if good.size:
                low, high = min(low, float(good.min())), max(high, float(good.max()))
    except Exception as error:  # noqa: BLE001 - nibabel raises many kinds for a damaged file
        raise InputError(f"{path} is not a readable NIfTI file ({type(error).__name__}: {error})") from None
    zooms = [float(z) for z in image.header.get_zooms()]
    description = {
        "file": str(path), "format": "nifti", "kind": "volume",
        "shape": list(shape), "voxel_size": zooms[:3], "affine": np.asarray(image.affine, dtype=float).tolist(),
        "dtype": str(image.get_data_dtype()),
        "value_range": [low, high] if finite else None,
        "finite_voxels": finite, "non_finite_voxels": total - finite,
    }
    return {**description, **_sidecar(path)}


def _describe_csv(path: Path) -> dict[str, Any]:
    delimiter = "\t" if path.name.lower().endswith(".tsv") else ","
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:  # -sig: Excel writes a byte-order mark
            reader = csv.reader(handle, delimiter=delimiter)
            columns = next(reader, None)
            rows = sum(1 for row in reader if row)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"{path} is not a readable CSV file ({error})") from None
    if columns is None:
        raise InputError(f"{path} is empty; a CSV file starts with a header row")
    return {"file": str(path), "format": "csv", "kind": "table", "columns": columns, "rows": rows, **_sidecar(path)}


def _describe_yaml(path: Path) -> dict[str, Any]:
    from ..errors import ConfigError
    from .config import read_resolved_config

    try:
        options, provenance = read_resolved_config(path)
    except ConfigError as error:
        raise InputError(str(error)) from None
    kind = "resolved config" if provenance is not None else "config"
    if provenance is not None:
        provenance = {k: v for k, v in provenance.items() if k != "config"}  # the options are the config
    return {"file": str(path), "format": "yaml", "kind": kind, "options": plain(options), "provenance": provenance}


def _describe_png(path: Path) -> dict[str, Any]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            size, mode = list(image.size), image.mode
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise InputError(f"{path} is not a readable PNG file ({error})") from None
    return {"file": str(path), "format": "png", "kind": "image", "size": size, "mode": mode, **_sidecar(path)}


def sidecar_for(path: Path) -> Path | None:
    """The resolved-config sidecar that describes `path`, if there is one."""
    name = path.name
    for double in (".nii.gz",):
        if name.lower().endswith(double):
            name = name[: -len(double)]
            break
    else:
        name = name.rpartition(".")[0] or name
    parts = name.split(".")
    candidates = [".".join(parts[:count]) + ".config.yaml" for count in range(len(parts), 0, -1)]
    candidates += ["searchlight.config.yaml", "demo.config.yaml"]
    for candidate in candidates:
        found = path.with_name(candidate)
        if found != path and found.is_file():
            return found
    return None


def _sidecar(path: Path) -> dict[str, Any]:
    from ..errors import ConfigError
    from .config import read_resolved_config

    found = sidecar_for(path)
    provenance = None
    if found is not None:
        try:
            options, provenance = read_resolved_config(found)
            if provenance is None:
                provenance = {"config": options}
        except ConfigError:
            provenance = None
    return {"sidecar": str(found) if found else None, "provenance": provenance}


def _attribute(value: Any) -> Any:
    """An HDF5 attribute as a plain value; JSON text decoded."""
    import numpy as np

    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str) and value[:1] in ("{", "["):
        value = parse_attr(value)
    return plain(value)
