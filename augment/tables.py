"""The order protected frames are in (a key and a Readout), and the index tables derived from it
for the keyed forms, cached."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from ..privacy import Key, Readout, index_tensor, key_table


@dataclass(frozen=True)
class Order:
    """The order of a batch of protected frames: `readout` under `key`. Hashable, so that every
    table derived from it below is computed once."""

    key: Key
    readout: Readout

    def permutation(self, height: int, width: int) -> np.ndarray:
        return self.readout.permutation(self.key, height, width)

    def inverse(self, height: int, width: int) -> np.ndarray:
        return self.readout.inverse(self.key, height, width)


@lru_cache(maxsize=32)
def order_index(order: Order, inverse: bool, height: int, width: int, device: torch.device) -> torch.Tensor:
    """The readout permutation (or its inverse) as int64 on `device`, copied there once."""
    return index_tensor(order.inverse(height, width) if inverse else order.permutation(height, width), device)


def compact(values: np.ndarray, bound: int) -> np.ndarray:
    """Index values below `bound` in the narrowest type the CPU kernels take (uint16, int32 or
    int64): the kernels read these tables at random, and at 224x224 uint16 tables made the
    resized-crop kernel 1.4x faster than int32 and int64 ones. (Never uint32 or uint64: numba
    turns their mix with int64 into float.)"""
    dtype = np.uint16 if bound <= 2**16 else np.int32 if bound <= 2**31 else np.int64
    return np.ascontiguousarray(values, dtype=dtype)


@lru_cache(maxsize=16)
def neighbour_table(order: Order, height: int, width: int) -> np.ndarray:
    """(H * W, 4): the keyed positions of each scene pixel and of its right, lower and lower-right
    neighbours (the pixel's own column or row past the frame's edge), compacted with room for one
    more value, H * W, which the kernels use for padding.

    A bilinear tap's four keyed positions are then one read instead of four random ones. Column 0
    is the inverse readout itself (inverse_table).
    """
    inverse = order.inverse(height, width).reshape(height, width)
    right = np.minimum(np.arange(width) + 1, width - 1)
    below = np.minimum(np.arange(height) + 1, height - 1)
    table = np.stack([inverse, inverse[:, right], inverse[below], inverse[below][:, right]], -1)
    return compact(table.reshape(-1, 4), height * width + 1)


@lru_cache(maxsize=16)
def inverse_table(order: Order, height: int, width: int) -> np.ndarray:
    """The inverse readout (keyed position of each scene pixel) for the CPU kernels: the neighbour
    table's first column, contiguous."""
    return np.ascontiguousarray(neighbour_table(order, height, width)[:, 0])


@lru_cache(maxsize=16)
def scene_coordinates(order: Order, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Scene row and column of each keyed position of a frame this size, compacted."""
    rows, cols = np.divmod(order.permutation(height, width).astype(np.int64), width)
    return compact(rows, height), compact(cols, width)


@dataclass(frozen=True)
class KeyedTable:
    """Keyed taps (N_out, K) of a same-size filter, N_in reading zero: `index` (int64, on the
    frames' device) for torch, `compact` (see compact()) for the CPU kernel, which reads the whole
    table once per sample (uint16 made a 224x224 motion blur 1.3x faster than int32)."""

    index: torch.Tensor
    compact: np.ndarray


def keyed_filter_table(order: Order, in_hw: tuple[int, int], index: np.ndarray, device: torch.device) -> KeyedTable:
    """A filter's scene taps (N, K) in keyed order (see privacy.key_table)."""
    table = key_table(index, order.inverse(*in_hw), order.permutation(*in_hw))
    return KeyedTable(torch.from_numpy(table).to(device), compact(table, in_hw[0] * in_hw[1] + 1))
