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
    "writes NAME.shard-I-of-N.EXT beside --out (searchlight: in --out-dir), joined by `merge`.",
)]


def sharded_output(out, shard: str | None, resume: bool, overwrite: bool):
    """The shard (or None) and the file a run writes (`out`, or the shard's own beside
    it), checked before any work; the path is None when `--resume` finds it complete.

    Raises ConfigError for --resume with --overwrite (continue a run, or start it again)
    and a bad --shard; OutputError for an existing output without --overwrite.
    """
    import logging

    from shared.errors import ConfigError
    from shared.shards import parse_shard
    from shared.storage import check_new_output

    if resume and overwrite:
        raise ConfigError("--resume continues an interrupted run and --overwrite starts it again: give one of them")
    part = parse_shard(shard)
    target = out if part is None else part.path(out)
    if resume and target.exists():
        logging.getLogger().info("%s is complete already; nothing to resume", target)
        return part, None
    return part, check_new_output(target, overwrite)
