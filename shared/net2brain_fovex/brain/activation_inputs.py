"""What the brain commands that read an activations file beside brain data share (`cka`,
`encode`): the chosen layers checked from the file's headers, the brain side's stimuli
put in the activations' order, and its stimulus count checked."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError

__all__ = ["check_activation_layers", "order_to_activations", "check_stimulus_count"]


def check_activation_layers(path: Path, layers) -> tuple[list[str], list[str], int]:
    """The chosen layers, the stimulus ids and the largest layer's size (values) of an
    activations file, from its headers; `InputError` for layers that are not numbers or
    not one row per stimulus."""
    import h5py

    from ..io.hdf5 import ACTIVATIONS_KIND, open_h5, read_stimuli
    from .rdm_files import _chosen_layers

    with open_h5(path, ACTIVATIONS_KIND) as file:
        names = _chosen_layers(file, path, layers)
        stimuli = read_stimuli(file)
        largest = 0
        for name in names:
            dataset = file["layers"][name]
            if not isinstance(dataset, h5py.Dataset) or dataset.dtype.kind not in "fiu":
                kind = dataset.dtype if isinstance(dataset, h5py.Dataset) else "a group"
                raise InputError(f"{path}: layer {name!r} holds {kind}, not numbers; give a file written by "
                                 "`extract_to_file`")
            if dataset.ndim < 1 or dataset.shape[0] != len(stimuli):
                rows = dataset.shape[0] if dataset.ndim else 0
                raise InputError(f"{path}: layer {name!r} has {rows} rows for {len(stimuli)} stimuli (/stimuli); "
                                 "give a complete file written by `extract_to_file`")
            largest = max(largest, int(dataset.size))
    return names, stimuli, largest


def order_to_activations(wanted: list[str], given: list[str], wanted_source: str, given_source: str, given_name: str) -> np.ndarray:
    """The index putting the brain side's stimuli `given` in the order of the activations'
    `wanted` (`reorder_index`), its messages naming both sides."""
    from .rdm_files import reorder_index

    return reorder_index(wanted, given, wanted_source=wanted_source, given_source=given_source,
                         wanted_name="the `activations` file", given_name=given_name)


def check_stimulus_count(count: int, n: int, brain_ids, stimuli, activations, what: str) -> None:
    """Refuse brain data with another number of stimuli (`count`) than the activations
    (`n`), or than the `stimuli` list names (`brain_ids`)."""
    if brain_ids is not None and len(brain_ids) != count:
        raise ConfigError(f"`stimuli` {stimuli} lists {len(brain_ids)} stimuli, {what} have {count}; give one "
                          "volume (or response row) per stimulus, in the `stimuli` order")
    if count != n:
        raise InputError(f"{what} holds {count} stimuli (volumes or rows), {activations} {n}; give the responses "
                         "to the stimuli of the activations, one per stimulus")
