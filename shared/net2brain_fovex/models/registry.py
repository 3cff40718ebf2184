"""The choices of models by name: tasks, resize modes and interpolations.

Light (no torch): the command line reads these tables at start-up.
"""
from __future__ import annotations

from ..registry import Choice, Registry

__all__ = ["TASKS", "RESIZE_MODES", "INTERPOLATIONS"]

TASKS: Registry[Choice] = Registry("task", [
    Choice("classification", "image classification (ImageNet and others)"),
    Choice("segmentation", "semantic and instance segmentation"),
    Choice("detection", "object and keypoint detection"),
    Choice("depth", "monocular depth estimation"),
    Choice("video", "action recognition on clips"),
    Choice("vision-language", "image towers of image-text models (CLIP, SigLIP)"),
    Choice("self-supervised", "self-supervised image encoders (DINO, MAE, ...)"),
    Choice("brain-inspired", "networks built after the primate ventral stream (CORnet)"),
    Choice("taskonomy", "encoders of the Taskonomy tasks (Zamir et al. 2018)"),
], hint="`list_models` shows each model's task")
RESIZE_MODES: Registry[Choice] = Registry("resize mode", [
    Choice("shorter", "the shorter side resized, the aspect ratio kept"),
    Choice("squash", "both sides resized to a square (or the model's height x width)"),
])
INTERPOLATIONS: Registry[Choice] = Registry("interpolation", [
    Choice("bilinear", "bilinear"),
    Choice("bicubic", "bicubic"),
    Choice("nearest", "nearest neighbour"),
])
