"""The keyed value mask of the "masked" protection mode, and how ADC codes become network inputs.

Construction "privcam-mask-v1" (pinned by golden vectors in tests/privacy/test_mask.py): the mask of
a frame of H x W positions and C channels, in keyed (readout) order, is

    m[j, c] = (little-endian uint16 number j*C + c of the ChaCha20 keystream) mod 2^bit_depth

with the 32-byte ChaCha20 key SHAKE-256(b"privcam-mask-v1\\0" + key + label), the frame readout's
schedule label (it holds the frame size, the unit and the frame's nonce), and nonce and counter 0.
At the ADC each code c becomes (c + m) mod 2^bit_depth; removing the mask is (c - m) mod 2^bit_depth.
Without the key every masked code is uniform over the ADC's range, whatever the scene.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from .keys import Key

if TYPE_CHECKING:
    import torch

_DOMAIN = b"privcam-mask-v1\0"


@dataclass(frozen=True)
class AdcFormat:
    """How ADC codes map to network inputs: input = (code - black_level_dn) / (2^bit_depth - 1 - black_level_dn).

    Args:
        bit_depth: the ADC's bits (the mask works modulo 2^bit_depth), 1..16.
        black_level_dn: the code of no light.
    """

    bit_depth: int
    black_level_dn: float

    def __post_init__(self) -> None:
        if not isinstance(self.bit_depth, int) or not 1 <= self.bit_depth <= 16:
            raise ValueError(f"bit_depth must be an integer 1..16, got {self.bit_depth!r}")
        if not 0 <= self.black_level_dn < self.max_code:
            raise ValueError(f"black_level_dn must lie in [0, {self.max_code}), got {self.black_level_dn!r}")

    @property
    def max_code(self) -> int:
        return 2**self.bit_depth - 1

    def to_unit(self, codes: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Codes -> network inputs (float; white is 1, the black level 0)."""
        return (codes - self.black_level_dn) / (self.max_code - self.black_level_dn)

    def to_codes(self, values: torch.Tensor) -> torch.Tensor:
        """Network inputs -> the integer codes they came from (exact for inputs made by to_unit)."""
        return (values * (self.max_code - self.black_level_dn) + self.black_level_dn).round()


def mask_values(key: Key, label: str, count: int, bit_depth: int) -> np.ndarray:
    """The first `count` mask values (uint16, each below 2^bit_depth) of the frame readout `label`.

    The keystream is computed in parts on torch's thread count (OpenSSL runs without the GIL):
    part k starts at ChaCha20 block b_k, the block counter that the 16-byte nonce's first four
    bytes hold (little-endian), so the parts join into the one stream."""
    return mask_rows(key, [label], count, bit_depth)[0]


def mask_rows(key: Key, labels: list[str], count: int, bit_depth: int) -> np.ndarray:
    """mask_values of several labels (a batch of frames), (len(labels), count) uint16: each frame's
    keystream in parts as mask_values makes it, a frame too small to split in one part of its own."""
    if not isinstance(key, Key):
        raise TypeError(f"expected a privcam Key, got {type(key).__name__}")
    stream = np.empty((len(labels), count), dtype="<u2")
    blocks = -(-2 * count // _CHACHA_BLOCK)
    parts = max(1, min(_parallel_parts(), blocks // _MIN_PART_BLOCKS))
    bounds = [blocks * k // parts for k in range(parts + 1)]
    output = memoryview(stream.reshape(-1).view(np.uint8))
    chacha_keys = [hashlib.shake_256(_DOMAIN + key.secret + label.encode("utf-8")).digest(32) for label in labels]

    def encrypt(row: int, part: int) -> None:
        first, end = bounds[part] * _CHACHA_BLOCK, min(bounds[part + 1] * _CHACHA_BLOCK, 2 * count)
        nonce = bounds[part].to_bytes(4, "little") + bytes(12)
        encryptor = Cipher(algorithms.ChaCha20(chacha_keys[row], nonce), mode=None).encryptor()
        offset = 2 * count * row
        encryptor.update_into(bytes(end - first), output[offset + first : offset + end])

    if parts == 1:
        for row in range(len(labels)):
            encrypt(row, 0)
    else:
        jobs = [(row, part) for row in range(len(labels)) for part in range(parts)]
        list(_keystream_pool().map(lambda job: encrypt(*job), jobs))
    return np.bitwise_and(stream, np.uint16(2**bit_depth - 1), out=stream)


_CHACHA_BLOCK = 64  # bytes per ChaCha20 block
_MIN_PART_BLOCKS = 4096  # 256 KiB: smaller masks are made in one part


def _parallel_parts() -> int:
    import torch

    return torch.get_num_threads()


@lru_cache(maxsize=1)
def _keystream_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(thread_name_prefix="privcam-mask")


# A forked process (a DataLoader worker) has none of the pool's threads: it makes its own pool.
os.register_at_fork(after_in_child=_keystream_pool.cache_clear)


def remove_mask_inputs(values: torch.Tensor, masks: torch.Tensor, adc: AdcFormat) -> torch.Tensor:
    """Network inputs of masked codes -> network inputs of the codes before the mask, exactly.

    Args:
        values: (B, C, H, W) float, AdcFormat.to_unit of masked codes, in keyed order.
        masks: (C, H, W) or (B, C, H, W), the masks (Readout.mask, channels first) in keyed order.
        adc: the frames' code format.
    """
    import torch

    codes = torch.remainder(adc.to_codes(values) - masks.to(values), 2**adc.bit_depth)
    return adc.to_unit(codes).to(values.dtype)


def mask_tensor(mask: np.ndarray) -> torch.Tensor:
    """A mask (H, W, C) uint16 as float32 (C, H, W), or masks (B, H, W, C) as (B, C, H, W), as
    remove_mask_inputs takes them."""
    import torch

    return torch.from_numpy(mask.astype(np.float32)).movedim(-1, -3).contiguous()


def apply_mask(codes: np.ndarray, mask: np.ndarray, bit_depth: int) -> np.ndarray:
    """(codes + mask) mod 2^bit_depth, uint16; codes and mask of one shape, in keyed order."""
    return (codes.astype(np.uint16) + mask.reshape(codes.shape)) & np.uint16(2**bit_depth - 1)


def remove_mask(codes: np.ndarray, mask: np.ndarray, bit_depth: int) -> np.ndarray:
    """(codes - mask) mod 2^bit_depth, uint16: the codes before the mask."""
    return (codes.astype(np.uint16) - mask.reshape(codes.shape)) & np.uint16(2**bit_depth - 1)
