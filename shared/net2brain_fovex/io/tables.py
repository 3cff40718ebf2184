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
    """Write rows as a CSV file atomically (floats with full precision, NaN as empty)."""

    def cell(value: Any) -> Any:
        if isinstance(value, float) and not np.isfinite(value):
            return ""
        return value

    with atomic_output(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="raise")
            writer.writeheader()
            for row in rows:
                writer.writerow({key: cell(row.get(key, "")) for key in columns})
    return Path(path)

