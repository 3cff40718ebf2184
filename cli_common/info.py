"""`net2brain info FILE` / `fovex info FILE`: what one of our files holds and how it was
made (`net2brain_fovex.io.file_info`), as text on stdout or as one JSON object (`--json`)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli_common.config_merge import with_config
from cli_common.options import ConfigFile
from cli_common.output import Json, print_json
from net2brain_fovex.io.file_info import FORMATS, describe
from net2brain_fovex.io.provenance import plain


@with_config
def info_command(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help=f"One of our files: {FORMATS}.", show_default=False)],
    json: Json = False,
    config: ConfigFile = None,
) -> None:
    """Show what a file holds and how it was made: provenance (versions, command line, config, inputs, seed, device), attributes, datasets."""
    description = describe(file)
    if json:
        print_json(description)
    else:
        typer.echo(render_text(description))


def render_text(description: dict[str, Any]) -> str:
    """The human-readable form: a header line, then YAML-like sections."""
    import yaml

    _Dumper = _dumper()
    lines = [f"{description['file']}: {_FORMAT_NAMES[description['format']]}, {description['kind']}"]
    skip = {"file", "format", "kind", "provenance", "shard_provenance", "attributes", "datasets", "options"}
    for key, value in description.items():
        if key not in skip:
            lines.append(f"{key.replace('_', ' ')}: {_inline(value)}")

    def section(title: str, value: Any) -> None:
        lines.append(f"{title}:")
        if value in (None, {}, []):
            lines.append("  (none)")
            return
        text = yaml.dump(plain(value), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=float("inf"))
        lines.extend(f"  {line}" for line in text.rstrip("\n").splitlines())

    if "options" in description:
        section("options", description["options"])
    section("provenance", description.get("provenance"))
    if "shard_provenance" in description:
        section("shard provenance", description["shard_provenance"])
    if "attributes" in description:
        section("attributes", description["attributes"])
    if "datasets" in description:
        lines.append("datasets:")
        width = max((len(d["path"]) for d in description["datasets"]), default=0)
        for dataset in description["datasets"]:
            shape = "(" + ", ".join(map(str, dataset["shape"])) + ("," if len(dataset["shape"]) == 1 else "") + ")"
            lines.append(f"  {dataset['path']:<{width}}  {shape:<20} {dataset['dtype']}")
    return "\n".join(lines)


def _dumper():
    import yaml

    class Dumper(yaml.SafeDumper):
        """Mappings as blocks, lists on one line (`mean: [0.485, 0.456, 0.406]`)."""

    Dumper.add_representer(list, lambda dumper, data: dumper.represent_sequence(
        "tag:yaml.org,2002:seq", data, flow_style=True))
    return Dumper


_FORMAT_NAMES = {"hdf5": "HDF5", "nifti": "NIfTI", "csv": "CSV", "yaml": "YAML", "png": "PNG"}


def _inline(value: Any) -> str:
    if isinstance(value, list) and value and isinstance(value[0], list):  # the affine: one row per line
        return "".join(f"\n  {_inline(row)}" for row in value)
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_inline(v)}" for k, v in value.items())
    return str(value)


