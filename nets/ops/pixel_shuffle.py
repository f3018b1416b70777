"""Keyed pixel shuffle and unshuffle: moves between channels and positions, one gather each."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ...privacy import inverse_permutation


def pixel_shuffle_index(factor: int, in_hw: tuple[int, int], perm_in, perm_out) -> np.ndarray:
    """(H_out*W_out,) int64: keyed output position q reads plane s = i*r + j of its channel group
    at keyed input position src, as index s*H*W + src, where the plain output position
    (h*r + i, w*r + j) comes from the plain input position (h, w)."""
    height, width = in_hw
    rows, cols = np.divmod(np.asarray(perm_out, dtype=np.int64), width * factor)
    (h, i), (w, j) = np.divmod(rows, factor), np.divmod(cols, factor)
    source = inverse_permutation(perm_in).astype(np.int64)[h * width + w]
    return (i * factor + j) * (height * width) + source


def pixel_unshuffle_index(factor: int, in_hw: tuple[int, int], perm_in, perm_out) -> np.ndarray:
    """(r*r * H_out*W_out,) int64: for plane s = i*r + j and keyed output position q (plain (h, w)),
    the keyed input position of the plain (h*r + i, w*r + j)."""
    out_w = in_hw[1] // factor
    h, w = np.divmod(np.asarray(perm_out, dtype=np.int64), out_w)
    i, j = np.divmod(np.arange(factor * factor), factor)
    plain = (h[None, :] * factor + i[:, None]) * in_hw[1] + (w[None, :] * factor + j[:, None])
    return inverse_permutation(perm_in).astype(np.int64)[plain].reshape(-1)


def keyed_pixel_shuffle(x: torch.Tensor, index: torch.Tensor, factor: int, out_hw: tuple[int, int]) -> torch.Tensor:
    """nn.PixelShuffle on a keyed map. x (B, C*r*r, H, W) keyed, index from pixel_shuffle_index
    -> (B, C, H*r, W*r) keyed."""
    batch, channels, height, width = x.shape
    planes = x.reshape(batch, channels // (factor * factor), factor * factor * height * width)
    return planes.index_select(2, index).view(batch, -1, *out_hw)


def keyed_pixel_unshuffle(x: torch.Tensor, index: torch.Tensor, factor: int, out_hw: tuple[int, int]) -> torch.Tensor:
    """nn.PixelUnshuffle on a keyed map. x (B, C, H, W) keyed, index from pixel_unshuffle_index
    -> (B, C*r*r, H/r, W/r) keyed."""
    batch, channels, height, width = x.shape
    return x.reshape(batch, channels, height * width).index_select(2, index).view(batch, -1, *out_hw)


class KeyedPixelShuffle(nn.Module):
    """nn.PixelShuffle (unshuffle=False) or nn.PixelUnshuffle on keyed maps, with a fixed table.

    Example:
        >>> op = KeyedPixelShuffle(2, (8, 8), perm_in, perm_out)  # doctest: +SKIP
        >>> y = op(x)  # x (B, 4C, 8, 8) keyed -> (B, C, 16, 16) keyed  # doctest: +SKIP
    """

    def __init__(self, factor: int, in_hw: tuple[int, int], perm_in, perm_out, unshuffle: bool = False) -> None:
        super().__init__()
        self.factor, self.unshuffle = factor, unshuffle
        scale = (lambda n: n // factor) if unshuffle else (lambda n: n * factor)
        self.out_hw = (scale(in_hw[0]), scale(in_hw[1]))
        table = (pixel_unshuffle_index if unshuffle else pixel_shuffle_index)(factor, in_hw, perm_in, perm_out)
        self.register_buffer("index", torch.from_numpy(table), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        run = keyed_pixel_unshuffle if self.unshuffle else keyed_pixel_shuffle
        return run(x, self.index, self.factor, self.out_hw)

    def extra_repr(self) -> str:
        return f"factor={self.factor}, unshuffle={self.unshuffle}, out_hw={self.out_hw}"
