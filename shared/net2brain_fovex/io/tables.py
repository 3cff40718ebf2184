"""CSV tables, written atomically."""
from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .atomic import atomic_output
from .paths import what_is_there

__all__ = ["write_csv", "read_csv_rows"]


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


def read_csv_rows(path: str | Path, columns: tuple[str, ...]) -> list[tuple[int, dict]]:
    """(line number, row) pairs of the CSV `path`, whose header names at least `columns`.

    Raises
    ------
    InputError
        The file missing, empty, unreadable, not UTF-8 (a byte-order mark is allowed),
        lacking a column, or without rows.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} {what_is_there(path)}; give a CSV file with a header line naming {', '.join(columns)}")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:  # -sig: Excel writes a byte-order mark
            reader = csv.DictReader(handle)
            if reader.fieldnames is None:
                raise InputError(f"{path} is empty; it needs a header line naming {', '.join(columns)}, then one row per entry")
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise InputError(
                    f"{path} lacks the column(s) {', '.join(missing)}; its header must name {', '.join(columns)}"
                )
            rows = [(number + 2, row) for number, row in enumerate(reader)]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"{path} is not a readable UTF-8 CSV file ({error})") from None
    if not rows:
        raise InputError(f"{path} has a header but no rows")
    return rows
