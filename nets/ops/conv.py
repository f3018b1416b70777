"""Keyed convolution, gather backend: index table + GEMM in token layout."""

from __future__ import annotations

import torch
from torch import nn

from ..stencil import Stencil
from .tokens import from_tokens, gather_reduce, matmul_rows, to_tokens


def keyed_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    table: torch.Tensor,
    out_hw: tuple[int, int],
    groups: int = 1,
    zero_row: bool = True,
) -> torch.Tensor:
    """Convolution of a keyed map. x (B, C_in, H, W) keyed, weight (C_out, C_in/groups, kh, kw),
    table (H_out*W_out, kh*kw) of keyed input rows -> (B, C_out, H_out, W_out) keyed."""
    c_out, c_in_g, kh, kw = weight.shape
    taps = kh * kw
    c_in = c_in_g * groups
    if groups == 1:
        w = weight.permute(0, 2, 3, 1).reshape(c_out, taps * c_in)

        def reduce(cols: torch.Tensor, start: int, stop: int) -> torch.Tensor:
            return matmul_rows(cols.reshape(-1, taps * c_in), w, bias)

    elif groups == c_in == c_out:
        w = weight.reshape(c_out, taps).t()

        def reduce(cols: torch.Tensor, start: int, stop: int) -> torch.Tensor:
            y = (cols * w).sum(1)
            return y if bias is None else y + bias

    else:
        c_out_g = c_out // groups
        w = weight.view(groups, c_out_g, c_in_g, taps).permute(0, 3, 2, 1).reshape(groups, taps * c_in_g, c_out_g)

        def reduce(cols: torch.Tensor, start: int, stop: int) -> torch.Tensor:
            grouped = cols.view(-1, taps, groups, c_in_g).permute(2, 0, 1, 3).reshape(groups, -1, taps * c_in_g)
            y = torch.bmm(grouped, w).permute(1, 0, 2).reshape(-1, c_out)
            return y if bias is None else y + bias

    return from_tokens(gather_reduce(to_tokens(x), table, zero_row, reduce), out_hw)


class KeyedConv2d(nn.Module):
    """nn.Conv2d on keyed maps; the stencil's keyed table is fixed per key and shape."""

    def __init__(self, conv: nn.Conv2d, stencil: Stencil, perm_in, perm_out) -> None:
        super().__init__()
        self.groups = conv.groups
        self.out_hw = stencil.out_hw
        self.zero_row = stencil.reads_outside
        self.weight = nn.Parameter(conv.weight.detach().clone().contiguous(memory_format=torch.channels_last))
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone())
        table = torch.from_numpy(stencil.keyed_index(perm_in, perm_out))
        self.register_buffer("table", table, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return keyed_conv2d(x, self.weight, self.bias, self.table, self.out_hw, self.groups, self.zero_row)

    def extra_repr(self) -> str:
        c_out, c_in_g, kh, kw = self.weight.shape
        return f"{c_in_g * self.groups}, {c_out}, kernel=({kh}, {kw}), groups={self.groups}, out_hw={self.out_hw}"
