"""Exact Poisson counts for dim pixels, fast and reproducible: inverse-CDF sampling of given uniforms.

A dark frame puts every pixel below the Gaussian shortcut's limit (10 e-), so its shot noise is
drawn exactly for the whole frame. Walking the Poisson CDF from k = 0 until it passes a uniform
takes about mean + 1 steps, in parallel over pixels; the uniforms come from the frame's seeded
torch generator, so the counts do not depend on the thread count. The uniforms are float32: a count
whose probability is below 2^-24 is never drawn, far below what any measurement here resolves.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit, prange

from ..base.threads import on_torch_threads

# The walk stops here whatever the uniform: P(k >= 60) is below 1e-25 for means under 10.
_MAX_COUNT = 60


@on_torch_threads
@njit(parallel=True, cache=True)
def _inverse_cdf(mean, uniform, out):
    for i in prange(mean.shape[0]):
        lam = float(mean[i])
        p = math.exp(-lam)
        cdf = p
        k = 0
        while uniform[i] > cdf and k < _MAX_COUNT:
            k += 1
            p *= lam / k
            cdf += p
        out[i] = k


def poisson_counts(mean_e: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Poisson counts (float32, 1-D) of means `mean_e` (1-D, each below 10 e-), from `generator`'s uniforms.

    Example:
        >>> counts = poisson_counts(torch.full((4,), 0.5), torch.Generator().manual_seed(0))
        >>> counts.shape
        torch.Size([4])
    """
    uniform = torch.rand(mean_e.shape, generator=generator)
    out = np.empty(mean_e.shape[0], np.float32)
    _inverse_cdf(mean_e.contiguous().numpy(), uniform.numpy(), out)
    return torch.from_numpy(out)
