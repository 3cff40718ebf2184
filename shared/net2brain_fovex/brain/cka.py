"""Linear centred kernel alignment (Kornblith et al. 2019) between the layers of two
activations files, or between layers and brain responses per ROI and subject.

For features x (n stimuli, p) and y (n, q), with the linear Gram matrices K = x x^T and
L = y y^T (n x n, whatever p and q are: memory n^2 per matrix) and H = I - 11^T / n,

    CKA(x, y) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))

with one of two estimators of HSIC (`ESTIMATORS`):

* `debiased` (default): the unbiased estimator HSIC_1 of Song et al. 2012 (as in
  Kornblith's and Nguyen et al.'s code), with K~, L~ the Gram matrices with their
  diagonals set to 0 and 1 the vector of ones:

      HSIC_1 = [tr(K~ L~) + (1^T K~ 1)(1^T L~ 1) / ((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1] / (n(n-3))

  (needs n >= 4 stimuli);
* `biased`: HSIC_0 = tr(K H L H) / (n-1)^2.

Both are invariant to a constant added to every stimulus's features, so the Gram
matrices are double-centred (H K H) first, for accuracy. Everything is computed in
float64 with torch on the chosen device (float32 on Apple's MPS, which has no float64).

The permutation test permutes the stimuli (rows) of the second side, y -> P y (L ->
P L P^T; HSIC(K, K) and HSIC(L, L) do not change), `permutations` times, seeded by
`seed` afresh for every pair (a pair's p-value does not depend on what else was
selected): p = (1 + #{permuted CKA >= observed}) / (1 + permutations).
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError
from ..io.config import options_output, record_options
from ..io.locks import holds_outputs
from ..io.outputs import Output, check_outputs
from ..io.tables import write_csv
from ..selection import ALL
from .activation_inputs import check_activation_layers, check_stimulus_count, order_to_activations
from .parameters import CKAParameters

__all__ = ["linear_cka", "gram_matrix", "CKASide", "prepare_side", "cka_of", "permutation_p", "cka_to_file",
           "CKAResult", "MIN_STIMULI"]

log = logging.getLogger(__name__)

MIN_STIMULI = {"debiased": 4, "biased": 2}
_PERMUTATION_BYTES = 2**27  # the permuted Gram matrices of one batch


def _dtype(device):
    import torch

    return torch.float32 if torch.device(device).type == "mps" else torch.float64


def gram_matrix(x, *, device="cpu"):
    """The double-centred linear Gram matrix H x x^T H (n, n) of features x (n, ...),
    as a float64 torch tensor on `device` (the features are flattened per stimulus)."""
    import torch

    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    x = x.to(device=device, dtype=_dtype(device)).reshape(len(x), -1)
    x = x - x.mean(dim=0, keepdim=True)
    return x @ x.T


def _double_centre(gram):
    gram = gram - gram.mean(dim=0, keepdim=True)
    return gram - gram.mean(dim=1, keepdim=True)


@dataclass
class CKASide:
    """One side of CKA prepared for its estimator: `matrix` (the centred Gram matrix for
    `biased`, with its diagonal set to 0 for `debiased`), its row sums, total and HSIC with
    itself."""

    matrix: object  # torch tensor (n, n)
    rows: object  # (n,)
    total: float
    self_hsic: float
    estimator: str

    @property
    def n(self) -> int:
        return int(self.matrix.shape[0])


def prepare_side(gram, estimator: str = CKAParameters.estimator) -> CKASide:
    """Prepare a (double-centred) Gram matrix (n, n) for `cka_of` with `estimator`."""
    import torch

    from .registry import ESTIMATORS

    ESTIMATORS.check(estimator)
    n = int(gram.shape[0])
    if n < MIN_STIMULI[estimator]:
        raise InputError(f"CKA with the {estimator} HSIC estimator needs at least {MIN_STIMULI[estimator]} stimuli, "
                         f"got {n}" + ("; use `estimator=biased` or more stimuli" if estimator == "debiased" else ""))
    if estimator == "debiased":
        matrix = gram.clone()
        matrix.fill_diagonal_(0)
    else:
        matrix = gram
    side = CKASide(matrix, matrix.sum(dim=1), float(matrix.sum()), 0.0, estimator)
    with torch.no_grad():
        side.self_hsic = float(_hsic(side, side, None)[0])
    return side


def _hsic(a: CKASide, b: CKASide, permutations) -> np.ndarray:
    """HSIC(a, b) with b's stimuli permuted by each row of `permutations` (k, n) (None:
    unpermuted), as a float64 array (k,)."""
    n = a.n
    if permutations is None:
        products = (a.matrix * b.matrix).sum().reshape(1)
        cross = (a.rows @ b.rows).reshape(1) if a.estimator == "debiased" else None
    else:
        import torch

        index = torch.as_tensor(permutations, device=a.matrix.device)
        permuted = b.matrix[index[:, :, None], index[:, None, :]]  # (k, n, n)
        products = (permuted * a.matrix[None]).sum(dim=(1, 2))
        cross = b.rows[index] @ a.rows if a.estimator == "debiased" else None
    if a.estimator == "debiased":
        value = (products + a.total * b.total / ((n - 1) * (n - 2)) - 2 / (n - 2) * cross) / (n * (n - 3))
    else:
        value = products / (n - 1) ** 2
    return value.double().cpu().numpy()


def _cka(a: CKASide, b: CKASide, hsic: np.ndarray) -> np.ndarray:
    denominator = a.self_hsic * b.self_hsic
    if not denominator > 0:
        return np.full(hsic.shape, np.nan)
    return hsic / np.sqrt(denominator)


def cka_of(a: CKASide, b: CKASide) -> float:
    """CKA of two prepared sides (the same estimator and stimuli); NaN (with a warning)
    when a side does not vary over stimuli (or its debiased HSIC with itself is not
    positive)."""
    if a.estimator != b.estimator or a.n != b.n:
        raise ValueError("the two sides of CKA need the same estimator and number of stimuli")
    value = float(_cka(a, b, _hsic(a, b, None))[0])
    if np.isnan(value):
        warnings.warn("a side of CKA does not vary over the stimuli (its HSIC with itself is not positive): "
                      "CKA is undefined there, NaN", RuntimeWarning, stacklevel=2)
    return value


def permutation_p(a: CKASide, b: CKASide, observed: float, permutations: int, seed: int) -> float:
    """(1 + #{CKA with b's stimuli permuted >= observed}) / (1 + permutations), the
    permutations drawn from numpy's generator seeded by `seed`; NaN for a NaN `observed`."""
    if not permutations or np.isnan(observed):
        return float("nan")
    rng = np.random.default_rng(seed)
    batch = max(1, min(permutations, _PERMUTATION_BYTES // (8 * a.n * a.n)))
    at_least, done = 0, 0
    tolerance = 1e-12 * max(1.0, abs(observed))  # a permutation that reproduces the observed value counts
    while done < permutations:
        k = min(batch, permutations - done)
        order = np.argsort(rng.random((k, a.n)), axis=1)
        values = _cka(a, b, _hsic(a, b, order))
        at_least += int((values >= observed - tolerance).sum())
        done += k
    return (1 + at_least) / (1 + permutations)


def linear_cka(x, y, estimator: str = CKAParameters.estimator, *, device="cpu") -> float:
    """Linear CKA of features x (n, ...) and y (n, ...) over the same n stimuli.

    Parameters
    ----------
    x, y : array or torch tensor (n, ...)
        One row per stimulus (flattened per stimulus), in the same stimulus order.
    estimator : str, default "debiased"
        A name of `ESTIMATORS` (the module docstring has both formulas).
    device : str or torch.device, default "cpu"

    Returns
    -------
    float
        In [0, 1] for `biased`; `debiased` values can fall slightly below 0 for
        unrelated features. NaN (with a warning) when x or y does not vary over stimuli.

    Raises
    ------
    InputError
        Another number of rows in x than in y, too few stimuli for the estimator
        (`MIN_STIMULI`), or NaN or infinite features.
    """
    if len(x) != len(y):
        raise InputError(f"x has {len(x)} rows (stimuli), y {len(y)}; CKA compares features of the same stimuli")
    grams = [gram_matrix(v, device=device) for v in (x, y)]
    if not all(bool(g.isfinite().all()) for g in grams):
        raise InputError("the features hold NaN or infinite values; remove or impute them first")
    return cka_of(*(prepare_side(g, estimator) for g in grams))


# --------------------------------------------------------------------------- files


def _layer_grams(path: Path, names: Sequence[str], *, memory_bytes: int, device) -> Iterator[tuple[str, object]]:
    """(layer, double-centred Gram matrix) per layer of an open-able activations file,
    each streamed in feature chunks of about `memory_bytes`."""
    import torch

    from ..io.hdf5 import ACTIVATIONS_KIND, open_h5
    from .rdm_files import feature_chunks

    with open_h5(path, ACTIVATIONS_KIND) as file:
        for name in names:
            dataset = file["layers"][name]
            n = dataset.shape[0]
            gram = torch.zeros((n, n), dtype=_dtype(device), device=device)
            _, chunks = feature_chunks(dataset, memory_bytes, 8)
            for chunk in chunks():
                chunk = chunk[0].to(device=device, dtype=gram.dtype)
                if not bool(chunk.isfinite().all()):
                    bad = "NaN" if bool(chunk.isnan().any()) else "infinite"
                    raise InputError(f"{path}: layer {name!r} holds {bad} activations; remove or impute them "
                                     "(or extract the layer again)")
                gram += chunk @ chunk.T
            yield name, _double_centre(gram)


def _subject_name(path: Path) -> str:
    from .nifti import roi_name

    return roi_name(Path(path))


@dataclass(frozen=True)
class CKAResult:
    """What `cka_to_file` computed and wrote.

    Attributes
    ----------
    rows : list of dict
        The table, one row per pair with `columns`.
    columns : list of str
    parameters : CKAParameters
    paths : dict of str to Path
        `results`, and `plot` where written.
    """

    rows: list[dict]
    columns: list[str]
    parameters: CKAParameters
    paths: dict[str, Path]


@holds_outputs
def cka_to_file(
    activations: str | Path,
    out: str | Path,
    *,
    against: str | Path | None = None,
    betas: Sequence[str | Path] = (),
    mask: Sequence[str | Path] = (),
    responses: Sequence[str | Path] = (),
    roi: str = "responses",
    key: str | None = None,
    stimuli: str | Path | None = None,
    layers: str | Sequence[str] = ALL,
    against_layers: str | Sequence[str] = ALL,
    estimator: str = CKAParameters.estimator,
    permutations: int = CKAParameters.permutations,
    seed: int = CKAParameters.seed,
    memory: int = CKAParameters.memory,
    device: str = "cpu",
    plot: str | Path | None = None,
    overwrite: bool = False,
    config: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CKAResult:
    """Linear CKA between every chosen layer of `activations` and every layer of
    `against` (model vs model), or every ROI and subject of brain responses (model vs
    brain), and write the tidy table `out`.

    Parameters
    ----------
    activations : path
        An activations file (`extract_to_file`), with `layers`.
    out : path
        The CSV: `layer_a`, then `layer_b` (model vs model) or `roi`, `subject` [and
        `time` for (stimuli, channels, time) responses], then `cka`, `p` (with
        `permutations`), `n_stimuli`, `estimator`.
    against : path, optional
        A second activations file, with `against_layers`; its stimulus ids must be those
        of `activations` (it is reordered to their order).
    betas, mask : sequences of path
        One 4D NIfTI per subject (one volume per stimulus) and one or more 3D ROI masks,
        read as `rdms_to_file` reads them (`roi_patterns`: voxels with a non-finite value
        are left out, logged).
    responses : sequence of path
        One array file per subject, stimuli x channels [x time] (`load_responses`, the
        array `key`), for the ROI `roi`.
    stimuli : path, optional
        The stimulus ids of the brain data's rows (a stimulus folder or list): the rows
        are reordered to the activations' order. Without it, the rows are taken to be in
        the activations' order and only their count is checked.
    estimator, permutations, seed, memory
        As `CKAParameters`.
    device : str, default "cpu"
    plot : path, optional
        A heat map of CKA: layers of `activations` x layers of `against`, or x ROIs (the
        mean over subjects and time points).
    overwrite : bool
        Replace existing outputs.
    config : dict, optional
        The resolved options, recorded beside the table (`record_options`).
    progress : callable (done, total), optional
        Called after every layer of `against` (or ROI and subject [and time point]).

    Returns
    -------
    CKAResult

    Raises
    ------
    ConfigError
        Not exactly one of `against`, `betas` (with `mask`) and `responses`, or a bad option.
    InputError
        Unreadable or inconsistent inputs: stimulus ids or counts that differ, too few
        stimuli for the estimator, NaN or infinite values.
    """
    from ..device import resolve_device
    from ..extraction.stimuli import discover_stimuli
    from ..memory import check_memory
    from .recordings import check_betas, load_responses

    parameters = CKAParameters(estimator, permutations, seed, memory)
    given = [name for name, value in (("against", against), ("betas", betas), ("responses", responses)) if value]
    if len(given) != 1:
        raise ConfigError("give exactly one of `against` (a second activations file), `betas` (with `mask`) or "
                          "`responses`")
    if mask and not betas:
        raise ConfigError("`mask` selects the ROIs of `betas` volumes; give `betas` with it, or leave `mask` out")
    if key is not None and not responses:
        raise ConfigError("`key` names the array inside `responses` files; give `responses` with it, or leave `key` out")
    if stimuli is not None and against is not None:
        raise ConfigError("`stimuli` names the rows of brain data; an `against` file names its own stimuli: "
                          "leave `stimuli` out")
    out = Path(out)
    outputs = [Output("out", out, "csv"), *options_output(out, config)]
    outputs += [Output("plot", Path(plot), "figure")] if plot is not None else []
    check_outputs(outputs, {"activations": [activations], "against": [against], "betas": betas, "mask": mask,
                            "responses": responses, "stimuli": [stimuli]}, overwrite=overwrite)
    names, ids, largest = check_activation_layers(Path(activations), layers)
    n = len(ids)
    if n < MIN_STIMULI[estimator]:
        hint = "; use `estimator=biased` or more stimuli" if estimator == "debiased" else "; extract more stimuli"
        raise InputError(f"{activations} holds {n} stimuli; CKA with the {estimator} HSIC estimator needs at least "
                         f"{MIN_STIMULI[estimator]}{hint}")
    order = None
    if against is not None:
        other_names, other_ids, other_largest = check_activation_layers(Path(against), against_layers)
        largest = max(largest, other_largest)
        order = order_to_activations(ids, other_ids, str(activations), str(against), "the `against` file")
    else:
        brain_ids = [s.id for s in discover_stimuli(stimuli)] if stimuli is not None else None
        if betas:  # every header, before any work
            count = check_betas(list(betas), list(mask))
            check_stimulus_count(count, n, brain_ids, stimuli, activations, str(betas[0]))
        else:  # every subject's responses, read once before any work for their counts
            for path in responses:
                check_stimulus_count(load_responses(Path(path), key).shape[0], n, brain_ids, stimuli, activations, str(path))
        if brain_ids is not None:
            order = order_to_activations(ids, brain_ids, str(activations), str(stimuli), "the brain data (`stimuli`)")
    memory_bytes = parameters.memory * 2**20
    check_memory((len(names) + 3) * n**2 * 8 + min(memory_bytes, largest * 8),
                 what=f"{len(names)} Gram matrices of {n} stimuli", lower="choose fewer `layers` per run")
    target = resolve_device(device)
    sides = {name: prepare_side(gram, estimator)
             for name, gram in _layer_grams(Path(activations), names, memory_bytes=memory_bytes, device=target)}
    if against is not None:
        targets = (({"layer_b": name}, gram) for name, gram in
                   _layer_grams(Path(against), other_names, memory_bytes=memory_bytes, device=target))
    else:
        targets = _brain_grams(betas, mask, responses, roi, key, n=n, stimuli=stimuli, activations=activations,
                               device=target)
    rows, timed = [], False
    total = len(other_names) if against is not None else (len(betas) * len(mask) if betas else None)
    for index, (label, gram) in enumerate(targets):
        if order is not None:
            gram = gram[order][:, order]
        other = prepare_side(gram, estimator)
        timed = timed or "time" in label
        for name in names:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                value = cka_of(sides[name], other)
            if np.isnan(value):
                warnings.warn(f"CKA of layer {name!r} with {_describe(label)} is NaN: one side does not vary over "
                              "the stimuli", RuntimeWarning, stacklevel=2)
            row = {"layer_a": name, **label, "cka": value}
            if permutations:
                row["p"] = permutation_p(sides[name], other, value, permutations, seed)
            rows.append(row | {"n_stimuli": n, "estimator": estimator})
        if progress:
            progress(index + 1, total or index + 1)
    label_columns = ["layer_b"] if against is not None else ["roi", "subject", *(["time"] if timed else [])]
    columns = ["layer_a", *label_columns, "cka", *(["p"] if permutations else []), "n_stimuli", "estimator"]
    paths = {"results": write_csv(out, rows, columns)}
    if plot is not None:
        from ..figures.cka import cka_heatmap

        matrix, row_names, column_names = _heat_map(rows, names, "layer_b" if against is not None else "roi")
        paths["plot"] = cka_heatmap(matrix, Path(plot), rows=row_names, columns=column_names,
                                    title=f"linear CKA ({estimator})" + ("" if against is not None else
                                                                          ", mean over subjects"))
    record_options(out, config)
    return CKAResult(rows, columns, parameters, paths)


def _describe(label: dict) -> str:
    return ", ".join(f"{k} {v!r}" for k, v in label.items())


def _brain_grams(betas, masks, responses, roi, key, *, n, stimuli, activations, device):
    """({roi, subject[, time]}, Gram matrix) per subject, ROI [and time point]."""
    from ..extraction.stimuli import discover_stimuli
    from .recordings import load_responses, roi_patterns

    brain_ids = [s.id for s in discover_stimuli(stimuli)] if stimuli is not None else None
    if betas:
        for path in betas:
            for name, patterns in roi_patterns(Path(path), [Path(m) for m in masks]).items():
                check_stimulus_count(patterns.shape[0], n, brain_ids, stimuli, activations, str(path))
                yield {"roi": name, "subject": _subject_name(Path(path))}, gram_matrix(patterns, device=device)
        return
    for path in responses:
        array = load_responses(Path(path), key)
        check_stimulus_count(array.shape[0], n, brain_ids, stimuli, activations, str(path))
        subject = _subject_name(Path(path))
        if array.ndim == 2:
            yield {"roi": roi, "subject": subject}, gram_matrix(array, device=device)
        else:
            for t in range(array.shape[2]):
                yield {"roi": roi, "subject": subject, "time": t}, gram_matrix(array[:, :, t], device=device)


def _heat_map(rows: list[dict], names: list[str], column: str) -> tuple[np.ndarray, list[str], list[str]]:
    """CKA as a (layers, columns) matrix, the mean over the rows of a cell (subjects, time)."""
    columns = list(dict.fromkeys(row[column] for row in rows))
    sums = np.zeros((len(names), len(columns)))
    counts = np.zeros_like(sums)
    for row in rows:
        i, j = names.index(row["layer_a"]), columns.index(row[column])
        if np.isfinite(row["cka"]):
            sums[i, j] += row["cka"]
            counts[i, j] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan), names, [str(c) for c in columns]
