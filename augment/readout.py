"""The order protected frames are in, and the index tables derived from it (cached)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from ..nets import stencil
from ..privacy.keys import Key
from ..privacy.schedule import readout_inverse_permutation, readout_permutation
from ..privacy.shuffle import _as_index


@dataclass(frozen=True)
class Readout:
    """The order protected frames are in: the key's readout permutation for each frame size."""

    key: Key
    unit: str = "pixel"
    block: int = 8
    nonce: int | None = None

    def permutation(self, height: int, width: int) -> np.ndarray:
        return readout_permutation(self.key, height, width, self.unit, self.block, self.nonce)

    def inverse(self, height: int, width: int) -> np.ndarray:
        return readout_inverse_permutation(self.key, height, width, self.unit, self.block, self.nonce)


@lru_cache(maxsize=32)
def readout_index(readout: Readout, inverse: bool, height: int, width: int, device: torch.device) -> torch.Tensor:
    """The readout permutation (or its inverse) as int64 on `device`, copied there once."""
    table = readout.inverse(height, width) if inverse else readout.permutation(height, width)
    return _as_index(table, device)


@lru_cache(maxsize=16)
def scene_coordinates(readout: Readout, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Scene row and column of each keyed position of a frame this size."""
    rows, cols = np.divmod(readout.permutation(height, width).astype(np.int64), width)
    return rows, cols


def key_table(readout: Readout, in_hw: tuple[int, int], index: np.ndarray) -> torch.Tensor:
    """Scene taps (N, K) of a same-size filter in keyed order (see nets.stencil.key_table)."""
    return torch.from_numpy(stencil.key_table(index, readout.inverse(*in_hw), readout.permutation(*in_hw)))
