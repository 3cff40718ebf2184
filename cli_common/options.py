"""Option types every command shares."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigFile = Annotated[Path | None, typer.Option(
    "--config", help="YAML file of options (keys = long flag names); command-line flags win.",
)]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")]
ShardSpec = Annotated[str | None, typer.Option(
    "--shard", help="Compute only part I of N (I from 0), e.g. 3/8, or auto (from a SLURM array task); "
    "writes NAME.shard-I-of-N.EXT beside --out (searchlight, encode: in --out-dir), joined by `merge`.",
)]
Background = Annotated[Path | None, typer.Option(
    help="With --plot: a 3D NIfTI drawn under brain maps not in MNI space (default: the mask).",
)]
