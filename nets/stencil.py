"""Spatial ops as stencil tables over plain positions, and their keyed form.

Every spatial op privcam keys (convolution, pooling, interpolation) reads, for each output
position o, a few input positions index[o, t] (-1: outside the image, reads zero) with
weights weight[o, t]. The tables are built per axis and combined, so they follow torch's
own size and padding rules; keying a table is two lookups:
    keyed[j, t] = inverse(perm_in)[index[perm_out[j], t]]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..privacy import inverse_permutation, key_table

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
# torch.nn.functional.pad's mode names (as kornia passes them on) -> pad_index's.
F_PAD_MODES = {"constant": "zeros", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


@dataclass(frozen=True)
class AxisTaps:
    """One axis of a stencil: index (n_out, k) into the input axis, -1 outside; weight (n_out, k)."""

    index: np.ndarray
    weight: np.ndarray


@dataclass(frozen=True)
class Stencil:
    """A 2-D stencil: index (L_out, taps) of plain input positions (-1 reads zero), weight (L_out, taps)."""

    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    index: np.ndarray
    weight: np.ndarray

    @property
    def taps(self) -> int:
        return self.index.shape[1]

    @property
    def reads_outside(self) -> bool:
        return bool((self.index < 0).any())

    def keyed_index(self, perm_in: np.ndarray, perm_out: np.ndarray) -> np.ndarray:
        """(L_out, taps) int32 table in keyed order; taps outside the image point at row L_in."""
        return key_table(self.index, inverse_permutation(perm_in), perm_out).astype(np.int32)

    def keyed_weight(self, perm_out: np.ndarray) -> np.ndarray:
        return self.weight[perm_out]


def combine(rows: AxisTaps, cols: AxisTaps, in_hw: tuple[int, int]) -> Stencil:
    """Outer product of two axes: tap t = ty * kw + tx, as a conv weight (kh, kw) flattens."""
    width = in_hw[1]
    row_index = rows.index[:, None, :, None]
    col_index = cols.index[None, :, None, :]
    index = row_index * width + col_index
    index = np.where((row_index < 0) | (col_index < 0), -1, index)
    weight = rows.weight[:, None, :, None] * cols.weight[None, :, None, :]
    n_out = rows.index.shape[0] * cols.index.shape[0]
    taps = rows.index.shape[1] * cols.index.shape[1]
    out_hw = (rows.index.shape[0], cols.index.shape[0])
    return Stencil(in_hw, out_hw, index.reshape(n_out, taps), weight.reshape(n_out, taps))


def conv_axis(n_in: int, n_out: int, kernel: int, stride: int, pad: int, dilation: int, mode: str) -> AxisTaps:
    """Taps of a convolution along one axis; `pad` is the padding before the first pixel."""
    index = pad_index(np.arange(n_out)[:, None] * stride - pad + np.arange(kernel)[None, :] * dilation, n_in, mode)
    return AxisTaps(index, np.where(index < 0, 0.0, 1.0))


def conv_transpose_axis(n_in: int, n_out: int, kernel: int, stride: int, pad: int, dilation: int) -> AxisTaps:
    """Taps of a transposed convolution along one axis: output o takes, through kernel element k,
    the input i with i*stride - pad + k*dilation = o (none when no such whole i is inside)."""
    reach = np.arange(n_out)[:, None] + pad - np.arange(kernel)[None, :] * dilation
    index = np.where((reach % stride == 0) & (reach >= 0) & (reach < n_in * stride), reach // stride, -1)
    return AxisTaps(index, np.where(index < 0, 0.0, 1.0))


def shift_axis(n_in: int, n_out: int, before: int, mode: str) -> AxisTaps:
    """One tap along an axis padded with `before` positions in front (negative: cropped)."""
    index = pad_index(np.arange(n_out)[:, None] - before, n_in, mode)
    return AxisTaps(index, np.where(index < 0, 0.0, 1.0))


def pad_index(index: np.ndarray, n_in: int, mode: str) -> np.ndarray:
    """Where positions before or past an axis of n_in read under torch's padding modes (-1: zeros)."""
    if mode == "zeros":
        return np.where((index < 0) | (index >= n_in), -1, index)
    if mode == "replicate":
        return np.clip(index, 0, n_in - 1)
    if mode == "circular":
        return np.mod(index, n_in)
    if mode == "reflect":
        period = 2 * (n_in - 1)
        folded = np.mod(index, period) if period else np.zeros_like(index)
        return np.where(folded >= n_in, period - folded, folded)
    raise ValueError(f"padding mode must be one of {PADDING_MODES}, got {mode!r}")


def avg_pool_axis(n_in: int, n_out: int, kernel: int, stride: int, pad: int, count_include_pad: bool) -> AxisTaps:
    """Average pooling along one axis with torch's divisor rules (ceil_mode windows are clipped)."""
    start = np.arange(n_out) * stride - pad
    end_padded = np.minimum(start + kernel, n_in + pad)
    index = start[:, None] + np.arange(kernel)[None, :]
    inside = (index >= 0) & (index < n_in) & (index < end_padded[:, None])
    valid = inside.sum(axis=1)
    divisor = end_padded - start if count_include_pad else valid
    weight = np.where(inside, 1.0 / divisor[:, None], 0.0)
    return AxisTaps(np.where(inside, index, -1), weight)


def adaptive_axis(n_in: int, n_out: int) -> AxisTaps:
    """Adaptive pooling windows [floor(o*n/out), ceil((o+1)*n/out)) along one axis."""
    o = np.arange(n_out)
    start = (o * n_in) // n_out
    end = -((-(o + 1) * n_in) // n_out)
    width = int((end - start).max())
    index = start[:, None] + np.arange(width)[None, :]
    inside = index < end[:, None]
    weight = np.where(inside, 1.0 / (end - start)[:, None], 0.0)
    return AxisTaps(np.where(inside, index, -1), weight)


def interpolate_axis(
    n_in: int, n_out: int, mode: str, align_corners: bool | None, scale_factor: float | None
) -> AxisTaps:
    """Interpolation taps along one axis, read off torch's own 1-D interpolate of a basis."""
    one_d_mode = {"bilinear": "linear", "nearest": "nearest", "nearest-exact": "nearest-exact"}[mode]
    basis = torch.eye(n_in, dtype=torch.float64).unsqueeze(0)
    if scale_factor is None:
        response = F.interpolate(basis, size=n_out, mode=one_d_mode, align_corners=align_corners)
    else:
        response = F.interpolate(basis, scale_factor=scale_factor, mode=one_d_mode, align_corners=align_corners)
    matrix = response[0].T.numpy()  # (n_out, n_in)
    if matrix.shape[0] != n_out:
        raise ValueError(f"interpolation gives {matrix.shape[0]} outputs, expected {n_out}")
    taps = max(int((matrix != 0).sum(axis=1).max()), 1)
    order = np.argsort(matrix == 0, axis=1, kind="stable")[:, :taps]
    weight = np.take_along_axis(matrix, order, axis=1)
    return AxisTaps(np.where(weight != 0, order, -1), weight)


def fill_outside_with_valid(stencil: Stencil) -> Stencil:
    """Point outside taps at a valid tap of the same window: a max is unchanged by duplicates."""
    index = stencil.index.copy()
    first_valid = index[np.arange(index.shape[0]), np.argmax(index >= 0, axis=1)]
    if (first_valid < 0).any():
        raise ValueError("a pooling window lies entirely in the padding")
    index = np.where(index < 0, first_valid[:, None], index)
    return Stencil(stencil.in_hw, stencil.out_hw, index, stencil.weight)
