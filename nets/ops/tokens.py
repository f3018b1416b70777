"""Keyed feature maps as tokens: a (B, C, H, W) map in keyed order is (B, H*W, C) in channels-last memory."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from numba import njit, prange

from ...base.threads import on_torch_threads

# Gathered taps are processed in chunks of about this size on CPU: small buffers are reused by
# the allocator and stay in cache, where one large buffer costs fresh pages on every call
# (measured 2.5x faster for VGG16's first layers at batch 64, benchmarks/keyed_inference.py).
CPU_CHUNK_BYTES = 8 * 2**20
# Below this many rows a BLAS matmul beats the oneDNN 1x1 convolution.
ONEDNN_MIN_ROWS = 256
ONEDNN = torch.backends.mkldnn.is_available()
# Dtypes the keyed ops' numba kernels handle on the CPU (gathers, max pooling, depthwise convolution).
NUMBA_DTYPES = (torch.float32, torch.float64)

Reduce = Callable[[torch.Tensor, int, int], torch.Tensor]


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C); a view when x is channels-last."""
    batch, channels, height, width = x.shape
    return x.permute(0, 2, 3, 1).reshape(batch, height * width, channels)


def from_tokens(tokens: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """(B, H*W, C) -> (B, C, H, W) with channels-last strides (no copy)."""
    batch, _, channels = tokens.shape
    return tokens.reshape(batch, out_hw[0], out_hw[1], channels).permute(0, 3, 1, 2)


def gathered(tokens: torch.Tensor, table: torch.Tensor, zero_row: bool) -> Iterator[tuple[torch.Tensor, int, int]]:
    """The rows table[j, t] of each sample, chunk by chunk: (cols (N, taps, C), start, stop) for
    output rows start..stop of the flattened batch. tokens (B, L_in, C); table (L_out, taps) of
    keyed input rows (L_in reads zeros when `zero_row`). An empty batch gives one empty chunk.

    Float CPU chunks that autograd does not track come from a numba kernel; with gradients off
    (inference, a custom Function's passes) into one buffer, which the next chunk overwrites:
    use each chunk before asking for the next."""
    batch, length, channels = tokens.shape
    n_out, taps = table.shape
    total = batch * n_out
    step = total
    if tokens.device.type == "cpu":
        step = max(1, CPU_CHUNK_BYTES // (taps * channels * tokens.element_size()))
    if (
        tokens.device.type == "cpu"
        and tokens.dtype in NUMBA_DTYPES
        and not (torch.is_grad_enabled() and tokens.requires_grad)
    ):
        source = tokens.detach().contiguous().numpy()
        buffer = None
        for start in range(0, max(total, 1), step):
            stop = min(start + step, total)
            if buffer is None or torch.is_grad_enabled():  # autograd may keep a chunk (weight gradients)
                buffer = tokens.new_empty(min(step, total), taps, channels)
            cols = buffer[: stop - start]
            _gather_rows(source, table.numpy(), start, cols.numpy())
            yield cols, start, stop
        return
    if zero_row:
        tokens = torch.cat([tokens, tokens.new_zeros(batch, 1, channels)], 1)  # F.pad fills, then copies
        length += 1
    rows = tokens.reshape(batch * length, channels)
    offsets = torch.arange(0, batch * length, length, device=tokens.device, dtype=table.dtype)
    index = (offsets.view(batch, 1, 1) + table.unsqueeze(0)).view(batch * n_out, taps)
    for start in range(0, max(total, 1), step):
        stop = min(start + step, total)
        yield rows.index_select(0, index[start:stop].view(-1)).view(-1, taps, channels), start, stop


@on_torch_threads
@njit(parallel=True, cache=True)
def _gather_rows(tokens, table, start, out):
    """out[r, t] = tokens[b, table[j, t]] (zeros where table[j, t] >= L_in) for the flat output
    rows start + r = b * L_out + j. tokens (B, L_in, C), table (L_out, taps), out (N, taps, C)."""
    n_in, channels = tokens.shape[1], tokens.shape[2]
    n_out, taps = table.shape
    for r in prange(out.shape[0]):
        b = (start + r) // n_out
        j = start + r - b * n_out
        for t in range(taps):
            i = table[j, t]
            dest = out[r, t]
            if i < n_in:
                source = tokens[b, i]
                for c in range(channels):
                    dest[c] = source[c]
            else:
                for c in range(channels):
                    dest[c] = 0


def gather_reduce(tokens: torch.Tensor, table: torch.Tensor, zero_row: bool, reduce: Reduce) -> torch.Tensor:
    """Gather rows table[j, t] of each sample (see `gathered`) and reduce each output's taps:
    reduce(cols (N, taps, C), start, stop) -> (N, C_out). Returns a new (B, L_out, C_out) tensor
    (not a view: a custom autograd Function may return it and have it changed in place)."""
    out = None
    for cols, start, stop in gathered(tokens, table, zero_row):
        part = reduce(cols, start, stop)
        if out is None:
            out = part.new_empty(tokens.shape[0], table.shape[0], part.shape[-1])
        out.view(-1, part.shape[-1])[start:stop] = part
    return out


def transposed_table(table: torch.Tensor, n_in: int) -> torch.Tensor | None:
    """(L_in, taps) int32: the output row j whose tap t reads input row i (L_out where none), the
    table that runs a gather backwards as another gather; None when one tap of several outputs
    reads the same row (reflect, replicate or circular padding at the borders).

    table: (L_out, taps) keyed input rows, L_in (the zero row) outside the map.
    """
    n_out, taps = table.shape
    index = table.long()
    inside = index < n_in
    slot = (index * taps + torch.arange(taps, device=table.device))[inside]
    if torch.bincount(slot, minlength=n_in * taps).max() > 1:
        return None
    out = torch.full((n_in * taps,), n_out, dtype=torch.int32, device=table.device)
    rows = torch.arange(n_out, dtype=torch.int32, device=table.device).view(-1, 1).expand(n_out, taps)
    out[slot] = rows[inside]
    return out.view(n_in, taps)


def matmul_rows(rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """rows (N, K) @ weight (O, K).T + bias.

    On CPU a large float32 GEMM runs as oneDNN's 1x1 convolution, called directly: up to 1.4x
    faster than the BLAS matmul on the AMD cores measured here (the keyed layers' shapes), where
    F.conv2d at 1 thread would send a batch of one to its slower im2col kernel instead.
    """
    n, k = rows.shape
    if rows.device.type == "cpu" and rows.dtype == torch.float32 and n >= ONEDNN_MIN_ROWS and ONEDNN:
        image = rows.view(1, n, 1, k).permute(0, 3, 1, 2)
        out = torch.ops.aten.mkldnn_convolution(image, weight.reshape(-1, k, 1, 1), bias, [0, 0], [1, 1], [1, 1], 1)
        return out.permute(0, 2, 3, 1).reshape(n, weight.shape[0])
    if bias is None:
        return rows @ weight.t()
    return torch.addmm(bias, rows, weight.t())
