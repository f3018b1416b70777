"""The last per-pixel stages of a capture as one parallel numba pass, and the response's bend.

`electrons_to_dn` turns electrons into codes in one pass over the frame: the response's bend, row
and column noise, conversion gain, black level, rounding and the ADC's range (as separate tensor
operations, a pass over memory each). The bend is defined once, as the scalar `bend`, compiled
into the pass and, as the ufunc `bent_response`, used on arrays (the characterisation's model).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, vectorize

from ..base.threads import on_torch_threads

# Where the response starts to bend, as a fraction of the full well: the EMVA 1288 photon transfer
# fit (up to 70% of saturation) sees a linear sensor, the linearity error the bend.
NONLINEAR_KNEE = 0.7


@njit(inline="always")
def _over_knee(electrons, full_well_e):
    """How far past the knee the signal is: 0 below it, 1 at the full well."""
    return max(electrons / full_well_e - NONLINEAR_KNEE, 0.0) / (1.0 - NONLINEAR_KNEE)


@njit(inline="always")
def bend(electrons, full_well_e, nonlinearity):
    """The sense node's response: linear up to NONLINEAR_KNEE of the full well, then bending
    smoothly to lose `nonlinearity` of the signal at the full well."""
    over = _over_knee(electrons, full_well_e)
    return electrons - nonlinearity * full_well_e * over * over


@vectorize(["float64(float64, float64, float64)", "float32(float32, float64, float64)"], cache=True)
def bent_response(electrons, full_well_e, nonlinearity):
    """`bend` over arrays (numpy ufunc): the response of electrons (any shape)."""
    return bend(electrons, full_well_e, nonlinearity)


@vectorize(["float64(float64, float64, float64)", "float32(float32, float64, float64)"], cache=True)
def bent_response_slope(electrons, full_well_e, nonlinearity):
    """d bend / d electrons: how much the bend scales a small change (noise) in the signal."""
    return 1.0 - 2.0 * nonlinearity * _over_knee(electrons, full_well_e) / (1.0 - NONLINEAR_KNEE)


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
