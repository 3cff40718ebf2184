"""Small models for tests, loaded through the `file.py:function` factory route."""
from __future__ import annotations

import os
import time

import torch
from torch import nn


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.5)
        self.unused = nn.Linear(2, 2)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        x = self.pool(self.features(x)).flatten(1)
        return self.head(self.dropout(x))


class TinyViT(nn.Module):
    """Patch embedding, a class token and two transformer blocks: outputs (batch, tokens, dim)."""

    num_prefix_tokens = 1

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 8, stride=8)
        self.cls = nn.Parameter(torch.randn(1, 1, dim))
        self.blocks = nn.Sequential(*[nn.TransformerEncoderLayer(dim, 2, 32, batch_first=True, dropout=0.0) for _ in range(2)])
        self.head = nn.Linear(dim, 3)

    def forward(self, x):
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1)
        return self.head(self.blocks(tokens)[:, 0])


class SlowCNN(TinyCNN):
    """TinyCNN that sleeps in every forward pass, so a test can kill it mid-run: 0.15 s, or
    the seconds in the environment variable SLOW_CNN_SLEEP (tests/reliability/test_faults.py sets 0
    for the runs it does not kill; the weights and outputs are TinyCNN's either way)."""

    def forward(self, x):
        time.sleep(float(os.environ.get("SLOW_CNN_SLEEP", "0.15")))
        return super().forward(x)


class Features(nn.Module):
    """Returns a dict, as a scripted feature extractor does."""

    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.stage2 = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(8, 5)

    def forward(self, x) -> dict[str, torch.Tensor]:
        first = self.stage1(x)
        return {"stage1": first, "logits": self.head(self.stage2(first).flatten(1))}


def tiny_cnn() -> nn.Module:
    return TinyCNN()


def tiny_vit() -> nn.Module:
    return TinyViT()


def tiny_timm_vit() -> nn.Module:
    """timm's VisionTransformer at its smallest: 32 px, 4 x 4 patches of 8 px, a class token, 2 blocks."""
    import timm

    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=2,
                             num_heads=2, embed_dim=32, num_classes=5)


def slow_cnn() -> nn.Module:
    return SlowCNN()


def not_a_model():
    return 42
