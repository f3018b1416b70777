"""Taps of kornia's blur and sharpness filters: kernels read off kornia, borders from nets/stencil.

A filter reads the same neighbours at every position, so its taps are shared by the batch and
only the weights differ. The kernels come from kornia's own apply_transform on a frame holding a
single 1 (its response is the kernel, mirrored); rank-one kernels (Gaussian, box) run as two
one-axis passes, as kornia runs them.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch

from ..nets import F_PAD_MODES, pad_index

# A kernel runs as two passes when its rank-one reconstruction is this close (relative).
_SEPARABLE_TOLERANCE = 1e-6
SHARPNESS_KERNEL = np.array([1, 1, 1, 1, 5, 1, 1, 1, 1], dtype=np.float64) / 13


def probe_kernel(
    aug: Any, params: dict[str, torch.Tensor], kernel_hw: tuple[int, int], batch: int, dtype: torch.dtype
) -> torch.Tensor:
    """(B, kh, kw) correlation kernels that `aug` applies with these parameters."""
    kh, kw = kernel_hw
    size_h, size_w = 3 * kh, 3 * kw
    centre_h, centre_w = size_h // 2, size_w // 2
    delta = torch.zeros(batch, 1, size_h, size_w, dtype=dtype)
    delta[:, :, centre_h, centre_w] = 1
    response = aug.apply_transform(delta, params, aug.flags)[:, 0]
    top, left = centre_h + (kh - 1) // 2 - kh + 1, centre_w + (kw - 1) // 2 - kw + 1
    return response[:, top : top + kh, left : left + kw].flip(-2, -1)


def filter_passes(kernel: torch.Tensor) -> list[tuple[tuple[int, int], torch.Tensor]]:
    """Correlation with each sample's kernel (B, kh, kw) as passes ((kh, kw), weight (B, 1, kh*kw))."""
    batch, kh, kw = kernel.shape
    total = kernel.sum((1, 2), keepdim=True)
    rows, cols = kernel.sum(2), kernel.sum(1)
    rebuilt = rows.unsqueeze(2) * cols.unsqueeze(1) / total
    scale = kernel.abs().amax((1, 2), keepdim=True)
    if bool((total != 0).all()) and bool(((rebuilt - kernel).abs() <= _SEPARABLE_TOLERANCE * scale).all()):
        return [((1, kw), cols.unsqueeze(1)), ((kh, 1), (rows / total.view(batch, 1)).unsqueeze(1))]
    return [((kh, kw), kernel.reshape(batch, 1, kh * kw))]


@lru_cache(maxsize=32)
def correlation_index(in_hw: tuple[int, int], kernel_hw: tuple[int, int], border: str) -> np.ndarray:
    """Scene positions (H*W, kh*kw) a stride-1 'same' correlation reads, with kornia's padding split
    ((k - 1) // 2 before); -1 reads zero."""
    if border not in F_PAD_MODES:
        raise ValueError(f"border type must be one of {sorted(F_PAD_MODES)}, got {border!r}")
    mode = F_PAD_MODES[border]
    height, width = in_hw
    (kh, kw) = kernel_hw
    rows = pad_index(np.arange(height)[:, None] - (kh - 1) // 2 + np.arange(kh), height, mode)
    cols = pad_index(np.arange(width)[:, None] - (kw - 1) // 2 + np.arange(kw), width, mode)
    index = rows[:, None, :, None] * width + cols[None, :, None, :]
    outside = (rows[:, None, :, None] < 0) | (cols[None, :, None, :] < 0)
    return np.where(outside, -1, index).reshape(height * width, kh * kw)


@lru_cache(maxsize=8)
def sharpness_taps(in_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """kornia's sharpness smoothing: (index, weight) (H*W, 9), the 3x3 kernel inside the frame and
    the pixel itself on its border (where kornia keeps the input)."""
    height, width = in_hw
    index = correlation_index(in_hw, (3, 3), "constant").copy()
    weight = np.broadcast_to(SHARPNESS_KERNEL, index.shape).copy()
    rows, cols = np.divmod(np.arange(height * width), width)
    border = (rows == 0) | (rows == height - 1) | (cols == 0) | (cols == width - 1)
    index[border] = -1
    weight[border] = 0
    index[border, 4] = np.flatnonzero(border)
    weight[border, 4] = 1
    return index, weight
