"""Figures: RDM pictures (heat map and MDS), the RSA figure, CKA heat maps, encoding layer profiles and variance
partitions, attribution overlays and deletion / insertion curves."""
from .._exports import lazy_exports

_EXPORTS = {
    "rdm_figure": "rdm",
    "rsa_figure": "rsa",
    "cka_heatmap": "cka",
    "encoding_profile_figure": "encoding",
    "partition_figure": "encoding",
    "overlay": "overlays",
    "write_overlays": "overlays",
    "curves_figure": "curves",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
