"""Extraction: stimuli, layer activations streamed to HDF5, and their random projection."""
from .._exports import lazy_exports

_EXPORTS = {
    "Stimulus": "stimuli",
    "discover_stimuli": "stimuli",
    "load_image": "stimuli",
    "pixel_values": "stimuli",
    "load_video_frames": "stimuli",
    "ExtractionPlan": "activations",
    "Extraction": "activations",
    "plan_extraction": "activations",
    "iter_activations": "activations",
    "extract_to_file": "activations",
    "read_activations": "activations",
    "projection_matrix": "reduction",
    "TOKENS": "registry",
    "DTYPES": "registry",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
