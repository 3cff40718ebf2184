"""cornet: CORnet-Z, CORnet-R, CORnet-RT and CORnet-S, networks of four areas named after
the primate ventral stream (V1, V2, V4, IT) and a decoder (Kubilius et al. 2019,
"Brain-like object recognition with high-performing shallow recurrent ANNs", NeurIPS;
reference implementation github.com/dicarlolab/CORnet).

* CORnet-Z: feed-forward, one convolution, ReLU and max-pool per area.
* CORnet-R: each area holds a state and runs 5 time steps; within a step the areas update
  bottom-up, each from the output the area below produced in the same step.
* CORnet-RT: as CORnet-R, but each area takes the output the area below produced in the
  previous step (a signal needs one step per area).
* CORnet-S: ResNet-like areas that each repeat their bottleneck block with shared
  convolutions (V2 2 times, V4 4 times, IT 2 times) and one batch norm per repetition.

Module names are those of the official checkpoints, so their state dicts load strictly:
`V1`, `V2`, `V4`, `IT`, `decoder` with their sub-modules (`V4.conv_input`,
`IT.norm2_1`, `decoder.linear`, ...). The default layers are the five area outputs. A
recurrent area runs once per time step (and CORnet-S's convolutions once per repetition);
a layer records a module's last call, so an area's activation is its output at the last
time step, the one the decoder reads.

Pretrained weights (ImageNet, 1000 classes) are the official files, read only from
`$TORCH_HOME/hub/checkpoints/` (they are never downloaded: fetch them from
https://s3.amazonaws.com/cornet-models/ and place them there, or pass a file as
`weights`). Preprocessing as the official evaluation: the shorter side resized to 256,
a centre crop of 224, ImageNet mean and std.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F

from ...errors import unknown_name
from ..built import Built, ModelEntry

__all__ = ["WEIGHT_URL", "CORnetZ", "CORnetR", "CORnetRT", "CORnetS", "entries", "offers", "build"]

WEIGHT_URL = "https://s3.amazonaws.com/cornet-models/"
_AREAS = ("V1", "V2", "V4", "IT")
_TOP = (*_AREAS, "decoder")


def _decoder(with_output: bool) -> nn.Sequential:
    """Global average pooling and the 1000-class linear read-out; Z and S end with an
    `output` identity (as their checkpoints' layer names do), R and RT do not."""
    layers = [("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()), ("linear", nn.Linear(512, 1000))]
    if with_output:
        layers.append(("output", nn.Identity()))
    return nn.Sequential(OrderedDict(layers))


# ------------------------------------------------------------------ CORnet-Z
class _AreaZ(nn.Module):
    """A CORnet-Z area: convolution, ReLU, max-pool (3, stride 2)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2)
        self.nonlin = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.output = nn.Identity()  # the area's output under its own name, as in the official layer names

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.pool(self.nonlin(self.conv(x))))


class CORnetZ(nn.Module):
    """CORnet-Z: four feed-forward areas (64, 128, 256, 512 channels) and a decoder.

    Input (B, 3, H, W), output (B, 1000) class scores. Initialised as the official code
    does: Xavier-uniform weights, zero biases.
    """

    def __init__(self) -> None:
        super().__init__()
        self.V1 = _AreaZ(3, 64, kernel_size=7, stride=2)
        self.V2 = _AreaZ(64, 128)
        self.V4 = _AreaZ(128, 256)
        self.IT = _AreaZ(256, 512)
        self.decoder = _decoder(with_output=True)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.IT(self.V4(self.V2(self.V1(x)))))


# ------------------------------------------------------------------ CORnet-R and CORnet-RT
class _AreaR(nn.Module):
    """A recurrent area: the feed-forward drive (strided convolution, group norm, ReLU)
    plus the area's state, through a convolution, group norm and ReLU; the result is both
    the output and the next state."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.conv_input = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2)
        self.norm_input = nn.GroupNorm(32, out_channels)
        self.nonlin_input = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(32, out_channels)
        self.nonlin1 = nn.ReLU(inplace=True)
        self.output = nn.Identity()  # the area's output under its own name, as in the official layer names

    def forward(self, inp: torch.Tensor, state: torch.Tensor | None = None, *, arrived: bool = True) -> torch.Tensor:
        """One time step.

        Parameters
        ----------
        inp : tensor (B, C_in, H, W)
            The image (V1) or the output of the area below.
        state : tensor (B, C_out, H', W'), optional
            The area's output of the previous step; None at the first step (zero).
        arrived : bool, default True
            False at the first step of V2 and above, when nothing has come from below yet:
            the drive is zero, of the shape `conv_input` gives on `inp` (the official code
            fixes that shape for 224 px images; deriving it lets other sizes run too).
        """
        if arrived:
            drive = self.nonlin_input(self.norm_input(self.conv_input(inp)))
        else:
            drive = inp.new_zeros(_conv_output_shape(self.conv_input, inp))
        if state is not None:
            drive = drive + state
        return self.output(self.nonlin1(self.norm1(self.conv1(drive))))


def _conv_output_shape(conv: nn.Conv2d, x: torch.Tensor) -> tuple[int, ...]:
    """The shape `conv` gives on `x`, without running it."""
    size = [(n + 2 * p - d * (k - 1) - 1) // s + 1
            for n, k, s, p, d in zip(x.shape[-2:], conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                                             strict=True)]
    return (x.shape[0], conv.out_channels, *size)


class CORnetR(nn.Module):
    """CORnet-R: four recurrent areas (64, 128, 256, 512 channels) run for `times` steps,
    and a decoder on IT's last output.

    At the first step only V1 sees the image; V2, V4 and IT start from a zero drive.
    At each later step the areas update bottom-up, each from the output of the area below
    in the same step, and V1 sees the image again.

    Parameters
    ----------
    times : int, default 5
        Time steps (the official models were trained with 5).
    """

    def __init__(self, times: int = 5) -> None:
        super().__init__()
        self.times = times
        self.V1 = _AreaR(3, 64, kernel_size=7, stride=4)
        self.V2 = _AreaR(64, 128, stride=2)
        self.V4 = _AreaR(128, 256, stride=2)
        self.IT = _AreaR(256, 512, stride=2)
        self.decoder = _decoder(with_output=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        areas = [self.V1, self.V2, self.V4, self.IT]
        outputs = [self.V1(image)]
        for area in areas[1:]:
            outputs.append(area(outputs[-1], arrived=False))
        for _ in range(1, self.times):
            outputs = self._step(areas, image, outputs)
        return self.decoder(outputs[-1])

    @staticmethod
    def _step(areas: list[nn.Module], image: torch.Tensor, outputs: list[torch.Tensor]) -> list[torch.Tensor]:
        """One later time step: each area from the output of the area below in this step."""
        new: list[torch.Tensor] = []
        for area, state in zip(areas, outputs, strict=True):
            new.append(area(new[-1] if new else image, state))
        return new


class CORnetRT(CORnetR):
    """CORnet-RT: CORnet-R's areas and first step, but at each later step every area takes
    the output the area below produced in the previous step.

    Parameters
    ----------
    times : int, default 5
        Time steps (the official models were trained with 5).
    """

    @staticmethod
    def _step(areas: list[nn.Module], image: torch.Tensor, outputs: list[torch.Tensor]) -> list[torch.Tensor]:
        """One later time step: each area from the output of the area below in the previous step."""
        below = [image, *outputs[:-1]]
        return [area(inp, state) for area, inp, state in zip(areas, below, outputs, strict=True)]


# ------------------------------------------------------------------ CORnet-S
class _StepConv2d(nn.Conv2d):
    """A convolution whose stride is given at each call: CORnet-S's 3x3 convolution
    downsamples in an area's first repetition only, with the same weights."""

    def forward(self, x: torch.Tensor, stride: int = 1) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, stride, self.padding, self.dilation, self.groups)


class _AreaS(nn.Module):
    """A CORnet-S area: a 1x1 input convolution, then `times` repetitions of one bottleneck
    block (1x1 up to 4x the channels, 3x3, 1x1 down; stride 2 in the first repetition)
    with a residual connection (a strided 1x1 convolution and batch norm in the first) and
    batch norms of its own in each repetition."""

    scale = 4  # channel expansion of the bottleneck

    def __init__(self, in_channels: int, out_channels: int, times: int) -> None:
        super().__init__()
        self.times = times
        wide = out_channels * self.scale
        self.conv_input = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.skip = nn.Conv2d(out_channels, out_channels, kernel_size=1, stride=2, bias=False)
        self.norm_skip = nn.BatchNorm2d(out_channels)
        self.conv1 = nn.Conv2d(out_channels, wide, kernel_size=1, bias=False)
        self.nonlin1 = nn.ReLU(inplace=True)
        self.conv2 = _StepConv2d(wide, wide, kernel_size=3, padding=1, bias=False)
        self.nonlin2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(wide, out_channels, kernel_size=1, bias=False)
        self.nonlin3 = nn.ReLU(inplace=True)
        self.output = nn.Identity()  # the area's output under its own name, as in the official layer names
        # named norm1_0, norm2_0, norm3_0, norm1_1, ... as in the official checkpoints
        for t in range(times):
            self.add_module(f"norm1_{t}", nn.BatchNorm2d(wide))
            self.add_module(f"norm2_{t}", nn.BatchNorm2d(wide))
            self.add_module(f"norm3_{t}", nn.BatchNorm2d(out_channels))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self.conv_input(inp)
        for t in range(self.times):
            skip = self.norm_skip(self.skip(x)) if t == 0 else x
            x = self.nonlin1(self.get_submodule(f"norm1_{t}")(self.conv1(x)))
            x = self.nonlin2(self.get_submodule(f"norm2_{t}")(self.conv2(x, 2 if t == 0 else 1)))
            x = self.get_submodule(f"norm3_{t}")(self.conv3(x)) + skip
            x = self.output(self.nonlin3(x))
        return x


class CORnetS(nn.Module):
    """CORnet-S: a two-convolution V1 (64 channels), the repeated bottleneck areas V2, V4
    and IT (128, 256, 512 channels; 2, 4 and 2 repetitions) and a decoder.

    Initialised as the official code does: convolutions from N(0, 2 / (k * k * out)),
    batch norms at 1 and 0, the linear layer at torch's default.
    """

    def __init__(self) -> None:
        super().__init__()
        self.V1 = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)),
            ("norm1", nn.BatchNorm2d(64)),
            ("nonlin1", nn.ReLU(inplace=True)),
            ("pool", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
            ("conv2", nn.Conv2d(64, 64, kernel_size=3, padding=1, bias=False)),
            ("norm2", nn.BatchNorm2d(64)),
            ("nonlin2", nn.ReLU(inplace=True)),
            ("output", nn.Identity()),
        ]))
        self.V2 = _AreaS(64, 128, times=2)
        self.V4 = _AreaS(128, 256, times=4)
        self.IT = _AreaS(256, 512, times=2)
        self.decoder = _decoder(with_output=True)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.IT(self.V4(self.V2(self.V1(x)))))


# ------------------------------------------------------------------ the source
# name: (architecture, official weight file); the file names carry the hashes of the
# official repository (HASH in cornet_z.py, cornet_r.py, cornet_rt.py, cornet_s.py)
_MODELS = {
    "cornet_z": (CORnetZ, "cornet_z-5c427c9c.pth"),
    "cornet_r": (CORnetR, "cornet_r-5930a990.pth"),
    "cornet_rt": (CORnetRT, "cornet_rt-933c001c.pth"),
    "cornet_s": (CORnetS, "cornet_s-1d3f7974.pth"),
}


def _canonical(name: str) -> str | None:
    """`cornet_s` for `cornet_s`, `CORnet-S`, `cornet-s`; None for other names."""
    key = name.lower().replace("-", "_")
    return key if key in _MODELS else None


def entries() -> tuple[ModelEntry, ...]:
    """The four CORnets: task brain-inspired, image input, pretrained weights."""
    return tuple(ModelEntry(name, "brain-inspired", "image", True) for name in _MODELS)


def offers(name: str) -> bool:
    """Whether `name` is a CORnet (`cornet_z`, `cornet_r`, `cornet_rt`, `cornet_s`, also
    spelt `CORnet-Z` ...)."""
    return _canonical(name) is not None


def build(name: str, pretrained: bool) -> Built:
    """A CORnet with the official ImageNet weights from the torch hub cache, or random
    ones initialised as the official code does.

    Parameters
    ----------
    name : str
        `cornet_z`, `cornet_r`, `cornet_rt` or `cornet_s` (or `CORnet-Z` ...).
    pretrained : bool

    Returns
    -------
    Built
        Task brain-inspired, class scores (1000 ImageNet classes), default layers V1, V2,
        V4, IT and decoder.

    Raises
    ------
    UnknownNameError
        Another name.
    WeightsError
        `pretrained` and the official file is not in `$TORCH_HOME/hub/checkpoints`, or it
        does not fit the architecture.
    """
    from ..preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
    from ..weights import apply_state_dict, hub_checkpoint, load_state_dict_file

    key = _canonical(name)
    if key is None:
        raise unknown_name("CORnet model", name, _MODELS, hint="the cornet source offers cornet_z, cornet_r, "
                           "cornet_rt and cornet_s")
    architecture, file_name = _MODELS[key]
    checkpoint = hub_checkpoint(key, file_name, f"{WEIGHT_URL}{file_name}") if pretrained else None  # before the (large) model is built
    module = architecture()
    if checkpoint is not None:
        apply_state_dict(module, load_state_dict_file(checkpoint), str(checkpoint))
    preprocessing = Preprocessing(resize=256, crop=224, mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation="bilinear")
    return Built(module, preprocessing, task="brain-inspired", top=top, class_scores=True)


def top(module: nn.Module, available) -> list[str]:
    """The area outputs V1, V2, V4, IT and the decoder's class scores, those of
    `available` in its order."""
    return [name for name in available if name in _TOP]
