"""Stencils of the spatial ops the converter keys, read from torch modules and functional calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch.nn.functional as F
from torch import nn

from .stencil import (
    Stencil,
    adaptive_axis,
    avg_pool_axis,
    combine,
    conv_axis,
    fill_outside_with_valid,
    interpolate_axis,
)

INTERPOLATION_MODES = ("nearest", "nearest-exact", "bilinear")


class UnsupportedSpatialOp(ValueError):
    """The op is spatial but one of its settings has no keyed form here."""


@dataclass(frozen=True)
class SpatialOp:
    """What to build for one spatial op: a keyed conv, a keyed max or a keyed weighted sum."""

    kind: str  # "conv" | "max" | "sum"
    stencil: Stencil
    conv: nn.Conv2d | None = None
    conv_padding: tuple[int, int] = (0, 0)


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, list | tuple):
        return (value[0], value[0]) if len(value) == 1 else (value[0], value[1])
    return (value, value)


def conv_op(conv: nn.Conv2d, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> SpatialOp:
    kernel, stride, dilation = conv.kernel_size, conv.stride, conv.dilation
    if conv.padding == "valid":
        pad = (0, 0)
    elif conv.padding == "same":
        pad = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation, strict=True))
    else:
        pad = conv.padding
    rows = conv_axis(in_hw[0], out_hw[0], kernel[0], stride[0], pad[0], dilation[0], conv.padding_mode)
    cols = conv_axis(in_hw[1], out_hw[1], kernel[1], stride[1], pad[1], dilation[1], conv.padding_mode)
    return SpatialOp("conv", combine(rows, cols, in_hw), conv=conv, conv_padding=pad)


def max_pool_op(in_hw, out_hw, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    if return_indices:
        raise UnsupportedSpatialOp("max pooling with return_indices=True (indices into a keyed map) is not supported")
    kernel, pad, dil = _pair(kernel_size), _pair(padding), _pair(dilation)
    step = kernel if stride is None or stride == [] or stride == () else _pair(stride)
    rows = conv_axis(in_hw[0], out_hw[0], kernel[0], step[0], pad[0], dil[0], "zeros")
    cols = conv_axis(in_hw[1], out_hw[1], kernel[1], step[1], pad[1], dil[1], "zeros")
    return SpatialOp("max", fill_outside_with_valid(combine(rows, cols, in_hw)))


def avg_pool_op(
    in_hw,
    out_hw,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
):
    kernel, pad = _pair(kernel_size), _pair(padding)
    step = kernel if stride is None or stride == [] or stride == () else _pair(stride)
    rows = avg_pool_axis(in_hw[0], out_hw[0], kernel[0], step[0], pad[0], count_include_pad)
    cols = avg_pool_axis(in_hw[1], out_hw[1], kernel[1], step[1], pad[1], count_include_pad)
    stencil = combine(rows, cols, in_hw)
    if divisor_override:
        weight = (stencil.index >= 0) / float(divisor_override)
        stencil = Stencil(stencil.in_hw, stencil.out_hw, stencil.index, weight)
    return SpatialOp("sum", stencil)


def adaptive_op(in_hw, out_hw, mode: str) -> SpatialOp:
    stencil = combine(adaptive_axis(in_hw[0], out_hw[0]), adaptive_axis(in_hw[1], out_hw[1]), in_hw)
    if mode == "max":
        return SpatialOp("max", fill_outside_with_valid(stencil))
    return SpatialOp("sum", stencil)


def interpolate_op(
    in_hw,
    out_hw,
    size=None,
    scale_factor=None,
    mode="nearest",
    align_corners=None,
    recompute_scale_factor=None,
    antialias=False,
):
    if mode not in INTERPOLATION_MODES:
        raise UnsupportedSpatialOp(f"interpolation mode {mode!r} has no keyed form; use one of {INTERPOLATION_MODES}")
    if antialias:
        raise UnsupportedSpatialOp("antialiased interpolation has no keyed form")
    scales = (None, None) if scale_factor is None or recompute_scale_factor else _pair(scale_factor)
    rows = interpolate_axis(in_hw[0], out_hw[0], mode, align_corners, scales[0])
    cols = interpolate_axis(in_hw[1], out_hw[1], mode, align_corners, scales[1])
    return SpatialOp("sum", combine(rows, cols, in_hw))


def module_op(module: nn.Module, in_hw, out_hw) -> SpatialOp | None:
    """The spatial op a module performs, or None if the module is not a spatial op."""
    if getattr(module, "return_indices", False):
        raise UnsupportedSpatialOp("pooling with return_indices=True (indices into a keyed map) is not supported")
    if isinstance(module, nn.Conv2d):
        return conv_op(module, in_hw, out_hw)
    if isinstance(module, nn.MaxPool2d):
        return max_pool_op(
            in_hw,
            out_hw,
            module.kernel_size,
            module.stride,
            module.padding,
            module.dilation,
            module.ceil_mode,
        )
    if isinstance(module, nn.AvgPool2d):
        return avg_pool_op(
            in_hw,
            out_hw,
            module.kernel_size,
            module.stride,
            module.padding,
            module.ceil_mode,
            module.count_include_pad,
            module.divisor_override,
        )
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return adaptive_op(in_hw, out_hw, "avg")
    if isinstance(module, nn.AdaptiveMaxPool2d):
        return adaptive_op(in_hw, out_hw, "max")
    if isinstance(module, nn.Upsample):
        return interpolate_op(
            in_hw,
            out_hw,
            module.size,
            module.scale_factor,
            module.mode,
            module.align_corners,
            module.recompute_scale_factor,
        )
    return None


def _adaptive_max(in_hw, out_hw, output_size=None, return_indices=False):
    if return_indices:
        raise UnsupportedSpatialOp("adaptive max pooling with return_indices=True is not supported")
    return adaptive_op(in_hw, out_hw, "max")


def _adaptive_avg(in_hw, out_hw, output_size=None):
    return adaptive_op(in_hw, out_hw, "avg")


# Functional spatial ops: the builder takes (in_hw, out_hw, *call args after the input).
FUNCTION_OPS = {
    F.max_pool2d: max_pool_op,
    F.avg_pool2d: avg_pool_op,
    F.adaptive_avg_pool2d: _adaptive_avg,
    F.adaptive_max_pool2d: _adaptive_max,
    F.interpolate: interpolate_op,
    F.upsample: interpolate_op,
}

# Adaptive pooling to 1x1 is permutation invariant and runs unchanged.
GLOBAL_POOL_FUNCTIONS = frozenset({F.adaptive_avg_pool2d, F.adaptive_max_pool2d})
# Interpolation may take its size from another tensor's shape: the traced shape decides it.
SIZE_FROM_SHAPE_FUNCTIONS = frozenset({F.interpolate, F.upsample})
