"""The key schedule: every permutation privcam uses is derived from (key, label, n)."""

from __future__ import annotations

import hashlib

import numpy as np
from numba import njit, prange

from ..base.threads import on_torch_threads
from .keys import Key

_DOMAIN = b"privcam-perm-v1\0"


def permutation(key: Key, label: str, n: int) -> np.ndarray:
    """Keyed permutation of range(n) as int64: shuffled.flat[j] = plain.flat[perm[j]].

    Sort keys are shake_256(domain + key + label + NUL + n as u64le); a stable argsort
    of them read as little-endian uint64 is the permutation (DESIGN.md pins this).

    Args:
        key: the secret key.
        label: what the permutation is for: a readout's label (Readout.label) or a network map's.
        n: the number of positions.

    Returns:
        (n,) int64 permutation.
    """
    import torch

    if not isinstance(key, Key):
        raise TypeError(f"expected a privcam Key, got {type(key).__name__}")
    if not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"a permutation needs n >= 1 positions, got {n!r}")
    n = int(n)
    seed = _DOMAIN + key.secret + label.encode("utf-8") + b"\0" + n.to_bytes(8, "little")
    sort_keys = np.frombuffer(hashlib.shake_256(seed).digest(8 * n), dtype="<u8")
    # Flipping the top bit maps unsigned order onto signed order; torch's stable sort of int64 is
    # several times faster than numpy's (a radix sort), with the same result.
    signed = (sort_keys ^ np.uint64(1 << 63)).view(np.int64)
    return torch.sort(torch.from_numpy(signed), stable=True).indices.numpy()


def unit_to_pixel_permutation(unit_perm: np.ndarray, height: int, width: int, size: int) -> np.ndarray:
    """Expand a permutation of size x size units into the pixel permutation that moves them.

    Args:
        unit_perm: (units,) permutation of the (height/size) x (width/size) units, row-major.
        height, width: the frame, multiples of `size`.
        size: the unit's side in pixels.

    Returns:
        (height*width,) int64: pixel (y, x) of keyed unit j is pixel (y, x) of plain unit unit_perm[j].
    """
    out = np.empty(height * width, np.int64)
    _expand_units(np.ascontiguousarray(unit_perm, dtype=np.int64), width, size, out)
    return out


@on_torch_threads
@njit(parallel=True, cache=True, boundscheck=False)
def _expand_units(unit_perm, width, size, out):
    units_w = width // size
    for j in prange(unit_perm.size):
        source = unit_perm[j]
        dest_row, dest_col = (j // units_w) * size, (j % units_w) * size
        src_row, src_col = (source // units_w) * size, (source % units_w) * size
        for dy in range(size):
            base_out = (dest_row + dy) * width + dest_col
            base_src = (src_row + dy) * width + src_col
            for dx in range(size):
                out[base_out + dx] = base_src + dx


def inverse_permutation(perm: np.ndarray) -> np.ndarray:
    """The inverse of a permutation: inverse[perm[j]] = j."""
    inverse = np.empty_like(perm)
    inverse[perm] = np.arange(perm.size, dtype=perm.dtype)
    return inverse
