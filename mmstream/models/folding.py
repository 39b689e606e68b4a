"""EfficientNet-Lite0 for inference with the same outputs up to float rounding: every BatchNorm
folded into its convolution, and stride-1 padding done inside the convolution."""

from __future__ import annotations

import types

import torch

from mmstream.models.efficientnet_lite import EfficientNetLite0


def _fold(parent: torch.nn.Module, conv_name: str, bn_name: str) -> None:
    """Fold an eval-mode BatchNorm into the convolution before it (y = s·conv(x) + b)."""
    conv, bn = getattr(parent, conv_name), getattr(parent, bn_name)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale
    conv.weight = torch.nn.Parameter(conv.weight * scale[:, None, None, None])
    conv.bias = torch.nn.Parameter(shift if conv.bias is None else conv.bias * scale + shift)
    setattr(parent, bn_name, torch.nn.Identity())


def _pad_in_conv(conv: torch.nn.Conv2d) -> None:
    """A stride-1 odd-kernel TF 'same' conv pads symmetrically: let the convolution do it
    instead of materialising a padded copy of the activation first."""
    if conv.stride == (1, 1) and conv.kernel_size[0] % 2 == 1:
        conv.padding = (conv.kernel_size[0] // 2, conv.kernel_size[1] // 2)
        conv.forward = types.MethodType(torch.nn.Conv2d.forward, conv)  # type: ignore[method-assign]


def optimise_for_inference(encoder: EfficientNetLite0) -> EfficientNetLite0:
    """EfficientNet-Lite0 for inference, same outputs up to float rounding: every BatchNorm
    folded into its convolution and stride-1 padding done inside the convolution, which saves
    two full passes over most activations (they dominate at large batch sizes)."""
    with torch.no_grad():
        _fold(encoder, "stem_conv", "stem_bn")
        _fold(encoder, "head_conv", "head_bn")
        for block in encoder.blocks:
            if block.expand_conv is not None:
                _fold(block, "expand_conv", "expand_bn")
            _fold(block, "dw_conv", "dw_bn")
            _fold(block, "project_conv", "project_bn")
            _pad_in_conv(block.dw_conv)
    return encoder
