"""What brain analyses let users choose by name: RDM metrics, RDM comparisons, p-value
corrections, weighted-RSA fits, arithmetic precisions, RDM file formats, HSIC estimators (CKA) and encoding models.

Light (no torch): the command line reads these tables at start-up.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..registry import Choice, Registry

__all__ = ["RDMMetric", "RDM_METRICS", "SEARCHLIGHT_METRICS", "COMPARISONS", "CORRECTIONS", "FITS", "PRECISIONS",
           "RDM_FORMATS", "ESTIMATORS", "ENCODING_MODELS", "INNER_CVS"]


@dataclass(frozen=True)
class RDMMetric:
    """A dissimilarity of two stimulus patterns x_i, x_j.

    Attributes
    ----------
    name : str
    summary : str
        Its formula.
    streamable : bool
        Computable from chunks of features (a layer larger than memory).
    searchlight : bool
        Offered by the searchlight.
    """

    name: str
    summary: str
    streamable: bool = True
    searchlight: bool = True


RDM_METRICS: Registry[RDMMetric] = Registry("metric", [
    RDMMetric("correlation", "1 - Pearson r of the two patterns"),
    RDMMetric("euclidean", "sqrt(sum_k (x_ik - x_jk)^2)"),
    RDMMetric("sqeuclidean", "sum_k (x_ik - x_jk)^2"),
    RDMMetric("cosine", "1 - x_i.x_j / (|x_i||x_j|)"),
    RDMMetric("manhattan", "sum_k |x_ik - x_jk|", searchlight=False),
    RDMMetric("spearman", "1 - Pearson r of the patterns' ranks (ties averaged; not streamable)",
              streamable=False, searchlight=False),
], hint="the RDM metrics are listed in `RDM_METRICS`")

SEARCHLIGHT_METRICS: Registry[RDMMetric] = Registry(
    "searchlight metric", [m for m in RDM_METRICS.values() if m.searchlight])

COMPARISONS: Registry[Choice] = Registry("comparison", [
    Choice("spearman", "Spearman's rho (average ranks for ties)"),
    Choice("pearson", "Pearson's r"),
    Choice("kendall", "Kendall's tau-a (O(pairs^2))"),
])

CORRECTIONS: Registry[Choice] = Registry("correction", [
    Choice("bonferroni", "p times the number of layers"),
    Choice("fdr", "Benjamini-Hochberg false discovery rate"),
    Choice("none", "uncorrected"),
])

FITS: Registry[Choice] = Registry("fit", [
    Choice("nnls", "non-negative least squares (weights and intercept >= 0)"),
    Choice("lstsq", "ordinary least squares"),
])

PRECISIONS: Registry[Choice] = Registry("precision", [
    Choice("single", "float32 arithmetic"),
    Choice("double", "float64 arithmetic"),
])

RDM_FORMATS: Registry[Choice] = Registry("RDM file format", [
    Choice("net2brain", "our HDF5 layout (/stimuli, /rdms/<name>)"),
    Choice("rsatoolbox", "rsatoolbox's HDF5 layout (RDMs.save; read by rsatoolbox.rdm.load_rdm)"),
])

ESTIMATORS: Registry[Choice] = Registry("estimator", [
    Choice("debiased", "the unbiased HSIC estimator of Song et al. 2012 (needs 4 stimuli)"),
    Choice("biased", "HSIC = tr(K H L H) / (n-1)^2, H the centring matrix (Kornblith et al. 2019)"),
])

ENCODING_MODELS: Registry[Choice] = Registry("encoding model", [
    Choice("ridge", "ridge regression, one alpha per target chosen by an inner cross-validation"),
    Choice("linear", "ordinary least squares (the minimum-norm solution)"),
])

INNER_CVS: Registry[Choice] = Registry("inner cross-validation", [
    Choice("gcv", "generalised cross-validation in closed form (Golub, Heath & Wahba 1979): the rotation-invariant "
                  "leave-one-out, no data product per alpha"),
    Choice("loo", "efficient leave-one-out in the eigenbasis of the training Gram matrix (scikit-learn's RidgeCV)"),
    Choice("kfold", "himalaya's RidgeCV over `inner_folds` shuffled folds"),
])
