"""Stencils of the spatial ops the converter keys, read from torch modules and functional calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .stencil import (
    F_PAD_MODES,
    Stencil,
    adaptive_axis,
    avg_pool_axis,
    combine,
    conv_axis,
    conv_transpose_axis,
    fill_outside_with_valid,
    interpolate_axis,
    shift_axis,
)

INTERPOLATION_MODES = ("nearest", "nearest-exact", "bilinear")


class UnsupportedSpatialOp(ValueError):
    """The op is spatial but one of its settings has no keyed form here."""


@dataclass(frozen=True)
class SpatialOp:
    """What to build for one spatial op: a keyed conv, a keyed max, a keyed weighted sum, or a
    pixel (un)shuffle, which has no stencil: it moves values between channels and positions."""

    kind: str  # "conv" | "max" | "sum" | "pixel_shuffle" | "pixel_unshuffle"
    stencil: Stencil | None
    conv: nn.Conv2d | None = None  # a transposed convolution comes as the Conv2d over its stencil
    conv_padding: tuple[int, int] = (0, 0)
    transposed: bool = False
    factor: int = 1  # pixel (un)shuffle


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


def conv_transpose_op(conv: nn.ConvTranspose2d, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> SpatialOp:
    """A transposed convolution as a convolution over its own stencil: kernel element (ky, kx)
    carries weight[c_in, c_out, ky, kx] from input i to output i*stride - padding + k*dilation
    (output_padding only makes the output longer, which out_hw already says)."""
    if conv.padding_mode != "zeros":
        raise UnsupportedSpatialOp(f"transposed convolution with padding_mode {conv.padding_mode!r}")
    kernel, stride, dilation, pad = conv.kernel_size, conv.stride, conv.dilation, conv.padding
    rows = conv_transpose_axis(in_hw[0], out_hw[0], kernel[0], stride[0], pad[0], dilation[0])
    cols = conv_transpose_axis(in_hw[1], out_hw[1], kernel[1], stride[1], pad[1], dilation[1])
    groups, c_in, c_out = conv.groups, conv.in_channels, conv.out_channels
    equivalent = nn.Conv2d(c_in, c_out, kernel, groups=groups, bias=conv.bias is not None)
    weight = conv.weight.detach().view(groups, c_in // groups, c_out // groups, *kernel).transpose(1, 2)
    equivalent.weight.data.copy_(weight.reshape(c_out, c_in // groups, *kernel))
    if conv.bias is not None:
        equivalent.bias.data.copy_(conv.bias.detach())
    equivalent.to(conv.weight.device, conv.weight.dtype)
    return SpatialOp("conv", combine(rows, cols, in_hw), conv=equivalent, transposed=True)


def pad_op(in_hw, out_hw, pad, mode="constant", value=None) -> SpatialOp:
    """F.pad of the last two dims (left, right, top, bottom), in any of its modes; negative pads crop."""
    pad = list(pad)
    if len(pad) > 4 and any(pad[4:]):
        raise UnsupportedSpatialOp("padding other dims than height and width")
    if mode not in F_PAD_MODES:
        raise UnsupportedSpatialOp(f"padding mode {mode!r} has no keyed form; use one of {tuple(F_PAD_MODES)}")
    if mode == "constant" and value:
        raise UnsupportedSpatialOp("constant padding with a value other than 0")
    left, top = pad[0], pad[2] if len(pad) > 2 else 0
    rows = shift_axis(in_hw[0], out_hw[0], top, F_PAD_MODES[mode])
    cols = shift_axis(in_hw[1], out_hw[1], left, F_PAD_MODES[mode])
    return SpatialOp("sum", combine(rows, cols, in_hw))


def pixel_shuffle_op(in_hw, out_hw, upscale_factor: int) -> SpatialOp:
    return SpatialOp("pixel_shuffle", None, factor=upscale_factor)


def pixel_unshuffle_op(in_hw, out_hw, downscale_factor: int) -> SpatialOp:
    return SpatialOp("pixel_unshuffle", None, factor=downscale_factor)


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
    if isinstance(module, nn.ConvTranspose2d):
        return conv_transpose_op(module, in_hw, out_hw)
    if isinstance(module, nn.PixelShuffle):
        return pixel_shuffle_op(in_hw, out_hw, module.upscale_factor)
    if isinstance(module, nn.PixelUnshuffle):
        return pixel_unshuffle_op(in_hw, out_hw, module.downscale_factor)
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
    F.pad: pad_op,
    F.pixel_shuffle: pixel_shuffle_op,
    F.pixel_unshuffle: pixel_unshuffle_op,
}


def conv2d_function_op(in_hw, out_hw, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> SpatialOp:
    """F.conv2d with constant weights: keyed as the nn.Conv2d holding them would be."""
    c_out, c_in_g, *kernel = weight.shape
    conv = nn.Conv2d(c_in_g * groups, c_out, kernel, stride, padding, dilation, groups, bias is not None)
    return conv_op(_holding(conv, weight, bias), in_hw, out_hw)


def conv_transpose2d_function_op(
    in_hw, out_hw, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1
) -> SpatialOp:
    """F.conv_transpose2d with constant weights: keyed as the nn.ConvTranspose2d holding them would be."""
    c_in, c_out_g, *kernel = weight.shape
    conv = nn.ConvTranspose2d(
        c_in, c_out_g * groups, kernel, stride, padding, output_padding, groups, bias is not None, dilation
    )
    return conv_transpose_op(_holding(conv, weight, bias), in_hw, out_hw)


def _holding(conv: nn.Module, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
    conv.to(weight.device, weight.dtype)
    conv.weight.data.copy_(weight.detach())
    if bias is not None:
        conv.bias.data.copy_(bias.detach())
    return conv


# Functional convolutions: the builder takes (in_hw, out_hw, weight, bias, *the other call args).
CONV_FUNCTIONS = {F.conv2d: conv2d_function_op, F.conv_transpose2d: conv_transpose2d_function_op}
# Adaptive pooling to 1x1 is permutation invariant and runs unchanged.
GLOBAL_POOL_FUNCTIONS = frozenset({F.adaptive_avg_pool2d, F.adaptive_max_pool2d})
# Interpolation may take its size from another tensor's shape: the traced shape decides it.
SIZE_FROM_SHAPE_FUNCTIONS = frozenset({F.interpolate, F.upsample})
