"""The options of the brain analyses, each a frozen dataclass validated once, when it is
made, at the top of its entry point (`rdms_to_file`, `rsa_to_file`,
`searchlight_to_file`, `cka_to_file`), and passed down as one object.

Their defaults are the entry points' defaults and the command line's. Light (no
torch): the command line reads them at start-up.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..checks import check_range
from .registry import COMPARISONS, CORRECTIONS, ESTIMATORS, FITS, PRECISIONS, RDM_METRICS, SEARCHLIGHT_METRICS

__all__ = ["RDMParameters", "RSAParameters", "SearchlightParameters", "CKAParameters"]


@dataclass(frozen=True)
class RDMParameters:
    """How RDMs are computed.

    Attributes
    ----------
    metric : str
        A name of `RDM_METRICS`.
    standardize : bool
        z-score every feature across stimuli first.
    precision : str
        A name of `PRECISIONS`.
    memory : int
        Megabytes of features per streamed chunk.
    """

    metric: str = RDM_METRICS.default
    standardize: bool = False
    precision: str = PRECISIONS.default
    memory: int = 2048

    def __post_init__(self) -> None:
        RDM_METRICS.check(self.metric)
        PRECISIONS.check(self.precision)
        check_range("memory", self.memory)


@dataclass(frozen=True)
class RSAParameters:
    """How model RDMs are compared with brain RDMs (`rsa_to_file`).

    Attributes
    ----------
    compare : str
        A name of `COMPARISONS`.
    squared : bool
        Square each subject's r before averaging (Net2Brain's default).
    correction : str
        A name of `CORRECTIONS`, across the layers of each ROI.
    weighted : bool
        Also fit a weighted sum of all layers, cross-validated over subjects.
    fit : str
        A name of `FITS`, for weighted RSA.
    folds : int
        Folds over subjects for weighted RSA (at least 2).
    bootstrap : int
        Bootstrap samples over stimuli for 95% intervals (0: none).
    seed : int
        Seed of the folds and the bootstrap.
    """

    compare: str = COMPARISONS.default
    squared: bool = True
    correction: str = CORRECTIONS.default
    weighted: bool = False
    fit: str = FITS.default
    folds: int = 5
    bootstrap: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        COMPARISONS.check(self.compare)
        CORRECTIONS.check(self.correction)
        FITS.check(self.fit)
        check_range("folds", self.folds)
        check_range("seed", self.seed)
        check_range("bootstrap", self.bootstrap)

    @property
    def measure(self) -> str:
        """What a score is: `spearman r^2`, `pearson r`."""
        return f"{self.compare} r^2" if self.squared else f"{self.compare} r"


@dataclass(frozen=True)
class SearchlightParameters:
    """How a searchlight runs and how its maps are summarised (`searchlight_to_file`).

    Attributes
    ----------
    radius : float or None
        Sphere radius in millimetres (voxels at distance <= radius); None for a run on
        precomputed searchlight RDMs.
    metric : str
        A name of `SEARCHLIGHT_METRICS`.
    compare : str
        A name of `COMPARISONS`.
    min_voxels : int
        Centres with fewer voxels in their sphere get NaN.
    batch_size : int
        Centres per batch. 128 was fastest on a 2-core CPU (512 was 10 % slower over a
        whole brain: its arrays of 10-25 MB are returned to the system after every batch
        and faulted in again); a GPU may want more.
    precision : str
        A name of `PRECISIONS`.
    threshold : float
        Score and mean maps: voxels above it are counted in the summary.
    alpha : float
        t maps: voxels with t > 0 and uncorrected p below it are counted.
    fdr : float, optional
        Also write a mask of the voxels significant at this false discovery rate.
    """

    radius: float | None = None
    metric: str = SEARCHLIGHT_METRICS.default
    compare: str = COMPARISONS.default
    min_voxels: int = 10
    batch_size: int = 128
    precision: str = PRECISIONS.default
    threshold: float = 0.1
    alpha: float = 0.001
    fdr: float | None = None

    def __post_init__(self) -> None:
        if self.radius is not None:
            check_range("radius", self.radius)
        SEARCHLIGHT_METRICS.check(self.metric)
        COMPARISONS.check(self.compare)
        check_range("min_voxels", self.min_voxels)
        check_range("batch_size", self.batch_size)
        PRECISIONS.check(self.precision)
        if self.fdr is not None:
            check_range("fdr", self.fdr)
        check_range("threshold", self.threshold)
        check_range("alpha", self.alpha)


@dataclass(frozen=True)
class CKAParameters:
    """How linear CKA is computed and tested (`cka_to_file`).

    Attributes
    ----------
    estimator : str
        A name of `ESTIMATORS`: the HSIC estimator.
    permutations : int
        Permutations of the stimuli for p-values (0: none).
    seed : int
        Seed of the permutations.
    memory : int
        Megabytes of features per streamed chunk.
    """

    estimator: str = ESTIMATORS.default
    permutations: int = 0
    seed: int = 0
    memory: int = 2048

    def __post_init__(self) -> None:
        ESTIMATORS.check(self.estimator)
        check_range("permutations", self.permutations)
        check_range("seed", self.seed)
        check_range("memory", self.memory)
