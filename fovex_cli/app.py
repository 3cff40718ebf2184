"""`fovex`: explain and evaluate image classifiers. Commands arrive with later releases;
the app already follows the toolbox's option, config and exit-code contract."""
from __future__ import annotations

from cli_common.runner import make_app, run

app = make_app("fovex", "Explain image classifiers with FovEx and the usual baselines, and evaluate explanations.")


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    return run(app, "fovex", argv)
