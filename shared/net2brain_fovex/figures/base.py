"""What every figure shares: pyplot on the display-free Agg backend, imported on first
use, and an atomic PNG write that closes the figure."""
from __future__ import annotations

from pathlib import Path

from ..io.atomic import atomic_output
from ..io.outputs import figure_format

__all__ = ["pyplot", "save_figure"]


def pyplot():
    """pyplot on the display-free Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int, *, tight: bool = True) -> Path:
    """Lay `fig` out (unless not `tight`: nilearn places its axes itself), write it atomically
    to `path` in the format its suffix names (PNG, PDF, SVG, JPEG; PNG without a suffix),
    close it, return `path`."""
    plt = pyplot()
    path = Path(path)
    try:
        if tight:
            fig.tight_layout()
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format=figure_format(path), dpi=dpi)
    finally:
        plt.close(fig)
    return path
