"""CSV tables, written atomically."""
from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_output

__all__ = ["write_csv"]


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> Path:
    """Write rows as a CSV file atomically (floats with full precision, NaN as empty).

    Non-finite floats (Python's and numpy's of every precision) become empty cells; other
    values are written as `str` gives them.

    Parameters
    ----------
    path : path
        The UTF-8 file to write; its folder must exist and an existing file is replaced.
    rows : sequence of mapping
        One mapping per row. A key that is missing gives an empty cell; keys not in
        `columns` are left out.
    columns : sequence of str
        The header, in order.

    Returns
    -------
    Path
        `path`.

    Raises
    ------
    OutputError
        The folder is missing or not writable, or the write fails.
    """

    def cell(value: Any) -> Any:
        if isinstance(value, (float, np.floating)) and not np.isfinite(value):
            return ""
        return value

    with atomic_output(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(columns))
            writer.writeheader()
            for row in rows:
                writer.writerow({key: cell(row.get(key, "")) for key in columns})
    return Path(path)

