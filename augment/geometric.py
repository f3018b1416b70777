"""Taps of kornia's geometric augmentations, from kornia's own sampled parameters.

Flips, crops and resized crops are separable: each output row and column reads one or two rows
and columns of the scene, so their taps are small per-axis maps. Rotation, affine and
perspective warps sample bilinearly at M^-1 (u, v, 1) in pixel coordinates, as
kornia.geometry.warp_affine / warp_perspective do, with the matrix kornia computes. Anything
resampled with nearest is read off kornia itself: its own apply_transform runs on a probe frame
whose values are scene positions, so every rounding rule is kornia's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from kornia.constants import SamplePadding

from ..nets import F_PAD_MODES, pad_index
from .taps import AxisMaps, SampleTaps, SeparableTaps, WarpTaps

# Probe values are positions + 1 and must be exact in the frame's dtype.
_EXACT_INTEGERS = {torch.float32: 2**24, torch.float64: 2**53}


def applied(params: dict[str, torch.Tensor], batch: int, device: torch.device) -> torch.Tensor:
    """(B,) bool: the samples kornia's `p` chose to transform."""
    prob = params.get("batch_prob")
    if prob is None:
        return torch.ones(batch, dtype=torch.bool, device=device)
    return torch.atleast_1d(prob > 0.5).to(device).expand(batch)


def flip_taps(chosen: torch.Tensor, in_hw: tuple[int, int], axis: int) -> SeparableTaps:
    """Horizontal (axis 1) or vertical (axis 0) flips of the chosen samples."""
    maps = [_axis_gather(torch.arange(n).expand(len(chosen), n).clone()) for n in in_hw]
    maps[axis].index[chosen] = maps[axis].index[chosen].flip(1)
    return SeparableTaps(maps[0], maps[1])


def crop_taps(
    params: dict[str, torch.Tensor], in_hw: tuple[int, int], size: tuple[int, int], mode: str, fill: torch.Tensor | None
) -> SeparableTaps:
    """kornia's RandomCrop (cropping_mode 'slice'): pad by params['padding_size'], then slice params['src']."""
    box = params["src"].long().cpu().numpy()
    batch = box.shape[0]
    padding = params.get("padding_size")
    pad = np.zeros((batch, 4), dtype=np.int64) if padding is None else padding.long().cpu().numpy()
    pad = np.broadcast_to(pad, (batch, 4))  # left, right, top, bottom
    rows = box[:, 0, 1:2] - pad[:, 2:3] + np.arange(size[0])
    cols = box[:, 0, 0:1] - pad[:, 0:1] + np.arange(size[1])
    mode = F_PAD_MODES[mode]
    return SeparableTaps(
        _axis_gather(torch.from_numpy(pad_index(rows, in_hw[0], mode))),
        _axis_gather(torch.from_numpy(pad_index(cols, in_hw[1], mode))),
        fill,
    )


def resized_crop_taps(params: dict[str, torch.Tensor], size: tuple[int, int], align_corners: bool) -> SeparableTaps:
    """kornia's RandomResizedCrop (cropping_mode 'slice', bilinear): slice params['src'], then
    torch's bilinear resize of that window to `size`."""
    box = params["src"].long().cpu()
    rows = _resize_axis(box[:, 0, 1], box[:, 3, 1] - box[:, 0, 1] + 1, size[0], align_corners)
    cols = _resize_axis(box[:, 0, 0], box[:, 1, 0] - box[:, 0, 0] + 1, size[1], align_corners)
    return SeparableTaps(rows, cols)


def keep_unchosen(taps: SeparableTaps, chosen: torch.Tensor, in_hw: tuple[int, int], name: str) -> SeparableTaps:
    """Identity maps for the samples kornia's `p` left unchanged."""
    if bool(chosen.all()):
        return taps
    if taps.size != in_hw:
        raise ValueError(f"{name} changes the frame size, so it cannot leave samples unchanged (use p=1)")
    maps = []
    for axis_maps, n in zip((taps.rows, taps.cols), in_hw, strict=True):
        index, weight = axis_maps.index.clone(), axis_maps.weight.clone()
        index[~chosen] = -1
        weight[~chosen] = 0.0
        index[~chosen, :, 0] = torch.arange(n)
        weight[~chosen, :, 0] = 1.0
        maps.append(AxisMaps(index, weight))
    return SeparableTaps(maps[0], maps[1], taps.fill_value)


def warp_taps(
    aug: Any, params: dict[str, torch.Tensor], shape: torch.Size, padding: str, fill: torch.Tensor | None
) -> WarpTaps:
    """Bilinear taps of a warp by kornia's source -> destination matrix."""
    # The matrix in float64: kornia's float32 warp grid is off by up to 6e-5 px at 224x224.
    meta = torch.empty((), dtype=torch.float64).expand(shape)
    matrix = aug.compute_transformation(meta, params, aug.flags)
    chosen = applied(params, shape[0], torch.device("cpu"))
    return WarpTaps(torch.linalg.inv(matrix), (shape[-2], shape[-1]), padding, aug.flags["align_corners"], chosen, fill)


def probe_gather(
    aug: Any, params: dict[str, torch.Tensor], shape: torch.Size, dtype: torch.dtype, fill: torch.Tensor | None
) -> SampleTaps:
    """Taps of an augmentation that moves pixels without mixing them, read off kornia itself."""
    batch, _, height, width = shape
    n = height * width
    if n + 1 > _EXACT_INTEGERS[dtype]:
        raise ValueError(f"keyed augmentation of {height}x{width} frames needs float64 frames, got {dtype}")
    probe = torch.arange(1, n + 1, dtype=dtype).view(1, 1, height, width).expand(batch, 1, -1, -1).contiguous()
    flags = _zero_fill(aug.flags)
    out = aug.apply_transform(probe, params, flags, transform=aug.compute_transformation(probe, params, flags))
    position = out.round()
    if not torch.equal(position, out):
        raise RuntimeError(f"{type(aug).__name__} mixed pixels; it is not a gather with these flags")
    index = position.long().view(batch, -1, 1) - 1
    chosen = applied(params, batch, torch.device("cpu"))
    if not bool(chosen.all()):
        if index.shape[1] != n:
            raise ValueError(f"{type(aug).__name__} changes the frame size, so it cannot leave samples unchanged")
        index[~chosen, :, 0] = torch.arange(n)
    return SampleTaps(index, None, (out.shape[-2], out.shape[-1]), fill)


def _axis_gather(index: torch.Tensor) -> AxisMaps:
    """(B, n_out) source indices as one-tap maps of weight 1."""
    index = index.unsqueeze(-1)
    return AxisMaps(index, torch.ones(index.shape, dtype=torch.float64))


def _resize_axis(start: torch.Tensor, length: torch.Tensor, n_out: int, align_corners: bool) -> AxisMaps:
    """Two-tap maps of torch's linear interpolation of each window [start, start + length) to n_out."""
    i = torch.arange(n_out, dtype=torch.float64).unsqueeze(0)
    length = length.double().unsqueeze(1)
    if align_corners:
        scale = (length - 1) / (n_out - 1) if n_out > 1 else torch.zeros_like(length)
        source = i * scale
    else:
        source = ((i + 0.5) * (length / n_out) - 0.5).clamp(min=0)
    source = torch.minimum(source, length - 1)
    low = source.floor()
    high = torch.minimum(low + 1, length - 1)
    frac = source - low
    base = start.double().unsqueeze(1)
    index = torch.stack([base + low, base + high], -1).long()
    return AxisMaps(index, torch.stack([1 - frac, frac], -1))


def _zero_fill(flags: dict[str, Any]) -> dict[str, Any]:
    """kornia flags with padding that reads zero, for probing positions."""
    probe = dict(flags)
    if "fill" in probe:
        probe["fill"] = 0.0
    if probe.get("padding_mode") == SamplePadding.FILL:
        probe["padding_mode"] = SamplePadding.ZEROS
    return probe
