"""Keyed pooling and interpolation: gathers over a keyed stencil table, then a max or a weighted sum."""

from __future__ import annotations

import torch
from torch import nn

from ..stencil import Stencil
from .tokens import from_tokens, gather_reduce, gathered, to_tokens


def keyed_max_pool2d(x: torch.Tensor, table: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """Max over each window. x (B, C, H, W) keyed; table (H_out*W_out, window) without outside taps.

    When gradients are recorded, each output's gradient goes to its window's first largest input
    only, as nn.MaxPool2d sends it (_KeyedMaxPool)."""
    tokens = to_tokens(x)
    if torch.is_grad_enabled() and x.requires_grad:
        return from_tokens(_KeyedMaxPool.apply(tokens, table), out_hw)
    return from_tokens(gather_reduce(tokens, table, False, lambda cols, start, stop: cols.amax(1)), out_hw)


class _KeyedMaxPool(torch.autograd.Function):
    """Keyed max pooling that keeps each output's winning tap. Its backward adds each output's
    gradient to that one input: a scatter of the outputs, where autograd through the gather would
    spread the max's gradient over every tap and scatter all of them."""

    @staticmethod
    def forward(ctx, tokens, table):
        values, winners = [], []
        for cols, _, _ in gathered(tokens, table, False):
            best, tap = cols.max(1)
            values.append(best)
            winners.append(tap)
        tap = winners[0] if len(winners) == 1 else torch.cat(winners)
        ctx.save_for_backward(tap, table)
        ctx.in_length = tokens.shape[1]
        out = values[0] if len(values) == 1 else torch.cat(values)
        return out.view(tokens.shape[0], table.shape[0], tokens.shape[2])

    @staticmethod
    def backward(ctx, grad_out):
        tap, table = ctx.saved_tensors
        batch, n_out, channels = grad_out.shape
        in_length = ctx.in_length
        # the flat batch row of each output's winning input: sample * L_in + table[j, tap]
        rows = table.long().repeat(batch, 1).gather(1, tap)
        rows += (torch.arange(batch, device=tap.device) * in_length).repeat_interleave(n_out).view(-1, 1)
        flat = rows * channels + torch.arange(channels, device=tap.device)
        grad_tokens = grad_out.new_zeros(batch * in_length * channels)
        grad_tokens.index_add_(0, flat.view(-1), grad_out.reshape(-1))
        return grad_tokens.view(batch, in_length, channels), None


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
