"""Keyed pooling and interpolation: gathers over a keyed stencil table, then a max or a weighted sum."""

from __future__ import annotations

import torch
from torch import nn

from ..stencil import Stencil
from .tokens import from_tokens, gather_reduce, to_tokens


def keyed_max_pool2d(x: torch.Tensor, table: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """Max over each window. x (B, C, H, W) keyed; table (H_out*W_out, window) without outside taps."""
    return from_tokens(gather_reduce(to_tokens(x), table, False, lambda cols, start, stop: cols.amax(1)), out_hw)


def keyed_weighted_sum2d(
    x: torch.Tensor, table: torch.Tensor, weight: torch.Tensor, out_hw: tuple[int, int]
) -> torch.Tensor:
    """Weighted sum over each stencil (average pooling, interpolation). weight (H_out*W_out, taps)."""
    tokens = to_tokens(x)
    per_row = weight.unsqueeze(0).expand(tokens.shape[0], -1, -1).reshape(-1, weight.shape[1], 1)

    def reduce(cols: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        return (cols * per_row[start:stop]).sum(1)

    return from_tokens(gather_reduce(tokens, table, True, reduce), out_hw)


class KeyedMaxPool2d(nn.Module):
    def __init__(self, stencil: Stencil, perm_in, perm_out) -> None:
        super().__init__()
        self.out_hw = stencil.out_hw
        self.register_buffer("table", torch.from_numpy(stencil.keyed_index(perm_in, perm_out)), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return keyed_max_pool2d(x, self.table, self.out_hw)

    def extra_repr(self) -> str:
        return f"window={self.table.shape[1]}, out_hw={self.out_hw}"


class KeyedWeightedSum2d(nn.Module):
    """Average pooling (fixed or adaptive) and nearest/bilinear interpolation on keyed maps."""

    def __init__(self, stencil: Stencil, perm_in, perm_out, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.out_hw = stencil.out_hw
        self.register_buffer("table", torch.from_numpy(stencil.keyed_index(perm_in, perm_out)), persistent=False)
        weight = torch.from_numpy(stencil.keyed_weight(perm_out)).to(dtype)
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return keyed_weighted_sum2d(x, self.table, self.weight.to(x.dtype), self.out_hw)

    def extra_repr(self) -> str:
        return f"taps={self.table.shape[1]}, out_hw={self.out_hw}"
