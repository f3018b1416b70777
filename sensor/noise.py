"""The sensor's random draws, counter-based: draw k of pixel i is a hash of (seed, i, k), with no
generator state, so a frame's noise does not depend on the thread count or on the order pixels are
visited, and no array of draws is made or stored. Every kernel that draws lives here, with the
draws it inlines (numba caches a kernel by its own file).

- Hash: SplitMix64's output function. Pixel i's draw 0 is key = mix(seed + (i + 1) * golden),
  SplitMix64's output i for `seed`, and its draw k >= 1 is mix(key + k * golden).
- Normals: Marsaglia and Tsang's ziggurat (J. Stat. Softw. 5(8), 2000) with 128 layers: draw 0's
  top 32 bits and low 7 bits, one table read and one comparison for about 98.8% of values; the
  rest take the wedge or the tail (beyond r = 3.4426) test with further draws from the stream.
- Uniforms: draw 0's bits 7 to 30 (24 bits), which the normal never reads (draw 0's wedge test
  takes its uniform from draw 1): a pixel's normal and its uniform come from one hash and are
  independent.
- Exact Poisson counts for dim pixels: walking the CDF from k = 0 until it passes the pixel's
  uniform takes about mean + 1 steps. Uniforms have 24 bits: a count whose probability is below
  2^-24 is never drawn, far below what any measurement here resolves.
- `pixel_electrons`: the whole model of a pixel's charge (shot noise, DSNU, the full-well clip and
  read noise) in one parallel pass over the frame, dark or bright.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit, prange, uint64

from ..base.threads import on_torch_threads

# Below this mean (electrons) shot noise is drawn from the Poisson law itself; above it from a
# Gaussian of equal mean and variance, which is exact in the first two moments (what the photon
# transfer curve measures) and about ten times faster.
POISSON_EXACT_BELOW_E = 10.0
# A pixel whose mean plus this many shot-noise sigmas (plus its DSNU offset) stays below the full
# well is never clipped in practice (probability below 1e-9).
CLIP_MARGIN_SIGMA = 6.0

_GOLDEN = 0x9E3779B97F4A7C15
_LAYERS = 128
_R = 3.442619855899  # where the ziggurat's base strip ends and the tail begins


# SplitMix64's output function: z ^= z >> 30, z *= M1, z ^= z >> 27, z *= M2, z ^= z >> 31
MIX_SHIFTS = (30, 27, 31)
MIX_MULTIPLIERS = (0xBF58476D1CE4E5B9, 0x94D049BB133111EB)


@njit(inline="always")
def _mix(z):
    z = (z ^ (z >> uint64(MIX_SHIFTS[0]))) * uint64(MIX_MULTIPLIERS[0])
    z = (z ^ (z >> uint64(MIX_SHIFTS[1]))) * uint64(MIX_MULTIPLIERS[1])
    return z ^ (z >> uint64(MIX_SHIFTS[2]))


@njit(inline="always")
def _key(seed, index):
    """Draw 0 of pixel `index` in the stream `seed`: SplitMix64's output `index`."""
    return _mix(uint64(seed) + (uint64(index) + uint64(1)) * uint64(_GOLDEN))


@njit(inline="always")
def _uniform(key):
    """The uniform in [0, 1) of a draw 0 (24 bits: its bits 7 to 30)."""
    return float(np.int64((key >> uint64(7)) & uint64(0xFFFFFF))) * (1.0 / 16777216.0)


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ziggurat's layer tables kn (int64), wn and fn (float64), as in Marsaglia and Tsang."""
    m1, vn = 2147483648.0, 9.91256303526217e-3
    kn, wn, fn = np.zeros(_LAYERS, np.int64), np.zeros(_LAYERS), np.zeros(_LAYERS)
    dn = tn = _R
    q = vn / math.exp(-0.5 * dn * dn)
    kn[0], kn[1] = int(dn / q * m1), 0
    wn[0], wn[-1] = q / m1, dn / m1
    fn[0], fn[-1] = 1.0, math.exp(-0.5 * dn * dn)
    for i in range(_LAYERS - 2, 0, -1):
        dn = math.sqrt(-2.0 * math.log(vn / dn + math.exp(-0.5 * dn * dn)))
        kn[i + 1] = int(dn / tn * m1)
        tn = dn
        fn[i], wn[i] = math.exp(-0.5 * dn * dn), dn / m1
    return kn, wn, fn


_KN, _WN, _FN = _tables()


@njit(inline="always")
def _split(z):
    """A 64-bit draw as (signed 32-bit value hz, layer iz, uniform in (0, 1) from the bits between)."""
    hz = np.int64(z >> uint64(32)) - 2147483648
    iz = np.int64(z & uint64(_LAYERS - 1))
    u = (float((z >> uint64(7)) & uint64(0x1FFFFFF)) + 0.5) * (1.0 / 33554432.0)
    return hz, iz, u


@njit(inline="always")
def _draw(key, k):
    """Draw k >= 1 of the stream `key`."""
    return _split(_mix(key + uint64(k) * uint64(_GOLDEN)))


@njit(inline="always")
def _normal(key, kn, wn, fn):
    """The standard normal of the stream whose draw 0 is `key` (kn, wn, fn: the module's tables)."""
    hz, iz, _ = _split(key)  # one hash for most values
    if abs(hz) < kn[iz]:
        return hz * wn[iz]
    _, _, u = _draw(key, 1)  # draw 0's own middle bits are the pixel's uniform, not the wedge's
    k = 2
    while True:
        x = hz * wn[iz]
        if iz == 0:  # the tail beyond r, by Marsaglia's exponential method
            while True:
                _, _, u1 = _draw(key, k)
                _, _, u2 = _draw(key, k + 1)
                k += 2
                x = -math.log(u1) / _R
                if -2.0 * math.log(u2) >= x * x:
                    return _R + x if hz > 0 else -_R - x
        if fn[iz] + u * (fn[iz - 1] - fn[iz]) < math.exp(-0.5 * x * x):  # the wedge
            return x
        hz, iz, u = _draw(key, k)
        k += 1
        if abs(hz) < kn[iz]:
            return hz * wn[iz]


@njit(inline="always")
def normal(seed, index, kn, wn, fn):
    """A standard normal draw for pixel `index` of the stream `seed`."""
    return _normal(_key(seed, index), kn, wn, fn)


def tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kn, wn, fn): the ziggurat tables a kernel passes to `normal`."""
    return _KN, _WN, _FN


@on_torch_threads
@njit(parallel=True, cache=True)
def _normals(seed, kn, wn, fn, out):
    for i in prange(out.shape[0]):
        out[i] = normal(seed, i, kn, wn, fn)


def normals(seed: int, count: int) -> np.ndarray:
    """The first `count` normals (float64) of the stream `seed`: draw i is what a kernel's
    normal(seed, i, ...) gives pixel i.

    Example:
        >>> normals(seed=0, count=3).shape
        (3,)
    """
    out = np.empty(int(count), np.float64)
    _normals(np.uint64(seed), *tables(), out)
    return out


# The walk stops here whatever the uniform: P(k >= 60) is below 1e-25 for means under 10.
_MAX_COUNT = 60


@njit(inline="always")
def _count(lam, u):
    """The Poisson(lam) count whose CDF first reaches the uniform u. Below 1 - lam <= exp(-lam) the
    count is 0 without the exponential: most pixels of a dark frame, whose means are far below 1.
    The CDF is walked four terms at a time and the count is the number of terms below u: one
    well-predicted branch per four terms instead of a branch per term that ends the walk at a
    random step (a misprediction per pixel)."""
    if u <= 1.0 - lam:
        return 0
    p = math.exp(-lam)
    cdf = p
    base = 0
    while True:
        p1 = p * (lam / (base + 1))
        c1 = cdf + p1
        p2 = p1 * (lam / (base + 2))
        c2 = c1 + p2
        p3 = p2 * (lam / (base + 3))
        c3 = c2 + p3
        p4 = p3 * (lam / (base + 4))
        c4 = c3 + p4
        if u <= c4 or base + 4 >= _MAX_COUNT:
            return base + (u > cdf) + (u > c1) + (u > c2) + (u > c3)
        base += 4
        cdf, p = c4, p4


@on_torch_threads
@njit(parallel=True, cache=True)
def _counts(mean, seed, out):
    for i in prange(mean.shape[0]):
        out[i] = _count(np.float64(mean[i]), _uniform(_key(seed, i)))


def poisson_counts(mean_e: torch.Tensor, seed: int) -> torch.Tensor:
    """Poisson counts (float32, 1-D) of means `mean_e` (1-D float32, each below 10 e-); count i
    depends only on seed, i and mean i: the shot noise pixel_electrons gives a dim pixel.

    Example:
        >>> counts = poisson_counts(torch.full((4,), 0.5), seed=0)
        >>> counts.shape
        torch.Size([4])
    """
    out = np.empty(mean_e.shape[0], np.float32)
    _counts(mean_e.contiguous().numpy(), np.uint64(seed), out)
    return torch.from_numpy(out)


@on_torch_threads
@njit(parallel=True, cache=True, boundscheck=False)
def _electrons(mean, dsnu, full_well, read_noise, seed, clip_seed, kn, wn, fn, out):
    read_var = np.float64(read_noise) * read_noise
    for i in prange(mean.shape[0]):
        m, offset = np.float64(mean[i]), np.float64(dsnu[i])
        key = _key(seed, i)
        z = _normal(key, kn, wn, fn)
        if m < POISSON_EXACT_BELOW_E:
            shot = _count(m, _uniform(key))
            out[i] = min(shot + offset, full_well) + read_noise * z
        elif m + CLIP_MARGIN_SIGMA * math.sqrt(m) + offset >= full_well:
            shot = m + math.sqrt(m) * z
            out[i] = min(shot + offset, full_well) + read_noise * normal(clip_seed, i, kn, wn, fn)
        else:
            out[i] = m + math.sqrt(m + read_var) * z + offset


def pixel_electrons(
    mean_e: torch.Tensor,
    dsnu_e: torch.Tensor,
    full_well_e: float,
    read_noise_e: float,
    seeds: tuple[int, int],
    out: torch.Tensor,
) -> torch.Tensor:
    """The electrons each pixel holds at readout, in one parallel pass: shot noise, DSNU, the
    full-well clip and read noise, from counter-based draws, so pixel i depends on the seeds, i and
    its own mean only (not on the thread count or on the other pixels).

    Pixel i with mean m, DSNU offset d and read noise r, with z the normal(seeds[0], i):
    - dim (m < POISSON_EXACT_BELOW_E): min(Poisson(m) + d, full well) + r z, the count that of
      poisson_counts(mean_e, seeds[0]) (the same draw's other bits);
    - near the full well (m + CLIP_MARGIN_SIGMA sqrt(m) + d reaches it): min(m + sqrt(m) z + d, full
      well) + r z', z' the normal(seeds[1], i): Gaussian shot noise, clipped, then read noise;
    - otherwise, where the clip never acts: m + sqrt(m + r^2) z + d, shot and read noise as the one
      Gaussian they add up to (one draw).

    Args:
        mean_e, dsnu_e, out: float32, contiguous, of one shape (any).
        full_well_e, read_noise_e: electrons.
        seeds: the streams of z (and the Poisson uniforms) and of z'.

    Returns:
        `out`.
    """
    _electrons(
        mean_e.view(-1).numpy(),
        dsnu_e.reshape(-1).numpy(),
        np.float32(full_well_e),
        np.float32(read_noise_e),
        *(np.uint64(seed) for seed in seeds),
        *tables(),
        out.view(-1).numpy(),
    )
    return out
