"""The per-pixel stages of a capture in torch, on any device: the same counter-based draws as
noise.py (SplitMix64, the 128-layer ziggurat, the Poisson CDF walk) and the same ADC as pixels.py,
computed with tensor operations instead of numba loops, so a frame captured on CUDA equals the one
the CPU's numba kernels give, up to float rounding.

Unsigned 64-bit arithmetic in int64 tensors: addition and multiplication wrap the same way in
two's complement, and a logical right shift is an arithmetic one with the sign bits masked off.
Every value numba computes in float64 is computed in float64 here too.

Branches become masks: every pixel takes the ziggurat's one-draw path, and only the pixels it
rejects (about 1.2%), the dim ones (exact Poisson) and those near the full well take the further
steps, each step on the subset still pending.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from .noise import (
    _GOLDEN,
    _LAYERS,
    _MAX_COUNT,
    _R,
    CLIP_MARGIN_SIGMA,
    MIX_MULTIPLIERS,
    MIX_SHIFTS,
    POISSON_EXACT_BELOW_E,
    tables,
)
from .pixels import NONLINEAR_KNEE


def _signed(value: int) -> int:
    """An integer modulo 2^64 as the int64 with the same bits."""
    value %= 1 << 64
    return value - (1 << 64) if value >= 1 << 63 else value


_GOLDEN_I64 = _signed(_GOLDEN)
_M1, _M2 = (_signed(m) for m in MIX_MULTIPLIERS)


def _shr(z: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 bits."""
    return (z >> bits) & ((1 << (64 - bits)) - 1)


def _mix(z: torch.Tensor) -> torch.Tensor:
    """SplitMix64's output function (noise._mix)."""
    z = (z ^ _shr(z, MIX_SHIFTS[0])) * _M1
    z = (z ^ _shr(z, MIX_SHIFTS[1])) * _M2
    return z ^ _shr(z, MIX_SHIFTS[2])


def stream_keys(seed: int, count: int, device: torch.device) -> torch.Tensor:
    """Draw 0 of pixels 0..count-1 of the stream `seed` (noise._key), int64 (count,)."""
    return keys_at(seed, torch.arange(count, dtype=torch.int64, device=device))


def keys_at(seed: int, pixels: torch.Tensor) -> torch.Tensor:
    """Draw 0 of the given pixels (int64 indices) of the stream `seed`."""
    return _mix((pixels + 1) * _GOLDEN_I64 + _signed(seed))


def _split(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """noise._split: (hz, iz, u) of 64-bit draws."""
    hz = _shr(z, 32) - 2147483648
    iz = z & (_LAYERS - 1)
    u = (((z >> 7) & 0x1FFFFFF).double() + 0.5) * (1.0 / 33554432.0)  # the mask drops the sign bits
    return hz, iz, u


def _draw(keys: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw k >= 1 of the streams whose draw 0 is `keys` (noise._draw)."""
    return _split(_mix(keys + _signed(k * _GOLDEN)))


def uniforms(keys: torch.Tensor) -> torch.Tensor:
    """noise._uniform of draws 0: float64 in [0, 1) from bits 7 to 30."""
    return ((keys >> 7) & 0xFFFFFF).double() * (1.0 / 16777216.0)  # the mask drops the sign bits


@functools.cache
def _device_tables(device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    kn, wn, fn = tables()
    return tuple(torch.from_numpy(t).to(device) for t in (kn, wn, fn))


def normals(keys: torch.Tensor) -> torch.Tensor:
    """The standard normal (float64) of each stream whose draw 0 is in `keys` (noise._normal)."""
    kn, wn, fn = _device_tables(keys.device)
    hz, iz, _ = _split(keys)
    x = hz * wn[iz]
    rejected = (hz.abs() >= kn[iz]).nonzero().squeeze(1)
    if rejected.numel():
        x[rejected] = _rejected_normals(keys[rejected], hz[rejected], iz[rejected], kn, wn, fn)
    return x


def _rejected_normals(keys, hz, iz, kn, wn, fn) -> torch.Tensor:
    """The ziggurat past its first draw, for the streams it rejected: each loop step takes the tail
    (iz == 0), the wedge test or a fresh draw for every stream still pending, all on the same draw k."""
    out = torch.empty(keys.shape, dtype=torch.float64, device=keys.device)
    pending = torch.arange(keys.numel(), device=keys.device)
    _, _, u = _draw(keys, 1)
    k = 2
    while pending.numel():
        x = hz * wn[iz]
        tail = iz == 0
        if tail.any():
            out[pending[tail]] = _tail(keys[tail], hz[tail] > 0, k)
        wedge = fn[iz] + u * (fn[(iz - 1).clamp_(min=0)] - fn[iz]) < torch.exp(-0.5 * x * x)
        done = wedge & ~tail
        out[pending[done]] = x[done]
        keep = ~(tail | wedge)
        pending, keys = pending[keep], keys[keep]
        hz, iz, u = _draw(keys, k)
        k += 1
        fast = hz.abs() < kn[iz]
        out[pending[fast]] = hz[fast] * wn[iz[fast]]
        keep = ~fast
        pending, keys, hz, iz, u = pending[keep], keys[keep], hz[keep], iz[keep], u[keep]
    return out


def _tail(keys: torch.Tensor, positive: torch.Tensor, k: int) -> torch.Tensor:
    """Marsaglia's exponential method beyond r, from draw k of each stream on."""
    out = torch.empty(keys.shape, dtype=torch.float64, device=keys.device)
    pending = torch.arange(keys.numel(), device=keys.device)
    while pending.numel():
        _, _, u1 = _draw(keys, k)
        _, _, u2 = _draw(keys, k + 1)
        k += 2
        x = -torch.log(u1) / _R
        accept = -2.0 * torch.log(u2) >= x * x
        value = _R + x[accept]
        out[pending[accept]] = torch.where(positive[accept], value, -value)
        pending, keys, positive = pending[~accept], keys[~accept], positive[~accept]
    return out


def poisson_counts(lam: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """noise._count over tensors: the Poisson(lam) count (float64) whose CDF first reaches u,
    walked four terms at a time with every pixel still pending."""
    count = torch.zeros_like(lam)
    pending = (u > 1.0 - lam).nonzero().squeeze(1)
    lam, u = lam[pending], u[pending]
    p = torch.exp(-lam)
    cdf = p.clone()
    base = 0
    while pending.numel():
        p1 = p * (lam / (base + 1))
        c1 = cdf + p1
        p2 = p1 * (lam / (base + 2))
        c2 = c1 + p2
        p3 = p2 * (lam / (base + 3))
        c3 = c2 + p3
        p4 = p3 * (lam / (base + 4))
        c4 = c3 + p4
        done = u <= c4 if base + 4 < _MAX_COUNT else torch.ones_like(u, dtype=torch.bool)
        steps = (u > cdf).double() + (u > c1).double() + (u > c2).double() + (u > c3).double()
        count[pending[done]] = base + steps[done]
        keep = ~done
        pending, lam, u, p, cdf = pending[keep], lam[keep], u[keep], p4[keep], c4[keep]
        base += 4
    return count


def pixel_electrons(
    mean_e: torch.Tensor, dsnu_e: torch.Tensor, full_well_e: float, read_noise_e: float, seeds: tuple[int, int]
) -> torch.Tensor:
    """noise.pixel_electrons in torch: the electrons (float32, mean_e's shape and device) each
    pixel holds at readout, with the same three cases and draws.

    Args:
        mean_e, dsnu_e: float32 tensors of one shape, on one device.
        full_well_e, read_noise_e: electrons.
        seeds: the streams of z (and the Poisson uniforms) and of z'.
    """
    full_well, read_noise = float(np.float32(full_well_e)), float(np.float32(read_noise_e))  # as numba gets them
    m, offset = mean_e.reshape(-1).double(), dsnu_e.reshape(-1).double()
    keys = stream_keys(seeds[0], m.numel(), m.device)
    z = normals(keys)

    def gaussian(m, z, offset):  # shot and read noise as one Gaussian
        return m + torch.sqrt(m + read_noise * read_noise) * z + offset

    def poisson(m, keys, z, offset):  # exact Poisson shot noise, clipped, then read noise
        return torch.clamp(poisson_counts(m, uniforms(keys)) + offset, max=full_well) + read_noise * z

    # The more common case over the whole frame, the other on its pixels only, so that a dark
    # frame costs what a bright one does. Over the whole frame, a bright pixel walks no CDF (mean 0).
    dim = m < POISSON_EXACT_BELOW_E
    if 2 * int(dim.sum()) <= m.numel():
        out = gaussian(m, z, offset)
        index = dim.nonzero().squeeze(1)
        if index.numel():
            out[index] = poisson(m[index], keys[index], z[index], offset[index])
    else:
        out = poisson(torch.where(dim, m, 0.0), keys, z, offset)
        index = (~dim).nonzero().squeeze(1)
        if index.numel():
            out[index] = gaussian(m[index], z[index], offset[index])
    clipped = ((m >= POISSON_EXACT_BELOW_E) & (m + CLIP_MARGIN_SIGMA * torch.sqrt(m) + offset >= full_well)).nonzero()
    clipped = clipped.squeeze(1)
    if clipped.numel():
        mc = m[clipped]
        shot = mc + torch.sqrt(mc) * z[clipped]
        z2 = normals(keys_at(seeds[1], clipped))
        out[clipped] = torch.clamp(shot + offset[clipped], max=full_well) + read_noise * z2
    return out.float().reshape(mean_e.shape)


def electrons_to_dn(
    electrons: torch.Tensor,
    rows: torch.Tensor,
    columns: torch.Tensor,
    full_well_e: float,
    nonlinearity: float,
    gain_dn_per_e: float,
    black_level_dn: float,
    max_dn: int,
) -> torch.Tensor:
    """pixels.electrons_to_dn in torch: electrons (H, W, C) float32 -> codes (H, W, C) int32, with
    rows (H, C) and columns (W, C) on the same device."""
    full_well, nonlinearity, gain, black = (
        float(np.float32(v)) for v in (full_well_e, nonlinearity, gain_dn_per_e, black_level_dn)
    )
    e = electrons.double()
    over = (e / full_well - NONLINEAR_KNEE).clamp_(min=0.0) / (1.0 - NONLINEAR_KNEE)
    e = torch.where(e > NONLINEAR_KNEE * full_well, e - nonlinearity * full_well * over * over, e)
    dn = torch.round((e + rows.double()[:, None, :] + columns.double()[None, :, :]) * gain + black)
    return dn.clamp_(0.0, float(max_dn)).to(torch.int32)
