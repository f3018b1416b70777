"""Keyed feature maps as tokens: a (B, C, H, W) map in keyed order is (B, H*W, C) in channels-last memory."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

# Gathered taps are processed in chunks of about this size on CPU: small buffers are reused by
# the allocator and stay in cache, where one large buffer costs fresh pages on every call
# (measured 2.5x faster for VGG16's first layers at batch 64, benchmarks/keyed_inference.py).
CPU_CHUNK_BYTES = 8 * 2**20
# Below this many rows a BLAS matmul beats the oneDNN 1x1 convolution.
ONEDNN_MIN_ROWS = 256

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
    keyed input rows (L_in reads zeros when `zero_row`). An empty batch gives one empty chunk."""
    batch, length, channels = tokens.shape
    if zero_row:
        tokens = F.pad(tokens, (0, 0, 0, 1))
        length += 1
    rows = tokens.reshape(batch * length, channels)
    offsets = torch.arange(0, batch * length, length, device=tokens.device, dtype=table.dtype)
    n_out, taps = table.shape
    index = (offsets.view(batch, 1, 1) + table.unsqueeze(0)).view(batch * n_out, taps)
    total = batch * n_out
    step = total
    if tokens.device.type == "cpu":
        step = max(1, CPU_CHUNK_BYTES // (taps * channels * tokens.element_size()))
    for start in range(0, max(total, 1), step):
        stop = min(start + step, total)
        yield rows.index_select(0, index[start:stop].view(-1)).view(-1, taps, channels), start, stop


def gather_reduce(tokens: torch.Tensor, table: torch.Tensor, zero_row: bool, reduce: Reduce) -> torch.Tensor:
    """Gather rows table[j, t] of each sample (see `gathered`) and reduce each output's taps:
    reduce(cols (N, taps, C), start, stop) -> (N, C_out). Returns (B, L_out, C_out)."""
    parts = [reduce(cols, start, stop) for cols, start, stop in gathered(tokens, table, zero_row)]
    out = parts[0] if len(parts) == 1 else torch.cat(parts)
    return out.view(tokens.shape[0], table.shape[0], out.shape[-1])


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

    On CPU a large GEMM runs as a 1x1 convolution, which oneDNN computes about twice as fast
    as the BLAS matmul on the AMD cores measured here.
    """
    n, k = rows.shape
    if rows.device.type == "cpu" and n >= ONEDNN_MIN_ROWS and torch.backends.mkldnn.is_available():
        image = rows.view(1, n, 1, k).permute(0, 3, 1, 2)
        out = F.conv2d(image, weight.reshape(weight.shape[0], k, 1, 1), bias)
        return out.permute(0, 2, 3, 1).reshape(n, weight.shape[0])
    if bias is None:
        return rows @ weight.t()
    return torch.addmm(bias, rows, weight.t())
