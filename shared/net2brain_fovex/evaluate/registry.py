"""The evaluation metrics (`METRICS`): name, which direction is better, the ground truth a
metric needs, and its meaning.

Light (no torch): the command line reads this table at start-up.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..registry import Registry

__all__ = ["Metric", "METRICS", "CURVES", "BOXES", "FIXATIONS"]

BOXES, FIXATIONS = "boxes", "fixations"  # the kinds of ground truth


@dataclass(frozen=True)
class Metric:
    """A metric's name, which direction is better, the ground truth it needs, its meaning (`summary`)."""

    name: str
    better: str
    needs: str | None
    summary: str


METRICS: Registry[Metric] = Registry("metric", [
    Metric("avg_drop", "lower", None, "% drop of the target's probability when the image is multiplied by its map"),
    Metric("avg_increase", "higher", None, "100 where the image multiplied by its map scores higher than the image"),
    Metric("deletion", "lower", None, "area under the probability as the most salient pixels are deleted"),
    Metric("insertion", "higher", None, "area under the probability as the most salient pixels are inserted"),
    Metric("ebpg", "higher", BOXES, "% of the map's energy inside the object's boxes"),
    Metric("pointing_game", "higher", BOXES, "100 where the map's maximum lies inside a box"),
    Metric("nss", "higher", FIXATIONS, "mean z-scored map value at the human fixations"),
    Metric("auc_judd", "higher", FIXATIONS, "area under the ROC of fixated against all pixels"),
    Metric("cc", "higher", FIXATIONS, "linear correlation with the fixation density"),
    Metric("kld", "lower", FIXATIONS, "KL divergence of the map from the fixation density"),
    Metric("sim", "higher", FIXATIONS, "histogram intersection with the fixation density"),
    Metric("sauc", "higher", FIXATIONS, "shuffled AUC: fixated pixels against other images' fixations"),
    Metric("info_gain", "higher", FIXATIONS, "bits per fixation gained over the centre bias"),
    Metric("sparseness", "higher", None, "Gini index of the map (1: everything in one pixel)"),
])
CURVES = ("deletion", "insertion")  # the metrics that come with a curve
