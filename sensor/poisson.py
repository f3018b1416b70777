"""Exact Poisson counts for dim pixels, fast and reproducible: inverse-CDF sampling of counter-based uniforms.

A dark frame puts every pixel below the Gaussian shortcut's limit (10 e-), so its shot noise is
drawn exactly for the whole frame. Walking the Poisson CDF from k = 0 until it passes a uniform
takes about mean + 1 steps, in parallel over pixels. Pixel i's uniform is output i of SplitMix64
seeded with the frame's seed (a hash of seed and i, no generator state), so the counts do not depend
on the thread count or on the order pixels are visited, and no uniform array is drawn or stored.
Uniforms have 24 bits: a count whose probability is below 2^-24 is never drawn, far below what any
measurement here resolves.

`dark_electrons` is the whole model of a dark frame in one pass: shot noise, DSNU, the full-well
clip and read noise, written into the frame's buffer.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit, prange, uint64

from ..base.threads import on_torch_threads

# The walk stops here whatever the uniform: P(k >= 60) is below 1e-25 for means under 10.
_MAX_COUNT = 60
_GOLDEN = 0x9E3779B97F4A7C15


@njit(inline="always")
def _uniform(seed, index):
    """SplitMix64's output `index` for `seed`, as a float in [0, 1) with 24 bits."""
    z = uint64(seed) + (uint64(index) + uint64(1)) * uint64(_GOLDEN)
    z = (z ^ (z >> uint64(30))) * uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> uint64(27))) * uint64(0x94D049BB133111EB)
    z = z ^ (z >> uint64(31))
    return float(z >> uint64(40)) * (1.0 / 16777216.0)


@njit(inline="always")
def _count(lam, uniform):
    """The Poisson(lam) count whose CDF first reaches `uniform`."""
    p = math.exp(-lam)
    cdf = p
    k = 0
    while uniform > cdf and k < _MAX_COUNT:
        k += 1
        p *= lam / k
        cdf += p
    return k


@on_torch_threads
@njit(parallel=True, cache=True)
def _counts(mean, seed, out):
    for i in prange(mean.shape[0]):
        out[i] = _count(float(mean[i]), _uniform(seed, i))


@on_torch_threads
@njit(parallel=True, cache=True)
def _dark(mean, dsnu, normal, full_well, read_noise, seed, out):
    for i in prange(mean.shape[0]):
        electrons = _count(float(mean[i]), _uniform(seed, i)) + dsnu[i]
        out[i] = min(electrons, full_well) + read_noise * normal[i]


def poisson_counts(mean_e: torch.Tensor, seed: int) -> torch.Tensor:
    """Poisson counts (float32, 1-D) of means `mean_e` (1-D float32, each below 10 e-); count i
    depends only on seed, i and mean i.

    Example:
        >>> counts = poisson_counts(torch.full((4,), 0.5), seed=0)
        >>> counts.shape
        torch.Size([4])
    """
    out = np.empty(mean_e.shape[0], np.float32)
    _counts(mean_e.contiguous().numpy(), np.uint64(seed), out)
    return torch.from_numpy(out)


def dark_electrons(
    mean_e: torch.Tensor,
    dsnu_e: torch.Tensor,
    read_normal: torch.Tensor,
    full_well_e: float,
    read_noise_e: float,
    seed: int,
    out: torch.Tensor,
) -> torch.Tensor:
    """Electrons of pixels that are all dim, in one pass: Poisson(mean_e) + dsnu_e, clipped at
    full_well_e, plus read_noise_e * read_normal. Every tensor is float32 and contiguous, of one
    shape; the counts are those of poisson_counts(mean_e, seed). Returns `out`."""
    _dark(
        mean_e.view(-1).numpy(),
        dsnu_e.reshape(-1).numpy(),
        read_normal.view(-1).numpy(),
        np.float32(full_well_e),
        np.float32(read_noise_e),
        np.uint64(seed),
        out.view(-1).numpy(),
    )
    return out
