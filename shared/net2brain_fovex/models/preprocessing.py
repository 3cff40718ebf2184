"""The image preprocessing a model expects: resize, centre crop, scale to [0, 1], normalise.

One description covers torchvision's `ImageClassification` presets (resize the shorter
side to `resize`, crop `crop`) and timm's evaluation transforms (resize the shorter side
to floor(crop / crop_pct), crop `crop`), so a run records exactly what was applied.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from ..checks import check_range
from ..errors import ConfigError

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Preprocessing", "check_overrides",
           "from_torchvision", "from_timm"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """Resize the shorter side to `resize` px, centre-crop `crop` px, normalise.

    Attributes
    ----------
    resize, crop : int
        Sizes in pixels.
    mean, std : tuple of 3 floats
        Per-channel normalisation applied to values in [0, 1].
    interpolation : str
        "bilinear", "bicubic" or "nearest".
    """

    resize: int = 256
    crop: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"

    def with_overrides(
        self,
        *,
        image_size: int | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> Preprocessing:
        """A copy with the user's overrides (checked by `check_overrides`); `image_size`
        sets the crop and scales the resize so that the model's crop fraction is kept."""
        changed = self
        if image_size is not None:
            resize = math.floor(image_size * self.resize / self.crop)
            changed = replace(changed, crop=image_size, resize=resize)
        if mean is not None:
            changed = replace(changed, mean=tuple(float(v) for v in mean))
        if std is not None:
            changed = replace(changed, std=tuple(float(v) for v in std))
        return changed

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """Turn an RGB image into a normalised float32 tensor (3, crop, crop), with the
        same operations as torchvision's `ImageClassification` preset."""
        return self.normalise(self.crop_image(image).unsqueeze(0))[0]

    def crop_image(self, image: Image.Image) -> torch.Tensor:
        """The geometric part: resized and centre-cropped, as uint8 (3, crop, crop)."""
        image = TF.resize(image, [self.resize], interpolation=InterpolationMode(self.interpolation), antialias=True)
        return TF.pil_to_tensor(TF.center_crop(image, [self.crop]))

    def normalise(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 (n, 3, H, W) -> float32 scaled to [0, 1] and normalised, element by element
        as torchvision does it, so a batch gives the same values as single images."""
        batch = TF.convert_image_dtype(batch, torch.float32)
        return TF.normalize(batch, list(self.mean), list(self.std), inplace=True)

    def geometry(self, width: int, height: int) -> tuple[float, float, int, int]:
        """How `crop_image` maps an image of `width` x `height` pixels onto the input:
        (x scale, y scale, left, top), so that an original x lands at
        x * x_scale - left (same for y), as torchvision's resize and centre crop do."""
        if width <= height:
            new_width, new_height = self.resize, int(self.resize * height / width)
        else:
            new_width, new_height = int(self.resize * width / height), self.resize
        left = int(round((new_width - self.crop) / 2.0))
        top = int(round((new_height - self.crop) / 2.0))
        return new_width / width, new_height / height, left, top

    def as_dict(self) -> dict:
        return asdict(self)


def check_overrides(
    image_size: int | None = None, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
) -> None:
    """Refuse preprocessing overrides out of range (`ConfigError`): a crop outside
    `RANGES["image_size"]`, a mean or std that is not three finite numbers, a std that is
    not positive."""
    if image_size is not None:
        check_range("image_size", image_size)
    for name, values in (("mean", mean), ("std", std)):
        if values is None:
            continue
        values = tuple(float(v) for v in values)
        if len(values) != 3 or not all(math.isfinite(v) for v in values):
            raise ConfigError(f"`{name}` needs three finite numbers R,G,B, got {values}")
        if name == "std" and min(values) <= 0:
            raise ConfigError(f"`std` values must be positive, got {values}")


def from_torchvision(name: str) -> Preprocessing:
    """The preprocessing of a torchvision model's default weights (ImageNet defaults
    when the model has no weights enum)."""
    from torchvision.models import get_model_weights

    try:
        preset = get_model_weights(name).DEFAULT.transforms()
    except (ValueError, AttributeError):
        return Preprocessing()
    return Preprocessing(
        resize=int(preset.resize_size[0]),
        crop=int(preset.crop_size[0]),
        mean=tuple(preset.mean),
        std=tuple(preset.std),
        interpolation=preset.interpolation.value,
    )


def from_timm(model: torch.nn.Module) -> Preprocessing:
    """The evaluation preprocessing of a timm model, from its data config."""
    from timm.data import resolve_data_config

    config = resolve_data_config({}, model=model)
    crop = int(config["input_size"][-1])
    interpolation = config.get("interpolation", "bilinear")
    if interpolation not in ("bilinear", "bicubic", "nearest"):
        interpolation = "bilinear"
    return Preprocessing(
        resize=math.floor(crop / config.get("crop_pct", 0.875)),
        crop=crop,
        mean=tuple(config["mean"]),
        std=tuple(config["std"]),
        interpolation=interpolation,
    )
