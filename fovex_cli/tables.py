"""The table of `fovex evaluate` on stderr: metrics as rows, methods as columns."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def summary_table(summary: Sequence[dict], labels: Sequence[str], metrics: Sequence[str]):
    """A rich table of mean +- SEM, metrics as rows and methods as columns; the best
    mean of each row is bold and starred (by the metric's direction of better)."""
    from rich.table import Table

    from net2brain_fovex.evaluate.evaluation import METRICS

    cells = {(row["method"], row["metric"]): row for row in summary}
    table = Table(title="explanation metrics (mean +- SEM; * best)")
    table.add_column("metric")
    table.add_column("better")
    for label in labels:
        table.add_column(label, justify="right")
    for name in metrics:
        means = [cells[label, name]["mean"] for label in labels]
        finite = [m for m in means if np.isfinite(m)]
        best = (min(finite) if METRICS[name].better == "lower" else max(finite)) if finite else None
        row = [name, METRICS[name].better]
        for label, mean in zip(labels, means, strict=True):
            text = f"{mean:.4g} +- {cells[label, name]['sem']:.2g}"
            row.append(f"[bold]{text} *[/bold]" if best is not None and len(labels) > 1 and mean == best else text)
        table.add_row(*row)
    return table
