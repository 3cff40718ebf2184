"""The model sources, one module each: `torchvision`, `timm`, `open_clip`, `hf`, `cornet`,
`taskonomy`.

Each module offers three functions, registered in `net2brain_fovex.models.sources`:

* `entries()`: its catalogue, a tuple of `ModelEntry` (name, task, input, pretrained);
* `offers(name)`: whether it builds a model of that name (it may accept names its
  catalogue leaves out: any hub id of a supported architecture, any timm tag);
* `build(name, pretrained)`: a `Built` model (pretrained weights from the local caches
  only when the network is off, random ones otherwise) with its own preprocessing,
  default layers and the way a batch goes in.

A module imports its library only inside these functions, so listing the sources costs
nothing and a missing optional library is reported only when its source is used.
"""

__all__: list[str] = []  # the sources are reached through `net2brain_fovex.models.sources.SOURCES`
