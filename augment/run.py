"""Apply taps to protected frames: fused numba kernels on the CPU, torch gathers elsewhere."""

from __future__ import annotations

import numpy as np
import torch

from . import kernels
from .tables import KeyedTable, Order, inverse_table, neighbour_table, order_index, scene_coordinates
from .taps import (
    PADDING_CODES,
    AxisMaps,
    SampleTaps,
    SeparableTaps,
    WarpTaps,
    apply_sample_taps,
    apply_shared_taps,
    to_device,
)

Taps = SeparableTaps | WarpTaps | SampleTaps


def run_taps(x: torch.Tensor, taps: Taps, order: Order, fused: bool | None = None) -> torch.Tensor:
    """Apply taps to keyed frames; `fused` picks the CPU kernels (default: on CPU without autograd)."""
    if fused is None:
        fused = _fused_by_default(x)
    batch, channels, height, width = x.shape
    if fused and not isinstance(taps, SampleTaps):
        rows_of, cols_of = scene_coordinates(order, *taps.size)
        frames = x.detach().contiguous().view(batch, channels, -1).numpy()
        out = torch.empty(batch, channels, taps.size[0] * taps.size[1], dtype=x.dtype)
        fill = _fill_array(taps.fill_value, channels)
        warmed = np.empty(batch)  # see kernels._warm
        in_hw = (height, width)
        if isinstance(taps, SeparableTaps) and taps.one_tap:
            kernels.separable_gather(
                frames, inverse_table(order, *in_hw), rows_of, cols_of, taps.rows.index[..., 0].contiguous().numpy(),
                taps.cols.index[..., 0].contiguous().numpy(), width, fill, out.numpy(), warmed,
            )  # fmt: skip
        elif isinstance(taps, SeparableTaps) and taps.two_taps_inside:
            kernels.separable_bilinear(
                frames, neighbour_table(order, *in_hw), rows_of, cols_of, bilinear_codes(taps.rows, 4 * width, 2),
                taps.rows.weight.numpy(), bilinear_codes(taps.cols, 4, 1), taps.cols.weight.numpy(), out.numpy(),
                warmed,
            )  # fmt: skip
        elif isinstance(taps, SeparableTaps):
            kernels.separable(
                frames, inverse_table(order, *in_hw), rows_of, cols_of, taps.rows.index.numpy(),
                taps.rows.weight.numpy(), taps.cols.index.numpy(), taps.cols.weight.numpy(), width, fill, out.numpy(),
            )  # fmt: skip
        else:
            kernels.warp(
                frames, neighbour_table(order, *in_hw), rows_of, cols_of, taps.inverse.numpy(), height, width,
                PADDING_CODES[taps.padding], taps.align_corners, fill, taps.chosen.numpy(), out.numpy(), warmed,
            )  # fmt: skip
        return out.view(batch, channels, *taps.size)
    taps = to_device(taps, x.device)
    if isinstance(taps, SeparableTaps):
        taps = taps.expand(width)
    elif isinstance(taps, WarpTaps):
        taps = taps.expand((height, width))
    inv_in = order_index(order, True, height, width, x.device)
    perm_out = order_index(order, False, *taps.size, x.device)
    return apply_sample_taps(x, taps, inv_in, perm_out)


def run_shared(x: torch.Tensor, keyed: KeyedTable, weight: torch.Tensor, fused: bool | None = None) -> torch.Tensor:
    """Filter taps shared by the batch: keyed (N_out, K) positions, weight (B|1, N_out|1, K) in keyed order."""
    if fused is None:
        fused = _fused_by_default(x)
    batch, channels = x.shape[:2]
    if fused:
        out = torch.empty_like(x, memory_format=torch.contiguous_format)
        kernels.shared(
            x.detach().contiguous().view(batch, channels, -1).numpy(),
            keyed.compact,
            weight.to(torch.float64).contiguous().numpy(),
            out.view(batch, channels, -1).numpy(),
            np.empty(batch),  # see kernels._warm
        )
        return out
    return apply_shared_taps(x, keyed.index, weight.to(x.device))


def bilinear_codes(maps: AxisMaps, stride: int, step_bit: int) -> np.ndarray:
    """(B, n) int64 codes of two-tap maps for kernels.separable_bilinear: stride * first tap, plus
    step_bit where the second tap is the next row (column) rather than the same one."""
    index = maps.index
    return (index[..., 0] * stride + (index[..., 1] != index[..., 0]) * step_bit).numpy()


def _fused_by_default(x: torch.Tensor) -> bool:
    """The numba kernels run on the CPU and do not record gradients."""
    return x.device.type == "cpu" and not (torch.is_grad_enabled() and x.requires_grad)


def _fill_array(fill: torch.Tensor | None, channels: int) -> np.ndarray:
    if fill is None:
        return np.zeros(channels)
    return fill.to(torch.float64).reshape(-1).expand(channels).contiguous().numpy()
