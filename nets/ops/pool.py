"""Keyed pooling and interpolation: gathers over a keyed stencil table, then a max or a weighted sum."""

from __future__ import annotations

import torch
from numba import njit, prange
from torch import nn

from ...base.threads import on_torch_threads
from ..stencil import Stencil
from .tokens import NUMBA_DTYPES, from_tokens, gather_reduce, gathered, to_tokens


def keyed_max_pool2d(x: torch.Tensor, table: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """Max over each window. x (B, C, H, W) keyed; table (H_out*W_out, window) without outside taps.

    When gradients are recorded, each output's gradient goes to its window's winning input only,
    as nn.MaxPool2d sends it (_KeyedMaxPool)."""
    tokens = to_tokens(x)
    if torch.is_grad_enabled() and x.requires_grad:
        return from_tokens(_KeyedMaxPool.apply(tokens, table), out_hw)
    return from_tokens(_max_and_winners(tokens, table)[0], out_hw)


def _max_and_winners(tokens: torch.Tensor, table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """tokens (B, L_in, C), table (L_out, window) -> the windows' maxima (B, L_out, C) and the tap
    of each that nn.MaxPool2d takes: the first largest (a window holding NaN gives NaN, and its
    gradient goes to one of its NaNs). Taps are uint8 from the CPU kernel for windows of up to 256
    taps (an eighth of int64's memory traffic), int64 otherwise."""
    batch, _, channels = tokens.shape
    if tokens.device.type == "cpu" and tokens.dtype in NUMBA_DTYPES:
        values = tokens.new_empty(batch, table.shape[0], channels)
        winners = torch.empty(values.shape, dtype=torch.uint8 if table.shape[1] <= 256 else torch.int64)
        _max_rows(tokens.detach().contiguous().numpy(), table.numpy(), values.numpy(), winners.numpy())
        return values, winners
    values, winners = [], []
    for cols, _, _ in gathered(tokens, table, False):
        best, tap = cols.max(1)
        values.append(best)
        winners.append(tap)
    shape = (batch, table.shape[0], channels)
    return torch.cat(values).view(shape), torch.cat(winners).view(shape)


class _KeyedMaxPool(torch.autograd.Function):
    """Keyed max pooling that keeps each output's winning tap. Its backward adds each output's
    gradient to that one input: a scatter of the outputs, where autograd through the gather would
    spread the max's gradient over every tap and scatter all of them."""

    @staticmethod
    def forward(ctx, tokens, table):
        values, winners = _max_and_winners(tokens, table)
        ctx.save_for_backward(winners, table)
        ctx.in_length = tokens.shape[1]
        return values

    @staticmethod
    def backward(ctx, grad_out):
        winners, table = ctx.saved_tensors
        batch, n_out, channels = grad_out.shape
        if grad_out.device.type == "cpu" and grad_out.dtype in NUMBA_DTYPES:
            grad_tokens = grad_out.new_empty(batch, ctx.in_length, channels)
            _max_rows_backward(grad_out.contiguous().numpy(), table.numpy(), winners.numpy(), grad_tokens.numpy())
            return grad_tokens, None
        grad_tokens = grad_out.new_zeros(batch, ctx.in_length, channels)
        # each output's winning input row within its sample: table[j, tap]
        rows = table.long().repeat(batch, 1).gather(1, winners.view(-1, channels)).view(batch, n_out, channels)
        if torch.bincount(table.view(-1)).max() > 1:  # overlapping windows: an input can win twice
            return grad_tokens.scatter_add_(1, rows, grad_out), None
        return grad_tokens.scatter_(1, rows, grad_out), None


@on_torch_threads
@njit(parallel=True, cache=True)
def _max_rows(tokens, table, values, winners):
    """values[b, j, c] = max over taps t of tokens[b, table[j, t], c]; winners[b, j, c] = the t
    nn.MaxPool2d picks (a larger value or a NaN replaces the one held)."""
    batch, n_out, channels = values.shape
    taps = table.shape[1]
    for task in prange(batch * n_out):
        b = task // n_out
        j = task - b * n_out
        best = values[b, j]
        winner = winners[b, j]
        first = tokens[b, table[j, 0]]
        for c in range(channels):
            best[c] = first[c]
            winner[c] = 0
        for t in range(1, taps):
            row = tokens[b, table[j, t]]
            for c in range(channels):
                v = row[c]
                if v > best[c] or v != v:
                    best[c] = v
                    winner[c] = t


@on_torch_threads
@njit(parallel=True, cache=True)
def _max_rows_backward(grad_out, table, winners, grad_tokens):
    """grad_tokens[b, table[j, winners[b, j, c]], c] += grad_out[b, j, c], over a grad_tokens each
    task zeroes first: one task per sample, so no two tasks write the same value (windows may
    overlap), and a sample's gradient (one map) stays in cache between zeroing and adding."""
    batch, n_out, channels = grad_out.shape
    for b in prange(batch):
        grad = grad_tokens[b]
        for i in range(grad.shape[0]):
            for c in range(channels):
                grad[i, c] = 0
        for j in range(n_out):
            for c in range(channels):
                grad[table[j, winners[b, j, c]], c] += grad_out[b, j, c]


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
