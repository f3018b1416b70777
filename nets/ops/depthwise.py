"""Keyed depthwise convolution on the CPU: a fused gather-and-accumulate kernel (numba).

A depthwise convolution in keyed order is, for every output row j of every sample b,

    out[b, j, c] = bias[c] + sum_t weight[t, c] * x[b, table[j, t], c]

over the taps t of the stencil's keyed table (a row L_in, past the map, reads zero). The keyed map
is channels-last in memory, so each tap reads one contiguous run of C values and the sum over
channels vectorises; nothing is gathered into a buffer first. The gradients are the same sums
read the other way: weight[t, c] gathers x against the output gradient, and x's gradient
scatters the output gradient back through the table (one task per sample and block of channels,
so that no two tasks write the same value).
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange

from ...base.threads import on_torch_threads

# Channels per task of the input-gradient scatter: one 64-byte cache line of float32.
CHANNEL_BLOCK = 16


@on_torch_threads
@njit(parallel=True, cache=True)
def _forward(x, table, weight, bias, out):
    """x (B, L_in, C), table (L_out, T) int32, weight (T, C), bias (C,) -> out (B, L_out, C)."""
    batch, n_in, channels = x.shape
    n_out, taps = table.shape
    for task in prange(batch * n_out):
        b = task // n_out
        j = task - b * n_out
        row = out[b, j]
        for c in range(channels):
            row[c] = bias[c]
        for t in range(taps):
            i = table[j, t]
            if i < n_in:
                source = x[b, i]
                w = weight[t]
                for c in range(channels):
                    row[c] += w[c] * source[c]


@on_torch_threads
@njit(parallel=True, cache=True)
def _weight_grad(x, table, grad_out, grad_weight):
    """grad_weight[t, c] = sum over b, j of grad_out[b, j, c] * x[b, table[j, t], c]."""
    batch, n_in, channels = x.shape
    n_out, taps = table.shape
    for t in prange(taps):
        acc = grad_weight[t]
        for c in range(channels):
            acc[c] = 0.0
        for b in range(batch):
            for j in range(n_out):
                i = table[j, t]
                if i < n_in:
                    source = x[b, i]
                    g = grad_out[b, j]
                    for c in range(channels):
                        acc[c] += g[c] * source[c]


@on_torch_threads
@njit(parallel=True, cache=True)
def _input_grad(grad_out, table, weight, grad_x):
    """grad_x[b, table[j, t], c] += weight[t, c] * grad_out[b, j, c]; grad_x starts at zero."""
    batch, n_in, channels = grad_x.shape
    n_out, taps = table.shape
    blocks = (channels + CHANNEL_BLOCK - 1) // CHANNEL_BLOCK
    for task in prange(batch * blocks):
        b = task // blocks
        first = (task - b * blocks) * CHANNEL_BLOCK
        last = min(first + CHANNEL_BLOCK, channels)
        for j in range(n_out):
            g = grad_out[b, j]
            for t in range(taps):
                i = table[j, t]
                if i < n_in:
                    target = grad_x[b, i]
                    w = weight[t]
                    for c in range(first, last):
                        target[c] += w[c] * g[c]


def _array(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


class _KeyedDepthwise(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tokens, weight, bias, table):
        batch, _, channels = tokens.shape
        out = torch.empty(batch, table.shape[0], channels, dtype=tokens.dtype)
        _forward(_array(tokens), table.numpy(), _array(weight), _array(bias), out.numpy())
        ctx.save_for_backward(tokens, weight, table)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        tokens, weight, table = ctx.saved_tensors
        grad = _array(grad_out)
        grad_tokens = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_tokens = torch.zeros_like(tokens, memory_format=torch.contiguous_format)
            _input_grad(grad, table.numpy(), _array(weight), grad_tokens.numpy())
        if ctx.needs_input_grad[1]:
            grad_weight = torch.empty_like(weight, memory_format=torch.contiguous_format)
            _weight_grad(_array(tokens), table.numpy(), grad, grad_weight.numpy())
        if ctx.needs_input_grad[2]:
            grad_bias = grad_out.sum((0, 1))
        return grad_tokens, grad_weight, grad_bias, None


def keyed_depthwise_conv(
    tokens: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, table: torch.Tensor
) -> torch.Tensor:
    """Depthwise convolution of a keyed map in token layout, on the CPU.

    Args:
        tokens: (B, L_in, C) keyed map, channels last.
        weight: (T, C) taps of each channel, in the stencil's tap order (t = ky * kw + kx).
        bias: (C,) or None.
        table: (L_out, T) int32 keyed input row of each output tap; L_in reads zero.

    Returns:
        (B, L_out, C) keyed output, contiguous.

    Example:
        >>> table = torch.tensor([[0, 1], [1, 2]], dtype=torch.int32)
        >>> keyed_depthwise_conv(torch.ones(1, 2, 1), torch.ones(2, 1), None, table).flatten().tolist()
        [2.0, 1.0]
    """
    if bias is None:
        bias = tokens.new_zeros(tokens.shape[-1])
    return _KeyedDepthwise.apply(tokens, weight, bias, table)
