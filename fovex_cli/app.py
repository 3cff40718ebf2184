"""`fovex`: explain and evaluate image classifiers. Commands arrive with later releases;
the app already follows the toolbox's option, config and exit-code contract."""
from __future__ import annotations

import typer

from cli_common.runner import global_options, run

app = typer.Typer(
    name="fovex",
    help="Explain image classifiers with FovEx and the usual baselines, and evaluate explanations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.callback(invoke_without_command=True)(global_options)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    return run(app, "fovex", argv)
