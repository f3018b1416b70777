"""Keyed convolution, deform backend: torchvision's deform_conv2d with integer offsets (the paper's form)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torchvision.ops import deform_conv2d

from ..stencil import Stencil

_OUTSIDE_ROW = -2  # a sampling row this far outside the map reads zero in deform_conv2d


def deform_offsets(
    keyed_index: np.ndarray,
    in_hw: tuple[int, int],
    out_hw: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
) -> np.ndarray:
    """Offsets (1, 2*kh*kw, H_out, W_out) that move each regular tap onto its keyed neighbour."""
    n_in = in_hw[0] * in_hw[1]
    target_y, target_x = np.divmod(keyed_index, in_hw[1])
    target_y = np.where(keyed_index == n_in, _OUTSIDE_ROW, target_y)
    target_x = np.where(keyed_index == n_in, 0, target_x)
    out_y, out_x = np.divmod(np.arange(out_hw[0] * out_hw[1]), out_hw[1])
    tap_y, tap_x = np.divmod(np.arange(kernel[0] * kernel[1]), kernel[1])
    base_y = out_y[:, None] * stride[0] - padding[0] + tap_y[None, :] * dilation[0]
    base_x = out_x[:, None] * stride[1] - padding[1] + tap_x[None, :] * dilation[1]
    offsets = np.stack([target_y - base_y, target_x - base_x], axis=2)  # (L_out, taps, 2)
    return offsets.reshape(out_hw[0], out_hw[1], -1).transpose(2, 0, 1)[None].astype(np.float32)


class KeyedDeformConv2d(nn.Module):
    """nn.Conv2d on keyed maps as a deformable convolution with fixed per-key offsets."""

    def __init__(self, conv: nn.Conv2d, stencil: Stencil, perm_in, perm_out, padding: tuple[int, int]) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.dilation = (
            conv.kernel_size,
            conv.stride,
            padding,
            conv.dilation,
        )
        self.weight = nn.Parameter(conv.weight.detach().clone())
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone())
        keyed = stencil.keyed_index(perm_in, perm_out)
        geometry = (self.kernel_size, self.stride, self.padding, self.dilation)
        offsets = torch.from_numpy(deform_offsets(keyed, stencil.in_hw, stencil.out_hw, *geometry))
        self.register_buffer("offsets", offsets, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offsets = self.offsets.expand(x.shape[0], -1, -1, -1)
        return deform_conv2d(x.contiguous(), offsets, self.weight, self.bias, self.stride, self.padding, self.dilation)
