"""The model options shared by `net2brain extract` and `fovex explain` / `evaluate`."""
from __future__ import annotations

from typing import Annotated

import typer

from cli_common.choices import choice, ranged
from net2brain_fovex.errors import ConfigError
from net2brain_fovex.models.sources import AUTO, SOURCES

PANEL = "Model"

Model = Annotated[str, typer.Option(
    "--model", "-m", rich_help_panel=PANEL,
    help="torchvision or timm model name, module:function or file.py:function (a factory returning "
    "an nn.Module; runs your own code), or a TorchScript file.",
)]
SourceName = choice(SOURCES, AUTO)
Source = Annotated[SourceName, typer.Option(
    rich_help_panel=PANEL,
    help=f"Where to look up a model name: {AUTO} tries {', then '.join(SOURCES)}.",
)]
Weights = Annotated[str, typer.Option(
    rich_help_panel=PANEL,
    help="pretrained (from $TORCH_HOME / $HF_HOME caches), random (seeded), or a state-dict file "
    "(.pth, .pt, .bin, .safetensors; loaded with weights_only).",
)]
Seed = Annotated[int, typer.Option(rich_help_panel=PANEL, help=ranged("Seed for random weights and anything random.", "seed"))]
Device = Annotated[str, typer.Option(rich_help_panel=PANEL, help="auto, cpu, cuda, cuda:N or mps.")]
ImageSize = Annotated[int | None, typer.Option(
    rich_help_panel=PANEL, help=ranged("Crop size in pixels (the resize keeps the model's crop fraction).", "image_size"),
)]
Mean = Annotated[str | None, typer.Option(rich_help_panel=PANEL, help="Normalisation mean R,G,B (default: the model's).")]
Std = Annotated[str | None, typer.Option(rich_help_panel=PANEL, help="Normalisation std R,G,B (default: the model's).")]


def parse_triple(name: str, text: str | None) -> tuple[float, float, float] | None:
    """'0.5,0.5,0.5' -> (0.5, 0.5, 0.5); None stays None."""
    if text is None:
        return None
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"--{name} {text!r} must be three numbers R,G,B") from None
    if len(values) != 3:
        raise ConfigError(f"--{name} {text!r} must be three numbers R,G,B")
    return values  # type: ignore[return-value]
