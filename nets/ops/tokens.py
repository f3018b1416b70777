"""Keyed feature maps as tokens: a (B, C, H, W) map in keyed order is (B, H*W, C) in channels-last memory."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C); a view when x is channels-last."""
    batch, channels, height, width = x.shape
    return x.permute(0, 2, 3, 1).reshape(batch, height * width, channels)


def from_tokens(tokens: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """(B, H*W, C) -> (B, C, H, W) with channels-last strides (no copy)."""
    batch, _, channels = tokens.shape
    return tokens.reshape(batch, out_hw[0], out_hw[1], channels).permute(0, 3, 1, 2)


def gather_taps(tokens: torch.Tensor, table: torch.Tensor, zero_row: bool) -> torch.Tensor:
    """Rows table[j, t] of each sample: (B, L_in, C) -> (B, L_out, taps, C).

    With `zero_row`, index L_in reads zeros (taps outside the image). Whole C-length rows
    are copied with one index_select over the flattened batch, the fastest gather on CPU.
    """
    batch, length, channels = tokens.shape
    if zero_row:
        tokens = F.pad(tokens, (0, 0, 0, 1))
        length += 1
    offsets = torch.arange(0, batch * length, length, device=tokens.device, dtype=table.dtype)
    flat_index = (offsets.view(batch, 1, 1) + table.unsqueeze(0)).view(-1)
    rows = tokens.reshape(batch * length, channels).index_select(0, flat_index)
    return rows.view(batch, table.shape[0], table.shape[1], channels)


def matmul_rows(rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """rows (N, K) @ weight (O, K).T + bias.

    On CPU a large GEMM runs as a 1x1 convolution, which oneDNN computes about twice as fast
    as the BLAS matmul on the AMD cores measured here (benchmarks/keyed_inference.py).
    """
    n, k = rows.shape
    if rows.device.type == "cpu" and n >= _ONEDNN_MIN_ROWS and torch.backends.mkldnn.is_available():
        image = rows.view(1, n, 1, k).permute(0, 3, 1, 2)
        out = F.conv2d(image, weight.reshape(weight.shape[0], k, 1, 1), bias)
        return out.permute(0, 2, 3, 1).reshape(n, weight.shape[0])
    if bias is None:
        return rows @ weight.t()
    return torch.addmm(bias, rows, weight.t())


_ONEDNN_MIN_ROWS = 256
