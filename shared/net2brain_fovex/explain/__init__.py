"""Explanation methods, one file each on a common base (`base`), their registry, and
`explain_to_file`."""
from .._exports import lazy_exports

_EXPORTS = {
    "METHODS": "registry",
    "Method": "registry",
    "FovExParameters": "registry",
    "CAMParameters": "registry",
    "RISEParameters": "registry",
    "CentreParameters": "registry",
    "Context": "base",
    "Attribution": "base",
    "fovex": "methods.fovex",
    "gradcam": "methods.gradcam",
    "gradcam_plus_plus": "methods.gradcam_plus_plus",
    "random_cam": "methods.random_cam",
    "rise": "methods.rise",
    "centre": "methods.centre",
    "target_layer": "methods.cam",
    "explain_batch": "attributions",
    "explain_to_file": "attributions",
    "read_attributions": "attributions",
    "context_for": "attributions",
    "load_images": "attributions",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
