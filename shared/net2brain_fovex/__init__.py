"""net2brain_fovex: the compute core of the `net2brain` and `fovex` command-line tools.

Subpackages, each named for what it holds: `models` (sources, loading, weights, layers,
preprocessing), `extraction` (stimuli, activations, reduction), `brain` (RDMs, RSA,
searchlight, brain recordings, NIfTI), `explain` (one file per attribution method),
`evaluate` (metrics, gaze, ground truth), `io` (atomic outputs, row files, HDF5
layouts, shards, provenance, config files), `demo` (data with planted truth) and
`figures`. The entry point of every command is here too (`extract_to_file`,
`rdms_to_file`, ...). Only torch, numpy, h5py, nibabel and their kin are imported by
the core: never typer or rich, so everything can be used without the command line.
"""
from importlib.metadata import PackageNotFoundError, version

from ._exports import lazy_exports

try:
    __version__ = version("net2brain-fovex")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

_EXPORTS = {
    "load_model": "models.loading",
    "extract_to_file": "extraction.activations",
    "rdms_to_file": "brain.rdm_files",
    "rsa_to_file": "brain.rsa",
    "searchlight_to_file": "brain.searchlight_files",
    "explain_to_file": "explain.attributions",
    "evaluate_to_file": "evaluate.evaluation",
    "merge_shards": "io.shards",
    "convert_to_file": "extraction.foreign",
    "report_to_file": "report.page",
    "describe": "io.file_info",
}
__all__ = ["__version__", *_EXPORTS]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
