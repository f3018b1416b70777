"""Apply a readout permutation to frames: torch (..., H, W) or numpy (H, W[, C])."""

from __future__ import annotations

import warnings
from typing import TypeVar

import numpy as np
import torch
from numba import njit, prange

from ..base.threads import on_torch_threads
from .schedule import inverse_permutation

Frames = TypeVar("Frames", np.ndarray, torch.Tensor)


def shuffle(x: Frames, perm: np.ndarray | torch.Tensor) -> Frames:
    """Plain order -> keyed order: out.flat[j] = x.flat[perm[j]] over the (H, W) positions.

    All channels of a position move together.

    Args:
        x: torch tensor (..., H, W) (channels before space, as networks use them), or numpy array
            (H, W) or (H, W, C) (images as cameras and OpenCV store them).
        perm: (H*W,) permutation, e.g. Readout.permutation(key, H, W).

    Returns:
        x's type and shape, in keyed order.

    Example:
        >>> protected = shuffle(frames, Readout().permutation(key, 32, 32))  # doctest: +SKIP
    """
    return _gather_positions(x, perm, "shuffle")


def unshuffle(x: Frames, perm: np.ndarray | torch.Tensor) -> Frames:
    """Keyed order -> plain order, the inverse of `shuffle` with the same permutation.

    Args:
        x: as for shuffle, in keyed order.
        perm: (H*W,) the permutation the frames were shuffled with.

    Returns:
        x's type and shape, in plain order. It inverts `perm` on every call;
        shuffle(x, readout.inverse(key, H, W)) uses the cached inverse instead.
    """
    inverse = inverse_permutation(np.asarray(perm.cpu() if isinstance(perm, torch.Tensor) else perm))
    return _gather_positions(x, inverse, "unshuffle")


def index_tensor(perm: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """A permutation as an int64 tensor on `device`; cached read-only permutations are shared, not copied."""
    if isinstance(perm, torch.Tensor):
        return perm.to(device=device, dtype=torch.int64)
    array = np.asarray(perm, dtype=np.int64)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array).to(device)


def key_table(index: np.ndarray, inverse_in: np.ndarray, perm_out: np.ndarray) -> np.ndarray:
    """An index table over plain positions read in keyed order: keyed[j, t] = inverse_in[index[perm_out[j], t]].

    Args:
        index: (L_out, taps) plain input positions of each plain output position; -1 reads zero.
        inverse_in: (L_in,) inverse readout of the input (keyed position of each plain one).
        perm_out: (L_out,) permutation of the output.

    Returns:
        (L_out, taps) keyed input positions of each keyed output position; taps that read zero
        point at L_in, one past the input.
    """
    rows = index[perm_out]
    keyed = inverse_in[rows]
    keyed[rows < 0] = inverse_in.size
    return keyed


def shuffle_codes(
    codes: np.ndarray,
    perm: np.ndarray | None = None,
    inverse: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    bit_depth: int = 16,
) -> np.ndarray:
    """Codes in physical order -> keyed order, masked if `mask` is given, in one pass: what a camera
    sends. The same as apply_mask(shuffle(codes, perm), mask, bit_depth) (privacy/mask.py).

    Args:
        codes: (H, W) or (H, W, C) unsigned integer codes below 2^bit_depth, physical order.
        perm: (H*W,) the readout permutation, or instead
        inverse: (H*W,) its inverse (the keyed position of each physical one); give exactly one.
            With the inverse, the codes are written out by destination block (two streaming
            passes) instead of read at random: for frames larger than the CPU's caches, where
            random reads are slow and slowed further by other processes' memory traffic.
        mask: codes' shape, uint16, in keyed order: each code becomes (code + m) mod 2^bit_depth.
        bit_depth: the codes' bits (the mask's modulus), 1..16.

    Returns:
        codes' shape and dtype, in keyed order.

    Example:
        >>> keyed = shuffle_codes(codes, perm=readout.permutation(key, 480, 640))  # doctest: +SKIP
    """
    check_codes(codes, bit_depth)
    if (perm is None) == (inverse is None):
        raise ValueError("shuffle_codes takes either the permutation or its inverse")
    height, width = codes.shape[:2]
    table = np.asarray(perm if inverse is None else inverse, dtype=np.int64)
    _check_length(table.size, height, width, "shuffle_codes")
    if table.size >= 2**32:
        raise ValueError(f"shuffle_codes reads frames of fewer than 2^32 positions, got {height}x{width}")
    if mask is not None and mask.size != codes.size:
        raise ValueError(f"the mask has {mask.size} values but the codes {codes.size} (shape {codes.shape})")
    flat = np.ascontiguousarray(codes).reshape(height * width, -1)
    channels = flat.shape[1]
    mask_rows = np.zeros((0, channels), np.uint16) if mask is None else mask.reshape(height * width, channels)
    code_mask = np.uint16(2**bit_depth - 1)
    out = np.empty_like(flat)
    kernel = _gather_codes if inverse is None else _scatter_codes
    if np.bitwise_or.reduce(kernel(flat, table, mask_rows, code_mask, out)) > code_mask:  # every code, ORed
        raise ValueError(f"codes of bit depth {bit_depth} are at most {int(code_mask)}, got {int(codes.max())}")
    return out.reshape(codes.shape)


def check_codes(codes: np.ndarray, bit_depth: int) -> None:
    """Raise ValueError unless `codes` are ADC codes of `bit_depth` bits as shuffle_codes takes them."""
    if not isinstance(codes, np.ndarray) or codes.ndim not in (2, 3) or codes.dtype not in (np.uint8, np.uint16):
        found = f"shape {codes.shape}, {codes.dtype}" if isinstance(codes, np.ndarray) else type(codes).__name__
        raise ValueError(f"expected uint8 or uint16 codes (H, W) or (H, W, C), got {found}")
    bits = 8 * codes.itemsize
    if not isinstance(bit_depth, int | np.integer) or not 1 <= bit_depth <= bits:
        raise ValueError(f"{codes.dtype} codes hold a bit depth of 1 to {bits}, got {bit_depth!r}")


# Destination blocks of the scatter: 2^14 positions, whose codes and mask (RGB: 192 KiB) stay in L2.
_BLOCK_BITS = 14
_CHUNKS = 16  # source chunks of the scatter's first pass, for load balance


@on_torch_threads
@njit(parallel=True, cache=True, boundscheck=False)
def _gather_codes(codes, perm, mask, code_mask, out):
    """out[j] = codes[perm[j]] (+ mask); returns the OR of each block's codes (above code_mask: too wide)."""
    count, channels = codes.shape
    masked = mask.shape[0] > 0
    blocks = (count + 4095) // 4096
    bits = np.zeros(blocks, np.uint64)
    for block in prange(blocks):
        seen = np.uint64(0)
        for j in range(block * 4096, min(count, block * 4096 + 4096)):
            i = perm[j]
            for c in range(channels):
                seen |= np.uint64(codes[i, c])
                out[j, c] = (codes[i, c] + mask[j, c]) & code_mask if masked else codes[i, c]
        bits[block] = seen
    return bits


@on_torch_threads
@njit(parallel=True, cache=True, boundscheck=False)
def _scatter_codes(codes, inverse, mask, code_mask, out):
    """out[inverse[i]] = codes[i] (+ mask): first each source chunk appends its codes with their
    destinations to the destination blocks' lists (sequential reads, one write stream per block),
    then each block's list is written into the block, which stays in cache. Returns the OR of
    each source chunk's codes (above code_mask: too wide)."""
    count, channels = codes.shape
    blocks = ((count - 1) >> _BLOCK_BITS) + 1
    chunk = (count + _CHUNKS - 1) // _CHUNKS
    counts = np.zeros((_CHUNKS, blocks), np.int64)
    for c in prange(_CHUNKS):
        for i in range(c * chunk, min(count, c * chunk + chunk)):
            counts[c, inverse[i] >> _BLOCK_BITS] += 1
    cursors = np.empty((_CHUNKS, blocks), np.int64)  # where chunk c's entries of block b start
    starts = np.empty(blocks + 1, np.int64)
    total = 0
    for b in range(blocks):
        starts[b] = total
        for c in range(_CHUNKS):
            cursors[c, b] = total
            total += counts[c, b]
    starts[blocks] = total
    destinations = np.empty(count, np.uint32)  # frames have fewer than 2^32 positions
    values = np.empty((count, channels), codes.dtype)
    bits = np.zeros(_CHUNKS, np.uint64)
    for c in prange(_CHUNKS):
        cursor = cursors[c]
        seen = np.uint64(0)
        for i in range(c * chunk, min(count, c * chunk + chunk)):
            j = inverse[i]
            k = cursor[j >> _BLOCK_BITS]
            cursor[j >> _BLOCK_BITS] = k + 1
            destinations[k] = j
            for ch in range(channels):
                seen |= np.uint64(codes[i, ch])
                values[k, ch] = codes[i, ch]
        bits[c] = seen
    masked = mask.shape[0] > 0
    for b in prange(blocks):
        for k in range(starts[b], starts[b + 1]):
            j = destinations[k]
            for ch in range(channels):
                out[j, ch] = (values[k, ch] + mask[j, ch]) & code_mask if masked else values[k, ch]
    return bits


def _gather_positions(x: Frames, perm, name: str) -> Frames:
    if isinstance(x, torch.Tensor):
        if x.dim() < 2:
            raise ValueError(f"{name} expects a tensor (..., H, W), got shape {tuple(x.shape)}")
        height, width = x.shape[-2:]
        index = index_tensor(perm, x.device)
        _check_length(index.numel(), height, width, name)
        flat = x.reshape(-1, height * width)
        return torch.gather(flat, 1, index.expand(flat.shape[0], -1)).reshape(x.shape)
    if isinstance(x, np.ndarray):
        if x.ndim not in (2, 3):
            raise ValueError(f"{name} expects a numpy array (H, W) or (H, W, C), got shape {x.shape}")
        height, width = x.shape[:2]
        index = np.asarray(perm.cpu() if isinstance(perm, torch.Tensor) else perm)
        _check_length(index.size, height, width, name)
        flat = torch.from_numpy(np.ascontiguousarray(x).reshape(height * width, -1))
        # torch's row gather, on the array's memory: 1.7x numpy's take for a 1080p RGB frame
        return flat.index_select(0, index_tensor(index)).numpy().reshape(x.shape)
    raise TypeError(f"{name} expects a torch.Tensor or numpy.ndarray, got {type(x).__name__}")


def _check_length(n: int, height: int, width: int, name: str) -> None:
    if n != height * width:
        raise ValueError(
            f"{name}: the permutation has {n} positions but the frame is {height}x{width} = {height * width}; "
            "was it made for another frame size?"
        )
