"""The demos' data with planted truth: shape stimuli and simulated brain data, the
localisation task, and the two demo runs."""
from .._exports import lazy_exports

_EXPORTS = {
    "shape_stimuli": "synthetic",
    "write_shape_stimuli": "synthetic",
    "simulate_brain_rdms": "synthetic",
    "simulate_volumes": "synthetic",
    "make_localisation_set": "localisation_task",
    "synthetic_fixations": "localisation_task",
    "train_tiny_cnn": "localisation_task",
    "tiny_cnn": "localisation_task",
    "run_net2brain_demo": "net2brain_demo",
    "run_fovex_demo": "fovex_demo",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
