"""Evaluating explanations: faithfulness, localisation, complexity and gaze metrics, ground
truth, and `evaluate_to_file`."""
from .._exports import lazy_exports

_EXPORTS = {
    "METRICS": "registry",
    "deletion_insertion": "faithfulness",
    "confidence_change": "faithfulness",
    "pointing_game": "localisation",
    "energy_in_box": "localisation",
    "points_in_boxes": "localisation",
    "box_regions": "localisation",
    "sparseness": "complexity",
    "fixation_counts": "gaze",
    "fixation_density": "gaze",
    "nss": "gaze",
    "auc_judd": "gaze",
    "cc": "gaze",
    "kld": "gaze",
    "sim": "gaze",
    "sauc": "gaze",
    "info_gain": "gaze",
    "shuffle_partners": "gaze",
    "read_boxes": "ground_truth",
    "read_fixations": "ground_truth",
    "Truth": "evaluation",
    "evaluate_maps": "evaluation",
    "evaluate_to_file": "evaluation",
    "read_curves": "evaluation",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
