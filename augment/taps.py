"""Augmentations as sampling taps over scene positions, applied to frames in keyed order.

A spatial augmentation with fixed parameters is linear in the frame: output position n of
sample b reads scene positions index[b, n, k] with weights weight[b, n, k]; index -1 is padding
and reads the fill colour (zero unless the augmentation fills). The taps come from kornia's
parameters alone, so a keyed form never needs the scene-order frame. Keying them is two lookups,
as for the network ops (nets/stencil.py):
    keyed_index[b, j, k] = inverse(perm_in)[index[b, perm_out[j], k]]

Two compact forms cover kornia's geometric augmentations, each expandable to SampleTaps (the
reference the fast CPU kernels in kernels.py are tested against):
- SeparableTaps: per-sample 1-D maps of rows and columns (flips, crops, resized crops);
- WarpTaps: per-sample projective matrices, sampled bilinearly (rotation, affine, perspective).
Filters (blur, sharpness) read the same neighbours for every sample: a keyed table (N_out, K) and
per-sample weights, applied by apply_shared_taps.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch

PADDING_CODES = {"zeros": 0, "border": 1, "reflection": 2, "fill": 3}


def to_device(taps, device: torch.device):
    """The same taps with every tensor (nested ones too) on `device`."""
    moved = {}
    for f in fields(taps):
        value = getattr(taps, f.name)
        if isinstance(value, torch.Tensor):
            moved[f.name] = value.to(device)
        elif hasattr(value, "__dataclass_fields__"):
            moved[f.name] = to_device(value, device)
    return replace(taps, **moved)


@dataclass(frozen=True)
class SampleTaps:
    """index (B, N_out, K) int64 scene positions, -1 reads the fill; weight (B, N_out, K) or None (all 1)."""

    index: torch.Tensor
    weight: torch.Tensor | None
    size: tuple[int, int]
    fill_value: torch.Tensor | None = None  # (1, C); None fills with zero


@dataclass(frozen=True)
class AxisMaps:
    """1-D sampling of each output row (or column) of each sample: index (B, n_out, T), -1 reads the
    fill; weight (B, n_out, T) float64."""

    index: torch.Tensor
    weight: torch.Tensor

    def __getitem__(self, source: torch.Tensor) -> AxisMaps:
        """The maps of a pure gather applied after this one: output i reads this map's source[b, i]."""
        rows = source.unsqueeze(-1).expand(-1, -1, self.index.shape[2])
        return AxisMaps(self.index.gather(1, rows), self.weight.gather(1, rows))


@dataclass(frozen=True)
class SeparableTaps:
    rows: AxisMaps
    cols: AxisMaps
    fill_value: torch.Tensor | None = None

    @property
    def size(self) -> tuple[int, int]:
        return (self.rows.index.shape[1], self.cols.index.shape[1])

    @property
    def one_tap(self) -> bool:
        """Each output copies one scene pixel (or the fill)."""
        return all(m.index.shape[2] == 1 and bool((m.weight == 1).all()) for m in (self.rows, self.cols))

    @property
    def two_taps_inside(self) -> bool:
        """Two taps per axis, on the same or the next row (column), all on the frame (bilinear resizing)."""
        return all(
            m.index.shape[2] == 2
            and bool((m.index >= 0).all())
            and bool(((m.index[..., 1] - m.index[..., 0]) == 1).logical_or(m.index[..., 1] == m.index[..., 0]).all())
            for m in (self.rows, self.cols)
        )

    @property
    def is_gather(self) -> bool:
        """One tap of weight 1 everywhere, never off the frame: composable after any taps."""
        return self.one_tap and all(bool((m.index >= 0).all()) for m in (self.rows, self.cols))

    def then(self, gather: SeparableTaps) -> SeparableTaps:
        """These taps followed by a pure gather (see is_gather), as one set of taps."""
        return SeparableTaps(
            self.rows[gather.rows.index[..., 0]], self.cols[gather.cols.index[..., 0]], self.fill_value
        )

    def expand(self, width: int) -> SampleTaps:
        batch, n_rows, t_rows = self.rows.index.shape
        n_cols, t_cols = self.cols.index.shape[1:]
        row_index = self.rows.index.view(batch, n_rows, 1, t_rows, 1)
        col_index = self.cols.index.view(batch, 1, n_cols, 1, t_cols)
        index = torch.where((row_index < 0) | (col_index < 0), -1, row_index * width + col_index)
        weight = self.rows.weight.view(batch, n_rows, 1, t_rows, 1) * self.cols.weight.view(batch, 1, n_cols, 1, t_cols)
        shape = (batch, n_rows * n_cols, t_rows * t_cols)
        return SampleTaps(index.reshape(shape), weight.reshape(shape), self.size, self.fill_value)


@dataclass(frozen=True)
class WarpTaps:
    """Bilinear sampling at inverse (B, 3, 3) @ (u, v, 1) (destination -> source pixel coordinates),
    with grid_sample's padding; samples not `chosen` are left as they are."""

    inverse: torch.Tensor
    size: tuple[int, int]
    padding: str
    align_corners: bool
    chosen: torch.Tensor
    fill_value: torch.Tensor | None = None

    def expand(self, in_hw: tuple[int, int]) -> SampleTaps:
        height, width = in_hw
        v, u = torch.meshgrid(
            torch.arange(self.size[0], dtype=torch.float64, device=self.inverse.device),
            torch.arange(self.size[1], dtype=torch.float64, device=self.inverse.device),
            indexing="ij",
        )
        u, v = u.reshape(1, -1), v.reshape(1, -1)
        m = self.inverse.unsqueeze(-1)
        denom = m[:, 2, 0] * u + m[:, 2, 1] * v + m[:, 2, 2]
        sx = (m[:, 0, 0] * u + m[:, 0, 1] * v + m[:, 0, 2]) / denom
        sy = (m[:, 1, 0] * u + m[:, 1, 1] * v + m[:, 1, 2]) / denom
        if self.padding == "border":
            sx, sy = sx.clamp(0, width - 1), sy.clamp(0, height - 1)
        elif self.padding == "reflection":
            sx, sy = reflect(sx, width, self.align_corners), reflect(sy, height, self.align_corners)
        index, weight = bilinear_taps(sx, sy, height, width)
        if self.padding != "fill":  # off-frame taps read zero
            weight = torch.where(index < 0, 0.0, weight)
        keep = self.chosen.view(-1, 1, 1)
        identity = torch.full_like(index, -1)
        identity[..., 0] = torch.arange(index.shape[1], device=index.device)
        index = torch.where(keep, index, identity)
        weight = torch.where(keep, weight, (identity >= 0).to(weight.dtype))
        return SampleTaps(index, weight, self.size, self.fill_value if self.padding == "fill" else None)


def bilinear_taps(sx: torch.Tensor, sy: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The four taps (B, N, 4) of bilinear sampling at (sx, sy); taps off the frame get index -1."""
    x0, y0 = sx.floor(), sy.floor()
    fx, fy = sx - x0, sy - y0
    indices, weights = [], []
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            xi, yi = x0 + dx, y0 + dy
            inside = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
            indices.append(torch.where(inside, yi * width + xi, -1.0).long())
            weights.append(wy * wx)
    return torch.stack(indices, -1), torch.stack(weights, -1)


def reflect(coord: torch.Tensor, size: int, align_corners: bool) -> torch.Tensor:
    """grid_sample's reflection padding, in pixel coordinates."""
    low, high = (0.0, size - 1.0) if align_corners else (-0.5, size - 0.5)
    span = high - low
    if span <= 0:
        return torch.zeros_like(coord)
    distance = (coord - low).abs()
    flips = torch.floor(distance / span)
    extra = torch.remainder(distance, span)
    reflected = torch.where(flips % 2 == 0, low + extra, high - extra)
    return reflected.clamp(0, size - 1)


def apply_sample_taps(x: torch.Tensor, taps: SampleTaps, inv_in: torch.Tensor, perm_out: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) frames in keyed order -> (B, C, H_out, W_out) in the output's keyed order."""
    batch, channels, height, width = x.shape
    n_in = height * width
    index = taps.index[:, perm_out]
    keyed = torch.where(index >= 0, inv_in[index.clamp(min=0)], n_in)
    n_out, k = keyed.shape[1:]
    fill = x.new_zeros(batch, channels, 1)
    if taps.fill_value is not None:
        fill = fill + taps.fill_value.to(x).view(-1, channels, 1)
    flat = torch.cat([x.reshape(batch, channels, n_in), fill], dim=2)
    gathered = torch.gather(flat, 2, keyed.view(batch, 1, n_out * k).expand(batch, channels, n_out * k))
    if taps.weight is None:
        out = gathered
    else:
        weight = taps.weight[:, perm_out].to(x.dtype)
        # A broadcast multiply and sum: einsum lowers this to a batched GEMM of 1-column matrices,
        # which took 0.73 ms of a 1.4 ms call on an H200 (batch 16, 224x224).
        out = (gathered.view(batch, channels, n_out, k) * weight.unsqueeze(1)).sum(-1)
    return out.reshape(batch, channels, *taps.size)


def apply_shared_taps(x: torch.Tensor, keyed: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """out[b, :, j] = sum_k weight[b, j, k] * x[b, :, keyed[j, k]] with keyed taps (N_out, K) (N_in reads
    zero) and weight (B|1, N_out|1, K) already in keyed order."""
    batch, channels, height, width = x.shape
    n_in = height * width
    weight = weight.to(x.dtype).unsqueeze(1)
    flat = torch.cat([x.reshape(batch, channels, n_in), x.new_zeros(batch, channels, 1)], dim=2)
    out = None
    for k in range(keyed.shape[1]):
        term = flat.index_select(2, keyed[:, k]) * weight[..., k]
        out = term if out is None else out.add_(term)
    return out.reshape(batch, channels, height, width)
