"""The choices of an extraction: how transformer tokens are reduced, the stored dtype.

Light (no torch): the command line reads these tables at start-up.
"""
from __future__ import annotations

from ..registry import Choice, Registry

__all__ = ["TOKENS", "DTYPES", "TIMES"]

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
