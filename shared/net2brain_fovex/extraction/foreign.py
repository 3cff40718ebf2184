"""Features saved by the neighbouring tools, converted to our activations file
(`convert_to_file`), which `rdm`, `rsa`, `cka` and `encode` then read as their own.

Layouts (`net2brain_fovex.extraction.registry.FOREIGN_FORMATS`):

* `thingsvision`: THINGSvision's `save_features` writes a module's features to
  `features.npy` or `features.hdf5` (dataset `features`), or in parts `features_01.npy`,
  `features_02.npy`, ... (rows in the parts' order) when memory is low, one row per
  image; `file_names.txt` beside them (or in the folder above) lists the images, one per
  line. A folder holding such files is one layer (named by `layer`, default the folder's
  name); a folder of such folders is one layer per sub-folder.
* `net2brain-images`: Net2Brain's feature extraction writes one `np.savez_compressed`
  file per image, `<image file name>.npz` (`img_01.jpg.npz`), keyed by layer.
* `net2brain-layers`: Net2Brain's `consolidate_per_layer()` writes one `<layer>.npz`
  per layer, keyed by image file name.

A Net2Brain array's leading axis of 1 (its batch of one image) is dropped. Stimulus ids
are the image file names (for THINGSvision's paths, their base names when those are
unique). Arrays are read without pickles (an object array is refused: loading it could
run code).
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError
from ..io.locks import holds_outputs
from ..io.paths import what_is_there
from .registry import FOREIGN_FORMATS
from .stimuli import IMAGE_EXTENSIONS, check_stimulus_file, natural_key

__all__ = ["ForeignFeatures", "read_foreign", "convert_to_file"]

_PART = re.compile(r"features(?:_(\d+))?\.(npy|hdf5|h5)$")
NAMES_FILE = "file_names.txt"


@dataclass
class ForeignFeatures:
    """Features of another tool: stimulus ids, layer shapes (per stimulus) and a reader
    of each layer's rows."""

    format: str
    stimuli: list[str]
    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, np.dtype]
    rows: Callable[[str], Iterator[np.ndarray]]  # layer -> blocks of rows, in stimulus order


def read_foreign(source: str | Path, format: str = "auto", layer: str | None = None) -> ForeignFeatures:
    """What the folder `source` holds, in one of `FOREIGN_FORMATS` (module docstring);
    every file's header is checked, no features are read yet.

    Parameters
    ----------
    source : path
        The tool's output folder.
    format : str, default "auto"
        A name of `FOREIGN_FORMATS`; `auto` tells them apart by their files.
    layer : str, optional
        The layer name of a THINGSvision folder of one module (default: its name).

    Returns
    -------
    ForeignFeatures

    Raises
    ------
    ConfigError
        An unknown `format`.
    InputError
        A missing folder, no layout or two that fit, or files that disagree.
    """
    FOREIGN_FORMATS.check(format)
    source = Path(source)
    if not source.is_dir():
        raise InputError(f"{source} {what_is_there(source)}; give the folder of THINGSvision or Net2Brain features")
    if format == "auto":
        format = _detect(source)
    if format == "thingsvision":
        return _thingsvision(source, layer)
    if layer is not None:
        raise ConfigError("`layer` names the one module of a THINGSvision folder; Net2Brain files name their layers")
    return _net2brain(source, per_image=format == "net2brain-images")


def _detect(source: Path) -> str:
    npz = sorted(source.glob("*.npz"))
    fits = []
    if _thingsvision_modules(source):
        fits.append("thingsvision")
    if npz and all(_image_name(p.name[:-4]) for p in npz):
        fits.append("net2brain-images")
    if npz and all(_image_name(key) for key in _keys(npz[0])):
        fits.append("net2brain-layers")
    if len(fits) != 1:
        found = " and ".join(fits) if fits else "none"
        raise InputError(f"{source}: the layouts that fit are {found} (of thingsvision: features*.npy|hdf5 with "
                         f"{NAMES_FILE}; net2brain-images: <image>.npz per image; net2brain-layers: <layer>.npz keyed "
                         "by image); give `format`")
    return fits[0]


def _image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS


# ------------------------------------------------------------------ THINGSvision


def _thingsvision_modules(source: Path) -> dict[str, list[Path]]:
    """Feature files of each module folder: `source` itself, or its sub-folders."""
    own = _parts(source)
    if own:
        return {source.name: own}
    return {sub.name: _parts(sub) for sub in sorted(source.iterdir(), key=lambda p: natural_key(p.name))
            if sub.is_dir() and _parts(sub)}


def _parts(folder: Path) -> list[Path]:
    found = [(p, _PART.match(p.name)) for p in folder.iterdir() if p.is_file() and _PART.match(p.name)]
    return [p for p, m in sorted(found, key=lambda pair: int(pair[1].group(1) or 0))]


def _thingsvision(source: Path, layer: str | None) -> ForeignFeatures:
    modules = _thingsvision_modules(source)
    if not modules:
        raise InputError(f"{source} holds no THINGSvision features (features.npy, features.hdf5 or "
                         "features_01.npy ...); give the folder save_features wrote")
    if layer is not None:
        if len(modules) > 1:
            raise ConfigError(f"`layer` names the one module of a folder; {source} holds {len(modules)}, named by "
                              "their folders")
        modules = {layer: next(iter(modules.values()))}
    names = None
    shapes, dtypes, files = {}, {}, {}
    for name, parts in modules.items():
        folder = parts[0].parent
        listed = _file_names(folder, source)
        if names is not None and listed != names:
            raise InputError(f"{folder / NAMES_FILE} lists other images than the other modules'; give features of "
                             "the same images")
        names = listed
        headers = [_array_header(p) for p in parts]
        rows = sum(h[0][0] for h in headers)
        if rows != len(names):
            raise InputError(f"module {name!r} ({folder}) has {rows} rows of features for the {len(names)} images of "
                             f"{NAMES_FILE}; give the files of one run")
        if len({(h[0][1:], h[1]) for h in headers}) > 1:
            raise InputError(f"the parts of module {name!r} ({folder}) have different feature shapes")
        shapes[name], dtypes[name], files[name] = headers[0][0][1:], headers[0][1], parts

    def rows(name: str) -> Iterator[np.ndarray]:
        for part in files[name]:
            yield _load_array(part)

    return ForeignFeatures("thingsvision", _stimulus_ids(names, source), shapes, dtypes, rows)


def _file_names(folder: Path, source: Path) -> list[str]:
    for candidate in (folder / NAMES_FILE, folder.parent / NAMES_FILE, source / NAMES_FILE):
        if candidate.is_file():
            try:
                lines = candidate.read_text(encoding="utf-8-sig").splitlines()
            except (OSError, UnicodeDecodeError) as error:
                raise InputError(f"cannot read {candidate}: {getattr(error, 'strerror', None) or error}") from None
            return [line.strip() for line in lines if line.strip()]
    raise InputError(f"{folder} has no {NAMES_FILE} (beside the features or in the folder above); give the file "
                     "THINGSvision wrote, one image per line")


def _stimulus_ids(names: list[str], source: Path) -> list[str]:
    bases = [Path(n).name for n in names]
    ids = bases if len(set(bases)) == len(bases) else names
    seen = set()
    for stimulus in ids:
        if stimulus in seen:
            raise InputError(f"{source}: {NAMES_FILE} lists {stimulus!r} twice; each image once")
        seen.add(stimulus)
    return ids


def _array_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a .npy file or of the `features` dataset of an HDF5 file."""
    if path.suffix == ".npy":
        array = _load_array(path, mmap=True)
        return array.shape, array.dtype
    import h5py

    try:
        with h5py.File(path, "r") as file:
            if "features" not in file:
                raise InputError(f"{path} has no dataset 'features'; give the file THINGSvision wrote")
            return file["features"].shape, file["features"].dtype
    except OSError:
        raise InputError(f"{path} is not a readable HDF5 file") from None


def _load_array(path: Path, mmap: bool = False) -> np.ndarray:
    if path.suffix != ".npy":
        import h5py

        with h5py.File(path, "r") as file:
            return file["features"][()]
    try:
        array = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except ValueError as error:  # numpy says "pickle" when loading, "Python objects" when memory-mapping
        if "pickle" in str(error) or "Python objects" in str(error):
            raise InputError(f"{path} holds Python objects (a pickle), which loading could run as code; save "
                             "the features as a numeric array") from None
        raise InputError(f"{path} is not a readable .npy file ({error})") from None
    except OSError as error:
        raise InputError(f"{path} is not a readable .npy file ({error})") from None
    _check_numeric(array, str(path))
    return array


def _check_numeric(array: np.ndarray, where: str) -> None:
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise InputError(f"{where} holds {array.dtype} values, not numbers; give numeric features")


# ------------------------------------------------------------------ Net2Brain


def _keys(path: Path) -> list[str]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return list(archive.files)
    except (OSError, ValueError) as error:
        raise InputError(f"{path} is not a readable .npz file ({error})") from None


def _npz_array(path: Path, key: str) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as archive:
            array = archive[key]
    except ValueError as error:
        if "pickle" in str(error):
            raise InputError(f"{path}: {key!r} holds Python objects (a pickle), which loading could run as code; "
                             "save the features as numeric arrays") from None
        raise InputError(f"{path} is not a readable .npz file ({error})") from None
    except OSError as error:
        raise InputError(f"{path} is not a readable .npz file ({error})") from None
    _check_numeric(array, f"{path}: {key!r}")
    return array


def _net2brain(source: Path, per_image: bool) -> ForeignFeatures:
    files = sorted(source.glob("*.npz"), key=lambda p: natural_key(p.name))
    if not files:
        raise InputError(f"{source} holds no .npz files; give the folder of Net2Brain's feature files")
    for path in files:  # their names are stimulus ids or layer names: UTF-8, and regular files
        check_stimulus_file(path, f"Net2Brain feature folder {source}")
    keys = {path: _keys(path) for path in files}
    first = keys[files[0]]
    for path in files[1:]:
        if keys[path] != first:
            what = "layers" if per_image else "images"
            raise InputError(f"{path} holds other {what} than {files[0].name} ({', '.join(keys[path][:3])} ... against "
                             f"{', '.join(first[:3])} ...); give the files of one run")
    if per_image:
        stimuli, layers = [p.name[:-4] for p in files], first
        where = {layer: [(path, layer) for path in files] for layer in layers}
    else:
        stimuli, layers = first, [p.name[:-4] for p in files]
        where = {path.name[:-4]: [(path, s) for s in stimuli] for path in files}
    shapes, dtypes = {}, {}
    for layer in layers:
        sample = [_npz_array(path, key) for path, key in where[layer]]  # headers and values of each image
        shape = {a.shape for a in sample}
        if len(shape) > 1:
            odd = next(i for i, a in enumerate(sample) if a.shape != sample[0].shape)
            raise InputError(f"layer {layer!r}: stimulus {stimuli[odd]!r} has shape {sample[odd].shape}, "
                             f"{stimuli[0]!r} {sample[0].shape}; give features of one model")
        shapes[layer] = _squeezed(sample[0].shape)
        # the type that holds every image's values: integers of one image and floats of another are floats
        dtypes[layer] = np.result_type(*(a.dtype for a in sample))
        del sample

    def rows(name: str) -> Iterator[np.ndarray]:
        for path, key in where[name]:
            yield _npz_array(path, key).reshape(1, *shapes[name])

    return ForeignFeatures("net2brain-images" if per_image else "net2brain-layers", stimuli, shapes, dtypes, rows)


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    """An image's features without Net2Brain's batch axis of one."""
    return shape[1:] if len(shape) > 1 and shape[0] == 1 else shape


# ------------------------------------------------------------------ our file


@holds_outputs
def convert_to_file(source: str | Path, out: str | Path, *, format: str = "auto", layer: str | None = None,
                    overwrite: bool = False, config: dict | None = None) -> tuple[Path, ForeignFeatures]:
    """Write the features of `source` (`read_foreign`) as our activations file `out`,
    layer by layer (atomically: nothing under `out` unless complete).

    Parameters
    ----------
    source : path
    out : path
        The activations file (HDF5, `kind` activations; attributes `source_format` and
        `source`).
    format, layer
        As `read_foreign`.
    overwrite : bool
    config : dict, optional
        The resolved options, recorded beside the file.

    Returns
    -------
    (Path, ForeignFeatures)

    Raises
    ------
    ConfigError, InputError
        As `read_foreign`; also a layer or stimulus name that cannot be a dataset name.
    OutputError
        `out` exists without `overwrite`, or cannot be written.
    """
    import h5py

    from ..io.atomic import atomic_output
    from ..io.config import options_output, record_options
    from ..io.hdf5 import ACTIVATIONS_KIND, check_name
    from ..io.outputs import Output, check_outputs
    from ..io.provenance import provenance_attr

    found = read_foreign(source, format, layer)
    for name in found.shapes:
        check_name(name, "layer")
    check_outputs([Output("out", Path(out), "hdf5"), *options_output(out, config)], {"source": [source]},
                  overwrite=overwrite)
    with atomic_output(out) as tmp, h5py.File(tmp, "w") as file:
        file.attrs.update({"kind": ACTIVATIONS_KIND, "source_format": found.format, "source": str(Path(source)),
                           "provenance": provenance_attr()})
        file.create_dataset("stimuli", data=np.array(found.stimuli, dtype=h5py.string_dtype()))
        group = file.create_group("layers", track_order=True)
        for name, shape in found.shapes.items():
            dataset = group.create_dataset(name, shape=(len(found.stimuli), *shape), dtype=found.dtypes[name])
            row, odd = 0, None
            for block in found.rows(name):
                dataset[row:row + len(block)] = block
                if odd is None and not np.isfinite(block).all():
                    odd = row + int(np.flatnonzero(~np.isfinite(block).reshape(len(block), -1).all(axis=1))[0])
                row += len(block)
            if odd is not None:  # copied as they are: a converter keeps the values; the comparisons refuse them
                warnings.warn(f"layer {name!r} holds NaN or infinite values (first in stimulus "
                              f"{found.stimuli[odd]!r}), copied as they are; rdm, rsa and encode refuse such a layer",
                              RuntimeWarning, stacklevel=2)
    record_options(out, config)
    return Path(out), found
