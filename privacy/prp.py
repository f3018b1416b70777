"""A keyed pseudorandom permutation of range(n) without a sort: the per-frame readout orders.

Construction "privcam-prp-v1" (pinned by golden vectors in tests/privacy/test_prp.py):
- The domain is a grid of a x b cells with a = ceil(sqrt(n)), b = ceil(n / a); index i is the cell
  (x, y) = (i // b, i % b). Indices past n are cycle-walked: the permutation is applied again until
  it lands below n (a*b - n < a, so this is rare).
- ROUNDS double rounds of a Feistel network with modular addition over (Z_a, Z_b):
      x = (x + TX[r][y]) mod a,   then   y = (y + TY[r][x]) mod b,   for r = 0 .. ROUNDS-1.
  Each half round is a bijection, so the whole is a permutation; its inverse runs the rounds
  backwards with subtraction.
- The round functions are whole tables read from SHAKE-256(b"privcam-prp-v1\\0" + key + label + NUL +
  n as u64le): ROUNDS*b little-endian uint64 values mod a (TX, row-major), then ROUNDS*a values
  mod b (TY). Each table entry is an independent secret, so every label (every frame's nonce) gets
  its own, unrelated permutation.

perm[j] = E(j) is the plain position shown at keyed position j, as for the key schedule.
Any one position or its inverse costs ROUNDS table reads (`prp_positions`); whole permutations are
computed by a parallel numba kernel (`prp_permutation`, or `prp_permutations` for a batch of labels).
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING

import numpy as np
from numba import njit, prange

from ..base.threads import on_torch_threads
from .keys import Key

if TYPE_CHECKING:
    import torch

ROUNDS = 4  # double rounds: 8 half rounds, as many as FF3-1's Feistel
_DOMAIN = b"privcam-prp-v1\0"
_BLOCK = 4096  # positions per work item: the block's coordinates stay in L1 while the rounds run


def grid(n: int) -> tuple[int, int]:
    """The a x b grid the permutation of range(n) walks on: a = ceil(sqrt(n)), b = ceil(n / a)."""
    a = math.isqrt(n - 1) + 1
    return a, -(-n // a)


def round_tables(key: Key, label: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """TX (ROUNDS, b) with values in [0, a) and TY (ROUNDS, a) with values in [0, b), uint32
    (unsigned, so the kernels index them without negative-index checks)."""
    tx, ty = _round_tables(key, [label], n)
    return tx[0], ty[0]


def _round_tables(key: Key, labels: list[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """round_tables of each label, stacked: (len(labels), ROUNDS, b) and (len(labels), ROUNDS, a)."""
    if not isinstance(key, Key):
        raise TypeError(f"expected a privcam Key, got {type(key).__name__}")
    if not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"a permutation needs n >= 1 positions, got {n!r}")
    a, b = grid(int(n))
    size, suffix = 8 * ROUNDS * (a + b), b"\0" + int(n).to_bytes(8, "little")
    digests = b"".join(
        hashlib.shake_256(_DOMAIN + key.secret + label.encode("utf-8") + suffix).digest(size) for label in labels
    )
    values = np.frombuffer(digests, dtype="<u8").reshape(len(labels), ROUNDS * (a + b))
    tx = (values[:, : ROUNDS * b] % np.uint64(a)).astype(np.uint32).reshape(-1, ROUNDS, b)
    ty = (values[:, ROUNDS * b :] % np.uint64(b)).astype(np.uint32).reshape(-1, ROUNDS, a)
    return tx, ty


def prp_permutation(key: Key, label: str, n: int, inverse: bool = False) -> np.ndarray:
    """The whole permutation (n,) int64, perm[j] = E(j); with inverse=True, E^-1 (the inverse permutation)."""
    return prp_permutations(key, [label], n, inverse)[0]


def prp_permutations(key: Key, labels: list[str], n: int, inverse: bool = False) -> np.ndarray:
    """The permutations (len(labels), n) int64 of several labels (a batch of frames' orders) in one
    parallel kernel call: row i is prp_permutation(key, labels[i], n, inverse)."""
    tx, ty = _round_tables(key, labels, n)
    out = np.empty((len(labels), int(n)), np.int64)
    _all_positions(int(n), tx, ty, inverse, out)
    return out


def prp_permutation_tensor(key: Key, label: str, n: int, inverse: bool = False, device: str = "cpu") -> torch.Tensor:
    """prp_permutation computed by tensor operations on a torch device (n,) int64, equal to the
    kernel's: the round tables (a few KB) go to the device, every position walks the rounds at once
    and the few that land past n walk again."""
    import torch

    tx, ty = (torch.from_numpy(t.astype(np.int64)).to(device) for t in round_tables(key, label, n))
    a, b = grid(int(n))

    def walk(index: torch.Tensor) -> torch.Tensor:
        x, y = index // b, index % b
        for r in range(ROUNDS - 1, -1, -1) if inverse else range(ROUNDS):
            if inverse:
                y = (y - ty[r, x]) % b
                x = (x - tx[r, y]) % a
            else:
                x = (x + tx[r, y]) % a
                y = (y + ty[r, x]) % b
        return x * b + y

    out = walk(torch.arange(int(n), device=device))
    outside = (out >= n).nonzero().squeeze(1)
    while outside.numel():  # cycle-walking: E again until the index lands below n
        out[outside] = walk(out[outside])
        outside = outside[out[outside] >= n]
    return out


def prp_positions(key: Key, label: str, n: int, positions: np.ndarray, inverse: bool = False) -> np.ndarray:
    """E (or E^-1) at some positions only, without computing the rest: (k,) int64 in [0, n)."""
    tx, ty = round_tables(key, label, n)
    positions = np.asarray(positions, dtype=np.int64)
    if positions.size and (positions.min() < 0 or positions.max() >= n):
        raise ValueError(f"positions must lie in [0, {n}), got [{positions.min()}, {positions.max()}]")
    out = np.empty(positions.shape, np.int64)
    _some_positions(int(n), tx, ty, inverse, positions.reshape(-1), out.reshape(-1))
    return out


@njit(inline="always")
def _walk(index, n, tx, ty, inverse):
    """E(index) (or E^-1) on the a x b grid, cycle-walked into [0, n). Unsigned arithmetic
    throughout: subtraction is done as + (modulus - t), which stays in [0, 2 * modulus)."""
    a, b = np.uint32(ty.shape[1]), np.uint32(tx.shape[1])
    rounds = tx.shape[0]
    while True:
        x = np.uint32(index // b)
        y = np.uint32(index - np.int64(x) * b)
        if inverse:
            for r in range(rounds - 1, -1, -1):
                y = y + (b - ty[r, x])
                y = y - b if y >= b else y
                x = x + (a - tx[r, y])
                x = x - a if x >= a else x
        else:
            for r in range(rounds):
                x = x + tx[r, y]
                x = x - a if x >= a else x
                y = y + ty[r, x]
                y = y - b if y >= b else y
        index = np.int64(x) * b + y
        if index < n:
            return index


@on_torch_threads
@njit(parallel=True, cache=True, boundscheck=False, fastmath=True)
def _all_positions(n, tx_all, ty_all, inverse, out):
    """out[f] = the permutation of round tables tx_all[f], ty_all[f], block by block over every frame."""
    a, b = np.uint32(ty_all.shape[2]), np.uint32(tx_all.shape[2])
    rounds = tx_all.shape[1]
    blocks = (n + _BLOCK - 1) // _BLOCK
    for item in prange(out.shape[0] * blocks):
        frame, block = item // blocks, item % blocks
        tx, ty = tx_all[frame], ty_all[frame]
        start = block * _BLOCK
        count = min(start + _BLOCK, n) - start
        xs = np.empty(_BLOCK, np.uint32)
        ys = np.empty(_BLOCK, np.uint32)
        x0 = np.uint32(start // b)
        y0 = np.uint32(start - np.int64(x0) * b)
        for j in range(count):
            xs[j] = x0
            ys[j] = y0
            y0 += 1
            if y0 == b:
                y0 = 0
                x0 += 1
        # Round by round over the block: the positions are independent, so the CPU overlaps their
        # table reads (position by position, each round waits for the one before).
        for step in range(rounds):
            if inverse:
                r = rounds - 1 - step
                tyr, txr = ty[r], tx[r]
                for j in range(count):
                    y = ys[j] + (b - tyr[xs[j]])
                    ys[j] = y - b if y >= b else y
                for j in range(count):
                    x = xs[j] + (a - txr[ys[j]])
                    xs[j] = x - a if x >= a else x
            else:
                txr, tyr = tx[step], ty[step]
                for j in range(count):
                    x = xs[j] + txr[ys[j]]
                    xs[j] = x - a if x >= a else x
                for j in range(count):
                    y = ys[j] + tyr[xs[j]]
                    ys[j] = y - b if y >= b else y
        row = out[frame]
        for j in range(count):
            index = np.int64(xs[j]) * b + ys[j]
            if index >= n:
                index = _walk(index, n, tx, ty, inverse)
            row[start + j] = index


@njit(cache=True)
def _some_positions(n, tx, ty, inverse, positions, out):
    for i in range(positions.size):
        out[i] = _walk(positions[i], n, tx, ty, inverse)
