"""The key schedule: every permutation privcam uses, derived from (key, label, n)."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Literal

import numpy as np
import torch

from .keys import Key

ReadoutUnit = Literal["pixel", "quad", "block"]
READOUT_UNITS: tuple[str, ...] = ("pixel", "quad", "block")
_DOMAIN = b"privcam-perm-v1\0"


def permutation(key: Key, label: str, n: int) -> np.ndarray:
    """Keyed permutation of range(n) as int64: shuffled.flat[j] = plain.flat[perm[j]].

    Sort keys are shake_256(domain + key + label + NUL + n as u64le); a stable argsort
    of them read as little-endian uint64 is the permutation (DESIGN.md pins this).
    """
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


def readout_label(
    height: int, width: int, unit: ReadoutUnit = "pixel", block: int = 8, nonce: int | None = None
) -> str:
    """The schedule label of a sensor readout (DESIGN.md, "Labels")."""
    label = f"readout/{height}x{width}"
    if unit == "quad":
        label += "/quad"
    elif unit == "block":
        label += f"/block{block}"
    if nonce is not None:
        label += f"/nonce/{nonce}"
    return label


def readout_permutation(
    key: Key,
    height: int,
    width: int,
    unit: ReadoutUnit = "pixel",
    block: int = 8,
    nonce: int | None = None,
) -> np.ndarray:
    """Pixel permutation (length H*W) of a keyed sensor readout, read-only (results are cached).

    "pixel" moves single photosites; "quad" moves 2x2 Bayer cells and "block" moves b x b
    blocks whole, keeping the layout inside each unit.
    """
    if unit not in READOUT_UNITS:
        raise ValueError(f"readout unit must be one of {READOUT_UNITS}, got {unit!r}")
    if height < 1 or width < 1:
        raise ValueError(f"frame size must be positive, got {height}x{width}")
    if nonce is not None and (not isinstance(nonce, int | np.integer) or nonce < 0):
        raise ValueError(f"nonce must be a non-negative integer or None, got {nonce!r}")
    if unit == "block" and (not isinstance(block, int | np.integer) or block < 1):
        raise ValueError(f"block size must be a positive integer, got {block!r}")
    return _readout_permutation(key, int(height), int(width), unit, int(block), None if nonce is None else int(nonce))


def readout_inverse_permutation(
    key: Key, height: int, width: int, unit: ReadoutUnit = "pixel", block: int = 8, nonce: int | None = None
) -> np.ndarray:
    """The inverse of readout_permutation (keyed position of each plain pixel), cached too:
    shuffle(x, inverse) unshuffles a frame without recomputing it."""
    return _readout_inverse(key, int(height), int(width), unit, int(block), None if nonce is None else int(nonce))


@lru_cache(maxsize=16)
def _readout_inverse(key: Key, height: int, width: int, unit: str, block: int, nonce: int | None) -> np.ndarray:
    inverse = inverse_permutation(readout_permutation(key, height, width, unit, block, nonce))
    inverse.flags.writeable = False
    return inverse


@lru_cache(maxsize=16)
def _readout_permutation(key: Key, height: int, width: int, unit: str, block: int, nonce: int | None) -> np.ndarray:
    """Readout permutations cost about 60 ms at 1080p and are asked for every frame: keep recent ones."""
    perm = _compute_readout(key, height, width, unit, block, nonce)
    perm.flags.writeable = False
    return perm


def _compute_readout(key: Key, height: int, width: int, unit: str, block: int, nonce: int | None) -> np.ndarray:
    label = readout_label(height, width, unit, block, nonce)
    if unit == "pixel":
        return permutation(key, label, height * width)
    size = 2 if unit == "quad" else block
    if height % size or width % size:
        raise ValueError(
            f"{unit} readout of {size}x{size} units needs H and W divisible by {size}, got {height}x{width}"
        )
    return unit_to_pixel_permutation(permutation(key, label, (height // size) * (width // size)), height, width, size)


def unit_to_pixel_permutation(unit_perm: np.ndarray, height: int, width: int, size: int) -> np.ndarray:
    """Expand a permutation of size x size units into the pixel permutation that moves them."""
    units_w = width // size
    rows, cols = np.divmod(np.arange(height * width, dtype=np.int64), width)
    src_unit = unit_perm[(rows // size) * units_w + cols // size]
    src_rows = (src_unit // units_w) * size + rows % size
    src_cols = (src_unit % units_w) * size + cols % size
    return src_rows * width + src_cols


def inverse_permutation(perm: np.ndarray) -> np.ndarray:
    inverse = np.empty_like(perm)
    inverse[perm] = np.arange(perm.size, dtype=perm.dtype)
    return inverse
