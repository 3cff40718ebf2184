"""The table of `fovex evaluate` on stderr: metrics as rows, methods as columns."""
from __future__ import annotations

from collections.abc import Sequence


def summary_table(summary: Sequence[dict], labels: Sequence[str], metrics: Sequence[str]):
    """A rich table of mean +- SEM, metrics as rows and methods as columns; the best
    mean of each row is bold and starred (by the metric's direction of better)."""
    from rich.table import Table

    from net2brain_fovex.evaluate.evaluation import METRICS, best_means

    cells = {(row["method"], row["metric"]): row for row in summary}
    best = best_means(summary)
    table = Table(title="explanation metrics (mean +- SEM; * best)")
    table.add_column("metric")
    table.add_column("better")
    for label in labels:
        table.add_column(label, justify="right")
    for name in metrics:
        row = [name, METRICS[name].better]
        for label in labels:
            mean = cells[label, name]["mean"]
            text = f"{mean:.4g} +- {cells[label, name]['sem']:.2g}"
            # ties: every method of the best mean is starred
            starred = len(labels) > 1 and name in best and mean == cells[best[name], name]["mean"]
            row.append(f"[bold]{text} *[/bold]" if starred else text)
        table.add_row(*row)
    return table
