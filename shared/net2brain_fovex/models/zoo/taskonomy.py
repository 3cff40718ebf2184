"""taskonomy: the encoders of the 25 Taskonomy tasks (Zamir et al. 2018, "Taskonomy:
Disentangling Task Transfer Learning", CVPR), as released in PyTorch by the visualpriors
project (Sax et al. 2019, github.com/alexsax/midlevel-reps).

Every task has the same encoder (`taskonomy_encoder`): a ResNet-50 whose stages subsample
at their last block (TF-slim's ResNet v1: the first two stages halve the resolution, the
last two keep it), followed by a 3x3 convolution to 8 channels (`compress1`), batch norm
(`compress_bn`), ReLU (`relu1`) and a GroupNorm without parameters (`groupnorm`). A
256 x 256 image gives layer1 (256, 32, 32), layer2 (512, 16, 16), layer3 (1024, 16, 16),
layer4 (2048, 16, 16) and the representation, `groupnorm`'s output, (8, 16, 16) as
visualpriors' `representation_transform` returns it; other sizes scale by 1/16.
The module names are those of visualpriors' `TaskonomyEncoder`, so the released state
dicts load strictly.

Pretrained weights are read from `$TORCH_HOME/hub/checkpoints/<official file name>`
(`WEIGHT_FILES`, downloaded by visualpriors from `WEIGHT_URL`); they are never downloaded
here. A file is a torch-saved dict holding the state dict under "state_dict".

Preprocessing: visualpriors takes 256 x 256 images scaled to [-1, 1] (mean = std = 0.5)
and leaves the resizing to its user; here the shorter side is resized to 256 px and the
centre 256 x 256 cropped (bilinear). Taskonomy's own pipeline squashed its square frames
to 256 x 256: `resize_mode="squash"` does the same for other aspect ratios.

Colorization's encoder takes one channel, the CIELAB lightness scaled to [-1, 1]
(Taskonomy's colorization input): its `call` converts the RGB batch (`lightness`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..built import Built, ModelEntry

if TYPE_CHECKING:
    import torch

__all__ = ["TASK_NAMES", "WEIGHT_FILES", "WEIGHT_URL", "entries", "offers", "build", "taskonomy_encoder", "lightness"]

_PREFIX = "taskonomy_"

# The encoder files of visualpriors' TASKONOMY_PRETRAINED_WEIGHT_FILES (torch hub's
# name-hash convention; the hash is not checked here)
WEIGHT_FILES = {
    "autoencoding": "autoencoding_encoder-e35146c09253720e97c0a7f8ee4e896ac931f5faa1449df003d81e6089ac6307.pth",
    "colorization": "colorization_encoder-5ed817acdd28d13e443d98ad15ebe1c3059a3252396a2dff6a2090f6f86616a5.pth",
    "curvature": "curvature_encoder-3767cf5d06d9c6bca859631eb5a3c368d66abeb15542171b94188ffbe47d7571.pth",
    "denoising": "denoising_encoder-b64cab95af4a2c565066a7e8effaf37d6586c3b9389b47fff9376478d849db38.pth",
    "edge_texture": "edge_texture_encoder-be2d686a6a4dfebe968d16146a17176eba37e29f736d5cd9a714317c93718810.pth",
    "edge_occlusion": "edge_occlusion_encoder-5ac3f3e918131f61e01fe95e49f462ae2fc56aa463f8d353ca84cd4e248b9c08.pth",
    "egomotion": "egomotion_encoder-9aa647c34bf98f9e491e0b37890d77566f6ae35ccf41d9375c674511318d571c.pth",
    "fixated_pose": "fixated_pose_encoder-78cf321518abc16f9f4782b9e5d4e8f5d6966c373d951928a26f872e55297567.pth",
    "jigsaw": "jigsaw_encoder-0c2b342c9080f8713c178b04aa6c581ed3a0112fecaf78edc4c04e0a90516e39.pth",
    "keypoints2d": "keypoints2d_encoder-6b77695acff4c84091c484a7b128a1e28a7e9c36243eda278598f582cf667fe0.pth",
    "keypoints3d": "keypoints3d_encoder-7e3f1ec97b82ae30030b7ea4fec2dc606b71497d8c0335d05f0be3dc909d000d.pth",
    "nonfixated_pose": "nonfixated_pose_encoder-3433a600ca9ff384b9898e55d86a186d572c2ebbe4701489a373933e3cfd5b8b.pth",
    "point_matching": "point_matching_encoder-4bd2a6b2909d9998fabaf0278ab568f42f2b692a648e28555ede6c6cda5361f4.pth",
    "reshading": "reshading_encoder-de456246e171dc8407fb2951539aa60d75925ae0f1dbb43f110b7768398b36a6.pth",
    "depth_zbuffer": "depth_zbuffer_encoder-cc343a8ed622fd7ee3ce54398be8682bbbbfb5d11fa80e8d03a56a5ae4e11b09.pth",
    "depth_euclidean": "depth_euclidean_encoder-88f18d41313de7dbc88314a7f0feec3023047303d94d73eb8622dc40334ef149.pth",
    "normal": "normal_encoder-f5e2c7737e4948e3b2a822f584892c342eaabbe66661576ba50db7cdd40561c5.pth",
    "room_layout": "room_layout_encoder-1e1662f43b834261464b1825227a04efba59b50cc8883bee9adc3ddafd4796c1.pth",
    "segment_unsup25d": "segment_unsup25d_encoder-7d12d2500c18c003ffc23943214f5dfd74932f0e3d03dde2c3a81ebc406e31a0.pth",
    "segment_unsup2d": "segment_unsup2d_encoder-b679053a920e8bcabf0cd454606098ae85341e054080f2be29473971d4265964.pth",
    "segment_semantic": "segment_semantic_encoder-bb3007244520fc89cd111e099744a22b1e5c98cd83ed3f116fbff6376d220127.pth",
    "class_object": "class_object_encoder-4a4e42dad58066039a0d2f9d128bb32e93a7e4aa52edb2d2a07bcdd1a6536c18.pth",
    "class_scene": "class_scene_encoder-ad85764467cddafd98211313ceddebb98adf2a6bee2cedfe0b922a37ae65eaf8.pth",
    "inpainting": "inpainting_encoder-bf96fbaaea9268a820a19a1d13dbf6af31798f8983c6d9203c00fab2d236a142.pth",
    "vanishing_point": "vanishing_point_encoder-afd2ae9b71d46a54efc5231b3e38ebc3e35bfab78cb0a78d9b75863a240b19a8.pth",
}
WEIGHT_URL = "https://github.com/alexsax/visual-prior/raw/networks/assets/pytorch/{file}"
# the 25 tasks, in the order of visualpriors' `viable_feature_tasks`
TASK_NAMES = tuple(WEIGHT_FILES)
_TOP = ("layer1", "layer2", "layer3", "layer4", "groupnorm")

# sRGB (D65) to CIE Y, the row of the sRGB-to-XYZ matrix that lightness needs
_LUMINANCE = (0.212671, 0.715160, 0.072169)


def entries() -> tuple[ModelEntry, ...]:
    """The 25 encoders, `taskonomy_<task>` in visualpriors' order of tasks."""
    return tuple(ModelEntry(_PREFIX + task, "taskonomy", "image", True) for task in TASK_NAMES)


def offers(name: str) -> bool:
    """Whether `name` is `taskonomy_<task>` for one of `TASK_NAMES`."""
    return name.startswith(_PREFIX) and name[len(_PREFIX):] in WEIGHT_FILES


def build(name: str, pretrained: bool) -> Built:
    """The encoder of a task with its released weights (`pretrained`) or random ones.

    Parameters
    ----------
    name : str
        `taskonomy_<task>`, a name of `entries()`.
    pretrained : bool
        Read the task's file from `$TORCH_HOME/hub/checkpoints` (never downloaded).

    Returns
    -------
    Built
        Default layers layer1..layer4 and `groupnorm` (the 8-channel representation);
        not class scores.

    Raises
    ------
    UnknownNameError
        A name that is not one of the 25 encoders.
    WeightsError
        The weights file is missing (the message names its URL and place) or does not
        fit the encoder.
    """
    from ..preprocessing import Preprocessing

    task = _task(name)
    module = taskonomy_encoder(in_channels=1 if task == "colorization" else 3)
    if pretrained:
        _load_pretrained(module, name, task)
    return Built(
        module,
        Preprocessing(resize=256, crop=256, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
        task="taskonomy",
        input="image",
        call=_lightness_call if task == "colorization" else None,
        top=_top,
        class_scores=False,
    )


def taskonomy_encoder(in_channels: int = 3) -> torch.nn.Module:
    """The Taskonomy encoder with random weights, named as visualpriors' `TaskonomyEncoder`.

    Parameters
    ----------
    in_channels : int, default 3
        3 for RGB; 1 for colorization's lightness input.

    Returns
    -------
    torch.nn.Sequential
        (B, in_channels, H, W) -> (B, 8, H / 16, W / 16) for sides that are multiples of
        16: conv1, bn1, relu, maxpool, layer1..layer4 (3, 4, 6, 3 bottleneck blocks),
        compress1, compress_bn, relu1, groupnorm.
    """
    from collections import OrderedDict

    from torch import nn

    return nn.Sequential(OrderedDict([
        # visualpriors pads by 3 with zeros before an unpadded convolution: the same as padding=3
        ("conv1", nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)),
        ("bn1", nn.BatchNorm2d(64)),
        ("relu", nn.ReLU(inplace=True)),
        ("maxpool", nn.MaxPool2d(kernel_size=3, stride=2, padding=0, ceil_mode=True)),
        ("layer1", _stage(64, 64, blocks=3, stride=2)),
        ("layer2", _stage(256, 128, blocks=4, stride=2)),
        ("layer3", _stage(512, 256, blocks=6, stride=1)),
        ("layer4", _stage(1024, 512, blocks=3, stride=1)),
        ("compress1", nn.Conv2d(2048, 8, kernel_size=3, stride=1, padding=1, bias=False)),
        ("compress_bn", nn.BatchNorm2d(8)),
        ("relu1", nn.ReLU(inplace=True)),
        ("groupnorm", nn.GroupNorm(8, 8, affine=False)),
    ]))


def lightness(batch: torch.Tensor) -> torch.Tensor:
    """CIELAB lightness L* of an RGB batch, as Taskonomy's colorization input.

    Parameters
    ----------
    batch : tensor (B, 3, H, W)
        sRGB scaled to [-1, 1] (the preprocessing of these weights: mean = std = 0.5;
        other `mean` / `std` overrides are not undone).

    Returns
    -------
    tensor (B, 1, H, W)
        L* (D65 white) mapped from [0, 100] to [-1, 1], as skimage's `rgb2lab` followed
        by Taskonomy's rescaling.
    """
    rgb = (batch * 0.5 + 0.5).clamp(0, 1)
    linear = ((rgb + 0.055) / 1.055) ** 2.4
    linear = linear.where(rgb > 0.04045, rgb / 12.92)
    weights = batch.new_tensor(_LUMINANCE).view(1, 3, 1, 1)
    y = (linear * weights).sum(dim=1, keepdim=True)
    f = y.clamp(min=0) ** (1 / 3)
    f = f.where(y > 0.008856, 7.787 * y + 16 / 116)
    return ((116 * f - 16).clamp(0, 100) / 100) * 2 - 1


def _task(name: str) -> str:
    from ...errors import unknown_name

    if not offers(name):
        raise unknown_name("taskonomy model", name, [entry.name for entry in entries()],
                           hint="`list_models` lists them")
    return name[len(_PREFIX):]


def _stage(inplanes: int, planes: int, *, blocks: int, stride: int):
    """A stage of bottleneck blocks; the first projects the shortcut with a 1x1
    convolution when the width changes, the last subsamples (TF-slim's ResNet v1)."""
    from torch import nn
    from torchvision.models.resnet import Bottleneck

    width = planes * Bottleneck.expansion
    projection = None
    if inplanes != width:
        projection = nn.Sequential(nn.Conv2d(inplanes, width, kernel_size=1, bias=False), nn.BatchNorm2d(width))
    layers = [Bottleneck(inplanes, planes, downsample=projection)]
    layers += [Bottleneck(width, planes) for _ in range(blocks - 2)]
    # the last block strides its 3x3 convolution and takes every stride-th shortcut value
    subsample = nn.Sequential(nn.MaxPool2d(kernel_size=1, stride=stride)) if stride != 1 else None
    layers.append(Bottleneck(width, planes, stride=stride, downsample=subsample))
    return nn.Sequential(*layers)


def _load_pretrained(module, name: str, task: str) -> None:
    """Load the task's released file from the torch hub cache into `module`."""
    import torch

    from ..weights import apply_state_dict, hub_checkpoint, load_state_dict_file

    cached = hub_checkpoint(name, WEIGHT_FILES[task], WEIGHT_URL.format(file=WEIGHT_FILES[task]))
    state = load_state_dict_file(cached)
    # torch's own loader accepts state dicts written before batch norm counted its batches
    # (the counters do nothing in evaluation); the strict key check would not
    for key in module.state_dict():
        if key.endswith(".num_batches_tracked") and key not in state:
            state[key] = torch.tensor(0)
    apply_state_dict(module, state, str(cached))


def _lightness_call(module, batch):
    """Colorization's encoder on the lightness of an RGB batch."""
    return module(lightness(batch))


def _top(module, available) -> list[str]:
    """The four stages and the representation (`groupnorm`)."""
    return list(_TOP)
