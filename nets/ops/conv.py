"""Keyed convolution, gather backend: index table + GEMM in token layout."""

from __future__ import annotations

import torch
from torch import nn

from ..stencil import Stencil
from .depthwise import keyed_depthwise_conv
from .tokens import NUMBA_DTYPES, from_tokens, gather_reduce, gathered, matmul_rows, to_tokens, transposed_table


def keyed_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    table: torch.Tensor,
    out_hw: tuple[int, int],
    groups: int = 1,
    zero_row: bool = True,
    transposed: torch.Tensor | None = None,
) -> torch.Tensor:
    """Convolution of a keyed map (depthwise ones fused on the CPU). x (B, C_in, H, W) keyed,
    weight (C_out, C_in/groups, kh, kw), table (H_out*W_out, kh*kw) of keyed input rows
    -> (B, C_out, H_out, W_out) keyed. With `transposed` (tokens.transposed_table of `table`), a
    convolution of groups 1 runs its backward as gathers and GEMMs (_KeyedGemmConv)."""
    c_out, c_in_g, kh, kw = weight.shape
    taps = kh * kw
    c_in = c_in_g * groups
    if groups == 1:
        w = weight.permute(0, 2, 3, 1).reshape(c_out, taps * c_in)
        if transposed is not None:
            return from_tokens(_KeyedGemmConv.apply(to_tokens(x), w, bias, table, transposed, zero_row), out_hw)
        tracked = x.requires_grad or w.requires_grad or (bias is not None and bias.requires_grad)
        if not (torch.is_grad_enabled() and tracked):
            return from_tokens(_gemm_rows(to_tokens(x), w, bias, table, zero_row), out_hw)

        def reduce(cols: torch.Tensor, start: int, stop: int) -> torch.Tensor:
            return matmul_rows(cols.flatten(1), w, bias)

    elif groups == c_in == c_out:
        w = weight.reshape(c_out, taps).t()
        if x.device.type == "cpu" and x.dtype in NUMBA_DTYPES:  # one fused kernel (depthwise.py)
            return from_tokens(keyed_depthwise_conv(to_tokens(x), w, bias, table), out_hw)

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


class _KeyedGemmConv(torch.autograd.Function):
    """A keyed convolution of groups 1 whose backward scatters nothing. Forward: gather the taps,
    one GEMM. Backward: the output gradient gathered over the transposed table, G[i, t] =
    grad_out[transposed[i, t]] (zero where tap t of no output reads input row i), gives both
    gradients: the input's is G @ w with the taps transposed (itself a keyed convolution), the
    weight's is G^T @ x, so one gather serves both. Autograd through the forward's gathers would
    instead keep every gathered chunk and add the taps' gradients back one index at a time."""

    @staticmethod
    def forward(ctx, tokens, w, bias, table, transposed, zero_row):
        ctx.save_for_backward(tokens, w, table, transposed)
        ctx.zero_row = zero_row
        return _gemm_rows(tokens, w, bias, table, zero_row)

    @staticmethod
    def backward(ctx, grad_out):
        tokens, w, table, transposed = ctx.saved_tensors
        c_out, width = w.shape
        taps = table.shape[1]
        c_in = width // taps
        grad_out = grad_out.contiguous()
        needs_tokens, needs_w, needs_bias = ctx.needs_input_grad[:3]
        grad_tokens = grad_w = grad_bias = None
        if needs_tokens or (needs_w and c_out <= c_in):  # gather the output gradient: the smaller rows
            w_t = w.view(c_out, taps, c_in).permute(2, 1, 0).reshape(c_in, taps * c_out)
            rows = tokens.reshape(-1, c_in)
            grad_w_t = w.new_zeros(taps * c_out, c_in) if needs_w else None
            grad_tokens = tokens.new_empty(tokens.shape) if needs_tokens else None
            for cols, start, stop in gathered(grad_out, transposed, True):
                cols = cols.view(cols.shape[0], taps * c_out)
                if needs_tokens:
                    matmul_rows(cols, w_t, None, out=grad_tokens.view(-1, c_in)[start:stop])
                if needs_w:
                    grad_w_t.addmm_(cols.t(), rows[start:stop])
            if needs_w:
                grad_w = grad_w_t.view(taps, c_out, c_in).transpose(0, 1).reshape(c_out, width)
        elif needs_w:  # the input's rows are the smaller: gather them as the forward did
            grad_rows = grad_out.view(-1, c_out)
            grad_w_t = w.new_zeros(width, c_out)
            for cols, start, stop in gathered(tokens, table, ctx.zero_row):
                grad_w_t.addmm_(cols.view(cols.shape[0], width).t(), grad_rows[start:stop])
            grad_w = grad_w_t.t()
        if needs_bias:
            grad_bias = grad_out.sum((0, 1))
        return grad_tokens, grad_w, grad_bias, None, None, None


def _gemm_rows(
    tokens: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None, table: torch.Tensor, zero_row: bool
) -> torch.Tensor:
    """The gathered taps of each output row times w: tokens (B, L_in, C), w (C_out, taps*C),
    table (L_out, taps) -> (B, L_out, C_out), each chunk's GEMM writing its own output rows.
    Not for autograd to record (a GEMM into given rows has no gradient)."""
    out = tokens.new_empty(tokens.shape[0], table.shape[0], w.shape[0])
    rows = out.view(-1, w.shape[0])
    for cols, start, stop in gathered(tokens, table, zero_row):
        matmul_rows(cols.flatten(1), w, bias, out=rows[start:stop])
    return out


class KeyedConv2d(nn.Module):
    """nn.Conv2d on keyed maps; the stencil's keyed table is fixed per key and shape."""

    def __init__(self, conv: nn.Conv2d, stencil: Stencil, perm_in, perm_out) -> None:
        super().__init__()
        self.groups = conv.groups
        self.out_hw = stencil.out_hw
        self.zero_row = stencil.reads_outside
        self.weight = nn.Parameter(conv.weight.detach().clone().contiguous(memory_format=torch.channels_last))
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone())
        self.in_length = stencil.in_hw[0] * stencil.in_hw[1]
        table = torch.from_numpy(stencil.keyed_index(perm_in, perm_out))
        self.register_buffer("table", table, persistent=False)
        # built at the first forward that records gradients (training only); None: not built yet
        self.register_buffer("transposed", None, persistent=False)
        self.transposable = self.groups == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        transposed = None
        if self.transposable and torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad):
            if self.transposed is None:
                self.transposed = transposed_table(self.table, self.in_length)
                self.transposable = self.transposed is not None
            transposed = self.transposed
        return keyed_conv2d(x, self.weight, self.bias, self.table, self.out_hw, self.groups, self.zero_row, transposed)

    def extra_repr(self) -> str:
        c_out, c_in_g, kh, kw = self.weight.shape
        return f"{c_in_g * self.groups}, {c_out}, kernel=({kh}, {kw}), groups={self.groups}, out_hw={self.out_hw}"
