"""The model options shared by `net2brain extract` and `fovex explain` / `evaluate`."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli_common.choices import choice, ranged
from net2brain_fovex.errors import ConfigError
from net2brain_fovex.models.registry import INTERPOLATIONS, RESIZE_MODES
from net2brain_fovex.models.sources import AUTO, SOURCES

PANEL = "Model"

Model = Annotated[str, typer.Option(
    "--model", "-m", rich_help_panel=PANEL,
    help="A model name of a source (see `net2brain models`: torchvision, timm, cornet, taskonomy, open_clip "
    "MODEL:TAG, a transformers hub id or saved folder), module:function or file.py:function (a factory "
    "returning an nn.Module; runs your own code), or a TorchScript file.",
)]
PretrainedTag = Annotated[str | None, typer.Option(
    rich_help_panel=PANEL, help="open_clip: the pretrained tag of --model (the same as --model MODEL:TAG).")]
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
CropPct = Annotated[float | None, typer.Option(
    rich_help_panel=PANEL, help=ranged("Crop fraction: resize to crop / crop-pct, then crop (1.0: no crop; default: "
                                       "the model's).", "crop_pct"))]
Interpolation = Annotated[choice(INTERPOLATIONS) | None, typer.Option(
    rich_help_panel=PANEL, help="Resize interpolation (default: the model's).")]
ResizeMode = Annotated[choice(RESIZE_MODES) | None, typer.Option(
    rich_help_panel=PANEL, help="shorter: resize the shorter side (aspect kept); squash: resize to a square, as "
    "Net2Brain's 256 x 256 (default: the model's).")]
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


def model_name(model: str | None, pretrained_tag: str | None) -> str | None:
    """--model M --pretrained-tag T -> M:T (open_clip's naming)."""
    if pretrained_tag is None or model is None:
        return model
    if ":" in model or Path(model).exists():
        what = ("is a factory (file.py:function)" if model.rpartition(":")[0].endswith(".py")
                else "names a tag already (MODEL:TAG), or a factory (module:function)" if ":" in model
                else "is a file or folder, not an open_clip model name")
        raise ConfigError(f"--model {model!r} {what}; leave out --pretrained-tag {pretrained_tag!r}")
    return f"{model}:{pretrained_tag}"
