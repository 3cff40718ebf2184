"""`net2brain report DIR` / `fovex report DIR`: one self-contained HTML page of a run
folder (`net2brain_fovex.report`)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from cli_common.choices import ranged
from cli_common.config_merge import with_config
from cli_common.options import ConfigFile, Overwrite
from net2brain_fovex.report import REPORT_NAME


@with_config
def report_command(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="A run's output folder (or a pipeline's).", show_default=False)],
    out: Annotated[Path | None, typer.Option(help=f"The HTML file (default: FOLDER/{REPORT_NAME}).")] = None,
    title: Annotated[str | None, typer.Option(help="Page title (default: report of FOLDER).")] = None,
    max_images: Annotated[int, typer.Option(
        help=ranged("Most overlays per method and thumbnails per stimulus folder shown.", "max_images"))] = 100,
    overwrite: Overwrite = False,
    config: ConfigFile = None,
) -> None:
    """Write one self-contained HTML page of a run folder: provenance and options, RSA,
    searchlight, encoding and CKA tables with their figures, explanation overlays by
    method, the metric table, stimuli and every file; images embedded, no network."""
    from net2brain_fovex.report.page import report_to_file

    path, contents = report_to_file(folder, out, title=title, max_images=max_images, overwrite=overwrite)
    logging.getLogger(ctx.find_root().info_name).info("wrote %s: %d tables, %d files of %s", path, len(contents.tables), len(contents.files()), folder)
