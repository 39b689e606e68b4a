"""Export the torch models to ONNX: `python -m mmstream.models.onnx_export [--checkpoint P]
[--vocabulary P] name=path ...` (what `onnx_cache` runs in a child process, so the daemon never
imports torch).

Graphs: `image` (EfficientNet-Lite0 with its BatchNorms folded: [N,3,224,224] → embedding,
logits), `face` (mini-Xception: [N,1,64,64] → pooled features, logits), `pnet`/`rnet`/`onet`
(MTCNN; P-Net of any image size) and `fusion` (the 13 `FusionInputs` → the 12
`FusionOutputs`, its scene tags in the graph's metadata as `tags`, one per line). Every graph
takes any batch size. Bad input gets one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import io
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mmstream.errors import ModelError
from mmstream.models.fused_windows import FUSION_OUTPUTS
from mmstream.models.fusion import FusionInputs, FusionModel, load_checkpoint
from mmstream.models.labels import load_scene_vocabulary

OPSET = 17
FUSION_INPUTS: tuple[str, ...] = tuple(FusionInputs.__dataclass_fields__)


class _Forward(nn.Module):
    """A function of a module's weights as a module of its own, so they are exported."""

    def __init__(self, owner: nn.Module, forward: Callable[..., Any]) -> None:
        super().__init__()
        self.owner, self._forward = owner, forward

    def forward(self, *x: torch.Tensor) -> Any:
        return self._forward(*x)


def to_onnx(module: nn.Module, examples: tuple[torch.Tensor, ...], inputs: tuple[str, ...],
            outputs: tuple[str, ...], dynamic: dict[str, dict[int, str]] | None = None,
            metadata: dict[str, str] | None = None) -> bytes:
    """The module's graph as ONNX bytes; axis 0 of every input is the batch."""
    axes = {name: {0: "n"} for name in inputs} | (dynamic or {})
    graph = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's notes on its own future
        torch.onnx.export(module.eval(), examples, graph, dynamo=False, input_names=list(inputs),
                          output_names=list(outputs), dynamic_axes=axes, opset_version=OPSET)
    if not metadata:
        return graph.getvalue()
    import onnx

    model = onnx.load_from_string(graph.getvalue())
    for key, value in metadata.items():
        onnx.helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props},
                                            key: value})
    return model.SerializeToString()


def image_graph() -> bytes:
    from mmstream.models.efficientnet_lite import load_efficientnet_lite0
    from mmstream.models.folding import optimise_for_inference

    encoder = optimise_for_inference(load_efficientnet_lite0("cpu"))
    return to_onnx(_Forward(encoder, encoder.forward_both), (torch.zeros(1, 3, 224, 224),),
                   ("x",), ("embed", "logits"))


def face_net(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """mini-Xception in one pass: (pooled last block [B,128], logits [B,7])."""
    x = torch.relu(model.bn1(model.conv1(x)))
    x = torch.relu(model.bn2(model.conv2(x)))
    feats = model.blocks(x)
    return feats.mean(dim=(2, 3)), model.head(feats).mean(dim=(2, 3))


def face_graph() -> bytes:
    from mmstream.models.mini_xception import load_mini_xception

    model = load_mini_xception("cpu")
    return to_onnx(_Forward(model, lambda x: face_net(model, x)), (torch.zeros(1, 1, 64, 64),),
                   ("x",), ("embed", "logits"))


def mtcnn_graph(name: str) -> bytes:
    from mmstream.models.mtcnn_nets import load_mtcnn_nets

    net = getattr(load_mtcnn_nets(), name)
    if name == "pnet":
        return to_onnx(net, (torch.zeros(1, 3, 24, 32),), ("x",), ("offsets", "probs"),
                       dynamic={"x": {0: "n", 2: "h", 3: "w"}})
    size = 24 if name == "rnet" else 48
    outputs = ("offsets", "probs") if name == "rnet" else ("landmarks", "offsets", "probs")
    return to_onnx(net, (torch.zeros(2, 3, size, size),), ("x",), outputs)


def fusion_graph(checkpoint: Path | None, vocabulary: Path | None) -> bytes:
    fusion = FusionModel(load_scene_vocabulary(vocabulary))
    if checkpoint:
        load_checkpoint(fusion, checkpoint)

    def run(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = fusion(FusionInputs(*tensors))
        return tuple(getattr(out, name) for name in FUSION_OUTPUTS)

    generator = torch.Generator().manual_seed(0)
    examples = tuple(
        torch.rand((2, *shape), generator=generator) if dtype is None
        else torch.tensor([True, False]) for shape, dtype in _fusion_example_shapes())
    return to_onnx(_Forward(fusion, run), examples, FUSION_INPUTS, FUSION_OUTPUTS,
                   metadata={"tags": "\n".join(fusion.tags)})


def _fusion_example_shapes() -> list[tuple[tuple[int, ...], str | None]]:
    from mmstream.models import prosody, text_affect
    from mmstream.models.fusion import FACE_EMBED, IMAGE_EMBED

    widths = {"image_embed": (IMAGE_EMBED,), "image_probs": (1000,), "face_embed": (FACE_EMBED,),
              "face_logits": (7,), "voice_feats": (prosody.N_FEATURES,),
              "text_feats": (text_affect.N_FEATURES,)}
    return [(widths.get(name, ()), "bool" if name.endswith("_mask") else None)
            for name in FUSION_INPUTS]


def export(name: str, checkpoint: Path | None = None, vocabulary: Path | None = None) -> bytes:
    if name == "image":
        return image_graph()
    if name == "face":
        return face_graph()
    if name in ("pnet", "rnet", "onet"):
        return mtcnn_graph(name)
    if name == "fusion":
        return fusion_graph(checkpoint, vocabulary)
    raise ModelError(f"no ONNX export for {name!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmstream.models.onnx_export")
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--vocabulary", type=Path)
    parser.add_argument("graphs", nargs="+", help="name=path")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        for item in args.graphs:
            name, _, path = item.partition("=")
            Path(path).write_bytes(export(name, args.checkpoint, args.vocabulary))
    except (ModelError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
