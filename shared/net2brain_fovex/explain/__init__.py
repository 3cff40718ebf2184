"""Explanation methods, one file each on a common base (`base`), their registry, and
`explain_to_file`."""
from .._exports import lazy_exports

_EXPORTS = {
    "METHODS": "registry",
    "Method": "registry",
    "FovExParameters": "registry",
    "CAMParameters": "registry",
    "CAMBatchParameters": "registry",
    "FullGradParameters": "registry",
    "RISEParameters": "registry",
    "CentreParameters": "registry",
    "PerturbationParameters": "registry",
    "GAEParameters": "registry",
    "RolloutParameters": "registry",
    "Context": "base",
    "Attribution": "base",
    "fovex": "methods.fovex",
    "gradcam": "methods.gradcam",
    "gradcam_plus_plus": "methods.gradcam_plus_plus",
    "random_cam": "methods.random_cam",
    "rise": "methods.rise",
    "centre": "methods.centre",
    "perturbation": "methods.perturbation",
    "gae": "methods.gae",
    "rollout": "methods.rollout",
    "target_layer": "methods.cam",
    "library_cam": "methods.library_cam",
    "explain_batch": "attributions",
    "explain_to_file": "attributions",
    "read_attributions": "attributions",
    "context_for": "attributions",
    "load_images": "attributions",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
