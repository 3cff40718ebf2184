"""Stimulus categories from a labels CSV (`stimulus,category`), and the order that puts
each category's stimuli together: how RDM pictures show their block structure."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import InputError
from ..io.tables import read_csv_rows

__all__ = ["read_categories", "category_order", "LABEL_COLUMNS"]

LABEL_COLUMNS = ("stimulus", "category")


def read_categories(path: str | Path, stimuli: Sequence[str] | None = None) -> dict[str, str]:
    """The category of each stimulus in the labels CSV `path` (columns `stimulus` and
    `category`; others are ignored), in the file's order.

    Parameters
    ----------
    path : path
    stimuli : sequence of str, optional
        The RDM's stimulus ids: each must be listed, and nothing else.

    Returns
    -------
    dict
        Stimulus id -> category.

    Raises
    ------
    InputError
        The file missing, unreadable or without rows (`read_csv_rows`), a column
        missing, a stimulus listed twice, an empty category, or (with `stimuli`) a
        stimulus missing or not one of them.
    """
    path = Path(path)
    rows = read_csv_rows(path, LABEL_COLUMNS)
    categories: dict[str, str] = {}
    for line, row in rows:
        stimulus, category = ((row[c] or "").strip() for c in LABEL_COLUMNS)
        if stimulus in categories:
            raise InputError(f"labels file {path} lists stimulus {stimulus!r} twice (line {line}); list each once")
        if not category:
            raise InputError(f"labels file {path}, line {line}: stimulus {stimulus!r} has no category")
        categories[stimulus] = category
    if stimuli is not None:
        _check_stimuli(path, categories, stimuli)
    return categories


def _check_stimuli(path: Path, categories: dict[str, str], stimuli: Sequence[str]) -> None:
    known = set(stimuli)
    unknown = [s for s in categories if s not in known]
    if unknown:
        raise InputError(f"labels file {path} lists {unknown[0]!r}, not a stimulus of the RDMs "
                         f"(they are {', '.join(list(stimuli)[:3])}, ...); use the RDM file's stimulus ids")
    absent = [s for s in stimuli if s not in categories]
    if absent:
        raise InputError(f"labels file {path} has no category for stimulus {absent[0]!r} "
                         f"({len(absent)} of {len(stimuli)} missing); give every stimulus a row")


def category_order(stimuli: Sequence[str], categories: dict[str, str]) -> tuple[list[int], list[tuple[str, int, int]]]:
    """The stimulus order that groups categories, and the blocks it makes.

    Categories come in the order of their first row in the labels file, and stimuli
    within a category in the order of their rows.

    Parameters
    ----------
    stimuli : sequence of str
        The RDM's stimulus ids, in its order.
    categories : dict
        Stimulus id -> category, in the labels file's order (`read_categories`).

    Returns
    -------
    (list of int, list of (str, int, int))
        Indices into `stimuli`, and each block's category, first position and end
        (exclusive) in that order.
    """
    position = {s: i for i, s in enumerate(stimuli)}
    names = list(dict.fromkeys(categories.values()))
    order, blocks = [], []
    for name in names:
        members = [position[s] for s, c in categories.items() if c == name]
        blocks.append((name, len(order), len(order) + len(members)))
        order += members
    return order, blocks
