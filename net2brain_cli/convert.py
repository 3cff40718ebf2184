"""`net2brain convert`: THINGSvision's and Net2Brain's saved features as our activations file."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from cli_common.choices import choice, choice_help
from cli_common.config_merge import require, resolved_options, with_config
from cli_common.options import ConfigFile, Overwrite
from net2brain_fovex.extraction.registry import FOREIGN_FORMATS

log = logging.getLogger("net2brain")


@with_config
def convert_command(
    ctx: typer.Context,
    source: Annotated[Path, typer.Argument(help="The folder of THINGSvision or Net2Brain features.", show_default=False)],
    out: Annotated[Path | None, typer.Option(help="Output activations file (HDF5).")] = None,
    format: Annotated[choice(FOREIGN_FORMATS), typer.Option(
        help=choice_help(FOREIGN_FORMATS, "Layout of SOURCE:"))] = FOREIGN_FORMATS.default,
    layer: Annotated[str | None, typer.Option(help="Layer name of a THINGSvision folder of one module "
                                                    "(default: the folder's name).")] = None,
    overwrite: Overwrite = False,
    config: ConfigFile = None,
) -> None:
    """Convert another tool's saved features to an activations file that rdm, rsa, cka and encode read."""
    from net2brain_fovex.extraction.foreign import convert_to_file

    options = resolved_options(ctx)
    require(options, "out")
    path, found = convert_to_file(source, out, format=format, layer=layer, overwrite=overwrite, config=options)
    shapes = ", ".join(f"{name} {'x'.join(map(str, shape))}" for name, shape in list(found.shapes.items())[:6])
    log.info("wrote %s (%s): %d stimuli; %s", path, found.format, len(found.stimuli), shapes)
