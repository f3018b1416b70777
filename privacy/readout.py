"""The Readout value: the one description of the order in which a sensor reads its photosites out.

The sensor, Frame metadata, keyed networks, keyed augmentation and captured datasets all carry this
value; nothing else describes a readout. With a key and a frame size it gives the permutation
(DESIGN.md, "The key schedule"): shuffled.flat[j] = plain.flat[perm[j]].
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from .keys import Key

if TYPE_CHECKING:
    import numpy as np
    import torch

READOUT_UNITS: tuple[str, ...] = ("pixel", "quad", "block")
PROTECTION_MODES: tuple[str, ...] = ("paper", "per_frame", "masked")
DEFAULT_BLOCK = 8
COUNTER_BITS = 32  # a stream's nonces are (per-run prefix << COUNTER_BITS) + frame index
NONCE_BITS = 96
_SCATTER_BYTES = 4 << 20  # frames of codes this large are read out by destination block


class ReadoutError(ValueError):
    """A readout that cannot describe a frame: a bad setting, a frame size it cannot read, or a
    per-frame readout without the frame's nonce."""


@dataclass(frozen=True)
class Readout:
    """How the ADC walks the photosites, and so the order protected frames are in.

    Args:
        unit: what the key moves: "pixel" (one photosite, all its channels), "quad" (a 2x2 Bayer
            cell) or "block" (block x block pixels). The layout inside a unit is kept.
        block: the side of a block unit in pixels (unit "block" only; default 8). None otherwise.
        mode: the protection mode.
            "masked" (the default): a fresh permutation for every frame, from the frame's nonce,
                and a keyed value mask at the ADC (privacy/mask.py): code -> (code + m) mod 2^bits.
            "per_frame": the fresh permutation without the mask.
            "paper": one permutation per key and frame size (the paper's scheme, for comparison).
            Per-frame permutations come from a keyed PRP (privacy/prp.py); the paper's from the
            key schedule's SHAKE-256 sort (privacy/schedule.py).
        nonce: the frame's nonce (per-frame modes only), an integer below 2^96 that never repeats
            under a key. It is public, like an IV. A sensor's readout has none; each frame it
            reads out carries `readout.for_frame(nonce)`.

    Example:
        >>> readout = Readout(unit="quad")
        >>> perm = readout.permutation(key, 32, 48)  # doctest: +SKIP
        >>> frame = shuffle(scene, perm)  # doctest: +SKIP
    """

    unit: Literal["pixel", "quad", "block"] = "pixel"
    block: int | None = None
    mode: Literal["paper", "per_frame", "masked"] = "masked"
    nonce: int | None = None

    def __post_init__(self) -> None:
        if self.unit not in READOUT_UNITS:
            raise ReadoutError(f"readout.unit must be one of {', '.join(READOUT_UNITS)}, got {self.unit!r}")
        if self.mode not in PROTECTION_MODES:
            raise ReadoutError(f"readout.mode must be one of {', '.join(PROTECTION_MODES)}, got {self.mode!r}")
        if self.unit != "block":
            object.__setattr__(self, "block", None)
        elif self.block is None:
            object.__setattr__(self, "block", DEFAULT_BLOCK)
        elif not _integer(self.block) or self.block < 1:
            raise ReadoutError(f"readout.block must be a positive integer (pixels), got {self.block!r}")
        else:
            object.__setattr__(self, "block", int(self.block))
        if self.nonce is not None:
            if self.mode == "paper":
                raise ReadoutError(
                    "a 'paper' readout has one order per key and frame size and takes no nonce; "
                    "use mode 'masked' or 'per_frame' for a fresh order per frame"
                )
            object.__setattr__(self, "nonce", _checked_nonce(self.nonce))

    @property
    def per_frame(self) -> bool:
        """Whether every frame has its own order (and its own nonce): modes "per_frame" and "masked"."""
        return self.mode != "paper"

    @property
    def masked(self) -> bool:
        return self.mode == "masked"

    @property
    def unit_size(self) -> int:
        """The side in pixels of the unit the key moves."""
        return {"pixel": 1, "quad": 2}.get(self.unit, self.block)

    def for_frame(self, nonce: int) -> Readout:
        """This readout as it reads one frame: the same settings with the frame's nonce."""
        if self.mode == "paper":
            raise ReadoutError("a 'paper' readout takes no nonce: every frame of a size has the same order")
        return dataclasses.replace(self, nonce=nonce)

    def of_frame(self, frame_index: int, nonce: int | None = None, prefix: int = 0) -> Readout:
        """The nonce policy: the readout of frame `frame_index` of a stream in this readout.

        "paper": this readout (no nonce allowed). Per-frame modes: with `nonce`, by default
        (prefix << 32) + frame_index, where `prefix` is random per run (Sensor.nonce_prefix), so
        that no two frames under a key share an order or a mask.
        """
        if self.mode == "paper":
            if nonce is not None:
                raise ReadoutError(
                    "this readout is in 'paper' mode (one order per key and frame size) and takes no nonce; "
                    "set readout.mode to 'per_frame' or 'masked' for a fresh order per frame"
                )
            return self
        if nonce is None:
            if not 0 <= frame_index < 2**COUNTER_BITS or not 0 <= prefix < 2 ** (NONCE_BITS - COUNTER_BITS):
                raise ReadoutError(
                    f"a stream's nonce is prefix (< 2^{NONCE_BITS - COUNTER_BITS}) and frame index "
                    f"(< 2^{COUNTER_BITS}); got prefix {prefix} and frame index {frame_index}"
                )
            nonce = (prefix << COUNTER_BITS) + frame_index
        return self.for_frame(nonce)

    def check_size(self, height: int, width: int) -> None:
        """Raise ReadoutError unless frames of height x width can be read out in this order."""
        self._check_units(height, width)
        if self.per_frame and self.nonce is None:
            raise ReadoutError(
                f"a '{self.mode}' readout needs the frame's nonce (readout.for_frame(nonce)): "
                "each frame has its own order"
            )

    def _check_units(self, height: int, width: int) -> None:
        if not (_integer(height) and _integer(width) and height >= 1 and width >= 1):
            raise ReadoutError(f"frame size must be positive integers, got {height!r}x{width!r}")
        size = self.unit_size
        if height % size or width % size:
            raise ReadoutError(
                f"a {self.unit} readout moves {size}x{size} units: it needs H and W divisible by {size}, "
                f"got {height}x{width}"
            )

    def label(self, height: int, width: int) -> str:
        """The key schedule label of this readout at this size (DESIGN.md, "Labels")."""
        self.check_size(height, width)
        label = self._stream_label(height, width)
        return label if self.nonce is None else f"{label}/nonce/{self.nonce}"

    def _stream_label(self, height: int, width: int) -> str:
        label = f"readout/{height}x{width}"
        if self.unit == "quad":
            label += "/quad"
        elif self.unit == "block":
            label += f"/block{self.block}"
        return label

    def permutation(self, key: Key, height: int, width: int) -> np.ndarray:
        """The pixel permutation (H*W,) int64 of this readout: shuffled.flat[j] = plain.flat[perm[j]].

        Read-only and cached.
        """
        self._check(key, height, width)
        return _PERMUTATIONS[self.per_frame](self, key, int(height), int(width))

    def inverse(self, key: Key, height: int, width: int) -> np.ndarray:
        """The inverse permutation (keyed position of each plain pixel), cached too:
        shuffle(frame, readout.inverse(key, H, W)) gives the frame back in physical order."""
        self._check(key, height, width)
        return _INVERSES[self.per_frame](self, key, int(height), int(width))

    def _check(self, key: Key, height: int, width: int) -> None:
        if not isinstance(key, Key):
            raise TypeError(f"expected a privcam Key, got {type(key).__name__}")
        self.check_size(height, width)

    def mask(self, key: Key, height: int, width: int, channels: int, bit_depth: int) -> np.ndarray:
        """The "masked" mode's value mask of a frame, (H, W, C) uint16 below 2^bit_depth, in keyed order.

        Read-only; the two most recent are cached, so a frame captured and then revealed (the webcam
        demo) computes its mask once."""
        if not self.masked:
            raise ReadoutError(f"a '{self.mode}' readout has no value mask; mode 'masked' has one")
        self._check(key, height, width)
        return _mask(self, key, int(height), int(width), int(channels), _checked_bits(bit_depth))

    def masks(self, key: Key, nonces: list[int], height: int, width: int, channels: int, bit_depth: int) -> np.ndarray:
        """The value masks of a batch of frames of a stream in this readout (mode "masked", no nonce
        of its own), (B, H, W, C) uint16: row i is self.for_frame(nonces[i]).mask(...). Derived
        together and not cached: what keyed training and inference take for every batch."""
        from .mask import mask_rows

        if not self.masked:
            raise ReadoutError(f"a '{self.mode}' readout has no value mask; mode 'masked' has one")
        labels = self._frame_labels(key, nonces, height, width)
        masks = mask_rows(key, labels, int(height) * int(width) * int(channels), _checked_bits(bit_depth))
        return masks.reshape(len(labels), int(height), int(width), int(channels))

    def inverses(self, key: Key, nonces: list[int], height: int, width: int) -> np.ndarray:
        """The inverse permutations of a batch of frames of a stream in this readout (a per-frame
        mode, no nonce of its own), (B, H*W) int64: row i is self.for_frame(nonces[i]).inverse(key,
        H, W), the keyed PRP of every frame in one kernel call."""
        import numpy as np

        from .prp import prp_permutations
        from .schedule import unit_to_pixel_permutation

        labels = self._frame_labels(key, nonces, height, width)
        size = self.unit_size
        units = prp_permutations(key, labels, (height // size) * (width // size), inverse=True)
        if size == 1:
            return units
        pixels = np.empty((len(labels), height * width), np.int64)
        for row, unit_inverse in zip(pixels, units, strict=True):
            row[:] = unit_to_pixel_permutation(unit_inverse, height, width, size)
        return pixels

    def _frame_labels(self, key: Key, nonces: list[int], height: int, width: int) -> list[str]:
        """The schedule labels of frames of a stream in this readout, after the checks for_frame,
        label and _check make."""
        if not self.per_frame or self.nonce is not None:
            raise ReadoutError(
                f"frames are ordered by their nonces in a stream's readout (mode 'per_frame' or 'masked', "
                f"no nonce of its own), not in a {self}"
            )
        if not isinstance(key, Key):
            raise TypeError(f"expected a privcam Key, got {type(key).__name__}")
        if isinstance(nonces, str | bytes) or not isinstance(nonces, Iterable):
            raise ReadoutError(f"nonces are a list of integers, one per frame, got {type(nonces).__name__}")
        self._check_units(height, width)
        label = self._stream_label(height, width)
        return [f"{label}/nonce/{_checked_nonce(nonce)}" for nonce in nonces]

    def read_out(self, key: Key, codes: np.ndarray, bit_depth: int) -> np.ndarray:
        """What the camera sends: ADC codes (H, W) or (H, W, C), uint8 or uint16, in physical order,
        put in this readout's keyed order and masked in the "masked" mode, in one pass
        (privacy.shuffle.shuffle_codes). Frames larger than the caches are written out through the
        inverse permutation (cached too, for the reveal)."""
        from .shuffle import check_codes, shuffle_codes

        check_codes(codes, bit_depth)
        height, width = codes.shape[:2]
        mask = self._codes_mask(key, codes, bit_depth)
        if codes.nbytes >= _SCATTER_BYTES:
            return shuffle_codes(codes, inverse=self.inverse(key, height, width), mask=mask, bit_depth=bit_depth)
        return shuffle_codes(codes, perm=self.permutation(key, height, width), mask=mask, bit_depth=bit_depth)

    def reveal(self, key: Key, codes: np.ndarray, bit_depth: int) -> np.ndarray:
        """What read_out undoes: codes (H, W) or (H, W, C) as this readout sent them -> the same
        shape and dtype in physical order, the mask removed. With another key: that key's guess."""
        from .mask import remove_mask
        from .shuffle import check_codes, shuffle

        check_codes(codes, bit_depth)
        height, width = codes.shape[:2]
        if self.masked:
            codes = remove_mask(codes, self._codes_mask(key, codes, bit_depth), bit_depth)
        return shuffle(codes, self.inverse(key, height, width))

    def _codes_mask(self, key: Key, codes: np.ndarray, bit_depth: int) -> np.ndarray | None:
        """The mask of a frame of these codes in the "masked" mode, else None."""
        if not self.masked:
            return None
        channels = 1 if codes.ndim == 2 else codes.shape[2]
        return self.mask(key, codes.shape[0], codes.shape[1], channels, bit_depth)

    def read_out_tensor(self, key: Key, codes: torch.Tensor, bit_depth: int) -> torch.Tensor:
        """read_out for codes in a torch tensor, on its device (a sensor capturing on a GPU): (H, W)
        or (H, W, C) integer codes below 2^bit_depth in physical order -> the same shape and dtype in
        this readout's keyed order, masked in the "masked" mode. A per-frame order is derived on the
        device (prp_permutation_tensor), a paper-mode one is the cached permutation, uploaded; the
        mask's keystream comes from OpenSSL on the CPU, uploaded."""
        import numpy as np
        import torch

        from .prp import prp_permutation_tensor
        from .shuffle import index_tensor

        integer = isinstance(codes, torch.Tensor) and not (
            codes.dtype.is_floating_point or codes.dtype.is_complex or codes.dtype == torch.bool
        )
        if not integer or codes.dim() not in (2, 3):
            found = f"{codes.dtype} of shape {tuple(codes.shape)}" if isinstance(codes, torch.Tensor) else type(codes)
            raise ValueError(f"expected integer codes (H, W) or (H, W, C) in a torch tensor, got {found}")
        _checked_bits(bit_depth)
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= 2**bit_depth):
            raise ValueError(f"codes must lie in [0, 2^{bit_depth}) for a {bit_depth}-bit readout")
        height, width = codes.shape[:2]
        self._check(key, height, width)
        if self.per_frame:
            size = self.unit_size
            units = prp_permutation_tensor(
                key, self.label(height, width), (height // size) * (width // size), device=codes.device
            )
            perm = units if size == 1 else _pixels_of_units(units, height, width, size)
        else:
            perm = index_tensor(self.permutation(key, height, width), codes.device)
        keyed = codes.reshape(height * width, -1)[perm]
        if self.masked:
            mask = self.mask(key, height, width, keyed.shape[1], bit_depth).astype(np.int32)
            masked = keyed.to(torch.int32) + torch.from_numpy(mask).to(codes.device).reshape(keyed.shape)
            keyed = (masked & (2**bit_depth - 1)).to(codes.dtype)
        return keyed.reshape(codes.shape)

    def to_dict(self) -> dict[str, Any]:
        """The readout as JSON-safe data (Frame metadata, checkpoints, captured datasets)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Readout:
        """The inverse of to_dict; unknown fields are an error."""
        if not isinstance(data, dict):
            raise ReadoutError(f"a readout is a mapping of unit, block, mode and nonce, got {type(data).__name__}")
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ReadoutError(f"unknown readout fields {sorted(unknown)}; allowed: unit, block, mode, nonce")
        return cls(**data)

    def __str__(self) -> str:
        unit = f"block{self.block}" if self.unit == "block" else self.unit
        nonce = "" if self.nonce is None else f", nonce {self.nonce}"
        return f"{unit} readout, {self.mode} mode{nonce}"


def _integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _pixels_of_units(unit_perm: torch.Tensor, height: int, width: int, size: int) -> torch.Tensor:
    """schedule.unit_to_pixel_permutation in tensor operations, on unit_perm's device."""
    import torch

    units_w = width // size
    source = unit_perm.view(height // size, 1, units_w, 1)
    offsets = torch.arange(size, device=unit_perm.device)
    rows = (source // units_w) * size + offsets.view(1, size, 1, 1)
    columns = (source % units_w) * size + offsets.view(1, 1, 1, size)
    return (rows * width + columns).reshape(-1)


def _checked_bits(bit_depth: Any) -> int:
    if not _integer(bit_depth) or not 1 <= bit_depth <= 16:
        raise ReadoutError(f"an ADC's bit depth is an integer 1..16, got {bit_depth!r}")
    return int(bit_depth)


def _checked_nonce(nonce: Any) -> int:
    if not _integer(nonce) or not 0 <= nonce < 2**NONCE_BITS:
        raise ReadoutError(f"readout.nonce must be an integer in [0, 2^{NONCE_BITS}), got {nonce!r}")
    return int(nonce)


def _permutation(readout: Readout, key: Key, height: int, width: int) -> np.ndarray:
    perm = _unit_permutation(readout, key, height, width, inverse=False)
    perm.flags.writeable = False
    return perm


@lru_cache(maxsize=2)  # per frame, as the per-frame orders
def _mask(readout: Readout, key: Key, height: int, width: int, channels: int, bit_depth: int) -> np.ndarray:
    from .mask import mask_values

    count = height * width * channels
    mask = mask_values(key, readout.label(height, width), count, bit_depth).reshape(height, width, channels)
    mask.flags.writeable = False
    return mask


def _inverse(readout: Readout, key: Key, height: int, width: int) -> np.ndarray:
    if readout.per_frame:
        inverse = _unit_permutation(readout, key, height, width, inverse=True)
    else:
        from .schedule import inverse_permutation

        inverse = inverse_permutation(_PERMUTATIONS[False](readout, key, height, width))
    inverse.flags.writeable = False
    return inverse


# The tables by whether the readout is per frame. A paper-mode order serves every frame of a size,
# so several stay; a per-frame order serves its frame's capture and reveal, and the two last stay:
# kept longer, each new one would take fresh memory (16 MB at 1080p, page faults included).
_PERMUTATIONS = {False: lru_cache(maxsize=16)(_permutation), True: lru_cache(maxsize=2)(_permutation)}
_INVERSES = {False: lru_cache(maxsize=16)(_inverse), True: lru_cache(maxsize=2)(_inverse)}


def _unit_permutation(readout: Readout, key: Key, height: int, width: int, inverse: bool) -> np.ndarray:
    """The permutation of the readout's units (the keyed PRP per frame, the key schedule's sort for
    the paper's mode), expanded to pixels. The PRP gives the inverse directly."""
    from .prp import prp_permutation
    from .schedule import permutation, unit_to_pixel_permutation

    label, size = readout.label(height, width), readout.unit_size
    units = (height // size) * (width // size)
    if readout.per_frame:
        unit_perm = prp_permutation(key, label, units, inverse=inverse)
    else:
        unit_perm = permutation(key, label, units)
    return unit_perm if size == 1 else unit_to_pixel_permutation(unit_perm, height, width, size)
