"""The image preprocessing a model expects: resize, centre crop, scale to [0, 1], normalise.

One description covers torchvision's `ImageClassification` presets (resize the shorter
side to `resize`, crop `crop`), its video presets (resize to exactly 128 x 171, crop
112), timm's evaluation transforms (resize the shorter side to floor(crop / crop_pct),
crop `crop`), the image processors of transformers (resize to a fixed height and width)
and Net2Brain's 256 x 256 squash, so a run records exactly what was applied. Video
frames get the same transform, frame by frame.
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
from .registry import INTERPOLATIONS, RESIZE_MODES

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Preprocessing", "check_overrides"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """Resize, centre-crop `crop` px, normalise.

    Attributes
    ----------
    resize : int or (int, int)
        `resize_mode` shorter: the shorter side's new length (the aspect ratio kept);
        squash: the new side of a square, or (height, width).
    crop : int
        The side of the centre crop, in pixels.
    mean, std : tuple of 3 floats
        Per-channel normalisation applied to values in [0, 1].
    interpolation : str
        "bilinear", "bicubic" or "nearest".
    resize_mode : str
        "shorter" or "squash" (both sides set, the aspect ratio not kept).
    antialias : bool
        Antialias when shrinking (as Pillow always does); False resizes the pixels as a
        uint8 tensor without it, as torchvision's video presets do.
    """

    resize: int | tuple[int, int] = 256
    crop: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    resize_mode: str = "shorter"
    antialias: bool = True

    def with_overrides(
        self,
        *,
        image_size: int | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        crop_pct: float | None = None,
        interpolation: str | None = None,
        resize_mode: str | None = None,
    ) -> Preprocessing:
        """A copy with the user's overrides (checked by `check_overrides`).

        `image_size` sets the crop and scales the resize so that the model's crop fraction
        is kept; `crop_pct` sets that fraction (the resize becomes floor(crop / crop_pct):
        1.0 resizes to the crop and crops nothing); `resize_mode` squash resizes both sides
        to the (square) resize, shorter the shorter side."""
        changed = self
        if resize_mode is not None:
            square = changed.resize if isinstance(changed.resize, int) else min(changed.resize)
            changed = replace(changed, resize_mode=resize_mode, resize=square)
        if image_size is not None:
            changed = replace(changed, crop=image_size, resize=_scaled(changed.resize, image_size / changed.crop))
        if crop_pct is not None:
            changed = replace(changed, resize=math.floor(changed.crop / crop_pct))
        if interpolation is not None:
            changed = replace(changed, interpolation=interpolation)
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
        pixels = image if self.antialias else TF.pil_to_tensor(image)
        pixels = TF.resize(pixels, self._size(), interpolation=InterpolationMode(self.interpolation),
                           antialias=self.antialias)
        pixels = TF.center_crop(pixels, [self.crop])
        return pixels if isinstance(pixels, torch.Tensor) else TF.pil_to_tensor(pixels)

    def _size(self) -> list[int]:
        """The size argument of torchvision's resize: [shorter side] or [height, width]."""
        if self.resize_mode == "shorter":
            return [self.resize]
        return [self.resize, self.resize] if isinstance(self.resize, int) else list(self.resize)

    def normalise(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 (n, 3, H, W) -> float32 scaled to [0, 1] and normalised, element by element
        as torchvision does it, so a batch gives the same values as single images.

        torchvision's steps (convert, divide by 255, subtract the mean, divide by the
        std) run here in place on one float32 copy: its `convert_image_dtype` allocates a
        second one, and a fresh batch-sized buffer is page-faulted in anew for every batch
        (8 batches of 32 images: 0.61 CPU-seconds, against 0.09 here). The values are
        torchvision's bit for bit (tests/models/test_preprocessing.py)."""
        mean = torch.tensor(self.mean, dtype=torch.float32, device=batch.device).reshape(-1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=batch.device).reshape(-1, 1, 1)
        return batch.to(torch.float32).div_(255.0).sub_(mean).div_(std)

    def geometry(self, width: int, height: int) -> tuple[float, float, int, int]:
        """How `crop_image` maps an image of `width` x `height` pixels onto the input:
        (x scale, y scale, left, top), so that an original x lands at
        x * x_scale - left (same for y), as torchvision's resize and centre crop do."""
        size = self._size()
        if len(size) == 2:
            new_height, new_width = size
        elif width <= height:
            new_width, new_height = self.resize, int(self.resize * height / width)
        else:
            new_width, new_height = int(self.resize * width / height), self.resize
        left = int(round((new_width - self.crop) / 2.0))
        top = int(round((new_height - self.crop) / 2.0))
        return new_width / width, new_height / height, left, top

    def as_dict(self) -> dict:
        return asdict(self)


def _scaled(resize: int | tuple[int, int], factor: float) -> int | tuple[int, int]:
    if isinstance(resize, int):
        return math.floor(resize * factor)
    return tuple(math.floor(side * factor) for side in resize)


def check_overrides(
    image_size: int | None = None, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
    crop_pct: float | None = None, interpolation: str | None = None, resize_mode: str | None = None,
) -> None:
    """Refuse preprocessing overrides out of range (`ConfigError`): a crop outside
    `RANGES["image_size"]`, a `crop_pct` outside (0, 1], an unknown interpolation or
    resize mode, a mean or std that is not three finite numbers, a std that is not
    positive."""
    if image_size is not None:
        check_range("image_size", image_size)
    if crop_pct is not None:
        check_range("crop_pct", crop_pct)
    if interpolation is not None:
        INTERPOLATIONS.check(interpolation)
    if resize_mode is not None:
        RESIZE_MODES.check(resize_mode)
    for name, values in (("mean", mean), ("std", std)):
        if values is None:
            continue
        values = tuple(float(v) for v in values)
        if len(values) != 3 or not all(math.isfinite(v) for v in values):
            raise ConfigError(f"`{name}` needs three finite numbers R,G,B, got {values}")
        if name == "std" and min(values) <= 0:
            raise ConfigError(f"`std` values must be positive, got {values}")
