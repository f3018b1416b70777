"""The per-pixel stages of a capture as parallel numba passes over the frame's float32 buffers.

Each stage of the model reads and writes every pixel; as separate tensor operations they cost a
pass over memory each (about twenty per frame). Here they are fewer:
- `shortcut_flags`: which pixels need the stage-by-stage model (dim, or possibly clipped); the
  others take noise.shortcut_electrons, shot and read noise as one Gaussian;
- `electrons_to_dn`: the response's bend, row and column noise, conversion gain, black level,
  rounding and the ADC's range, to uint16 codes.
The response's bend is defined once, as the scalar `bend`, compiled into the passes and, as the
ufunc `bent_response`, used on arrays (the characterisation's model).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange, vectorize

from ..base.threads import on_torch_threads

# Below this mean (electrons) shot noise is drawn from the Poisson law itself; above it from a
# Gaussian of equal mean and variance, which is exact in the first two moments (what the photon
# transfer curve measures) and about ten times faster.
POISSON_EXACT_BELOW_E = 10.0
# A pixel whose mean plus this many shot-noise sigmas (plus its DSNU offset) stays below the full
# well is never clipped in practice (probability below 1e-9).
CLIP_MARGIN_SIGMA = 6.0
# Where the response starts to bend, as a fraction of the full well: the EMVA 1288 photon transfer
# fit (up to 70% of saturation) sees a linear sensor, the linearity error the bend.
NONLINEAR_KNEE = 0.7


@njit(inline="always")
def bend(electrons, full_well_e, nonlinearity):
    """The sense node's response: linear up to NONLINEAR_KNEE of the full well, then bending
    smoothly to lose `nonlinearity` of the signal at the full well."""
    over = max(electrons / full_well_e - NONLINEAR_KNEE, 0.0) / (1.0 - NONLINEAR_KNEE)
    return electrons - nonlinearity * full_well_e * over * over


@vectorize(["float64(float64, float64, float64)", "float32(float32, float64, float64)"], cache=True)
def bent_response(electrons, full_well_e, nonlinearity):
    """`bend` over arrays (numpy ufunc): the response of electrons (any shape)."""
    return bend(electrons, full_well_e, nonlinearity)


@vectorize(["float64(float64, float64, float64)", "float32(float32, float64, float64)"], cache=True)
def bent_response_slope(electrons, full_well_e, nonlinearity):
    """d bend / d electrons: how much the bend scales a small change (noise) in the signal."""
    over = max(electrons / full_well_e - NONLINEAR_KNEE, 0.0) / (1.0 - NONLINEAR_KNEE)
    return 1.0 - 2.0 * nonlinearity * over / (1.0 - NONLINEAR_KNEE)


@on_torch_threads
@njit(parallel=True, cache=True)
def _flags(mean, dsnu, full_well, flags):
    count = 0
    for i in prange(mean.shape[0]):
        special = mean[i] < POISSON_EXACT_BELOW_E or (
            mean[i] + CLIP_MARGIN_SIGMA * math.sqrt(mean[i]) + dsnu[i] >= full_well
        )
        flags[i] = special
        count += special
    return count


def shortcut_flags(mean_e: np.ndarray, dsnu_e: np.ndarray, full_well_e: float) -> np.ndarray:
    """The flat indices (int64) of the pixels the one-Gaussian shortcut does not cover: mean below
    POISSON_EXACT_BELOW_E, or mean + CLIP_MARGIN_SIGMA sigma + DSNU reaching the full well.
    mean_e and dsnu_e are flat float32 arrays of one length."""
    flags = np.empty(mean_e.shape[0], np.bool_)
    count = _flags(mean_e, dsnu_e, np.float32(full_well_e), flags)
    return np.flatnonzero(flags) if count else np.empty(0, np.int64)


@on_torch_threads
@njit(parallel=True, cache=True)
def _to_dn(electrons, rows, columns, full_well, nonlinearity, gain, black, max_dn, out):
    knee = NONLINEAR_KNEE * full_well
    height, width, channels = electrons.shape
    for y in prange(height):
        for x in range(width):
            for c in range(channels):
                e = electrons[y, x, c]
                if e > knee:
                    e = bend(e, full_well, nonlinearity)
                dn = np.rint((e + rows[y, c] + columns[x, c]) * gain + black)
                out[y, x, c] = min(max(dn, 0.0), max_dn)


def electrons_to_dn(
    electrons: np.ndarray,
    rows: np.ndarray,
    columns: np.ndarray,
    full_well_e: float,
    nonlinearity: float,
    gain_dn_per_e: float,
    black_level_dn: float,
    max_dn: int,
) -> np.ndarray:
    """Electrons (H, W, C) float32 -> uint16 codes (H, W, C): the bend past NONLINEAR_KNEE of the full
    well, plus row noise rows (H, C) and column offsets columns (W, C), times the gain, plus the black
    level, rounded (half to even) and clipped to [0, max_dn]."""
    out = np.empty(electrons.shape, np.uint16)
    _to_dn(
        electrons,
        rows,
        columns,
        np.float32(full_well_e),
        np.float32(nonlinearity),
        np.float32(gain_dn_per_e),
        np.float32(black_level_dn),
        np.float32(max_dn),
        out,
    )
    return out
