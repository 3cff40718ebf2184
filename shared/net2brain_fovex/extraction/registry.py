"""The choices of an extraction: how transformer tokens are reduced, the stored dtype.

Light (no torch): the command line reads these tables at start-up.
"""
from __future__ import annotations

from ..registry import Choice, Registry

__all__ = ["TOKENS", "DTYPES", "TIMES", "FOREIGN_FORMATS"]

TOKENS: Registry[Choice] = Registry("token mode", [
    Choice("auto", "cls when the model has a class token, else mean"),
    Choice("cls", "the class token"),
    Choice("mean", "the mean of the patch tokens (class / distillation tokens excluded)"),
    Choice("all", "every token"),
])
DTYPES: Registry[Choice] = Registry("dtype", [
    Choice("float32", "single precision"),
    Choice("float16", "half precision (half the file size)"),
])
TIMES: Registry[Choice] = Registry("time mode", [
    Choice("mean", "video models: layer outputs averaged over their time axis"),
    Choice("all", "video models: the time axis kept"),
])
# the layouts of other tools' saved features that `net2brain convert` reads (extraction/foreign.py)
FOREIGN_FORMATS: Registry[Choice] = Registry("feature layout", [
    Choice("auto", "told apart by their files"),
    Choice("thingsvision", "THINGSvision: features.npy / .hdf5 (or features_01.npy ...) and file_names.txt"),
    Choice("net2brain-images", "Net2Brain: one <image>.npz per image, keyed by layer"),
    Choice("net2brain-layers", "Net2Brain's consolidate_per_layer: one <layer>.npz per layer, keyed by image"),
])
