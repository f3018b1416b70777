"""KeyedFrames: a batch of protected frames as network input, with the readout they are in.

Keyed networks and keyed augmentation take it instead of a bare tensor when the frames' order varies
from frame to frame (per-frame nonces) or their values are masked, and check it against their own
key and readout, so that frames of one mode, key or size never meet a network made for another.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from .keys import Key, check_fingerprint
from .mask import AdcFormat, mask_tensor, remove_mask_inputs
from .readout import Readout


@dataclass(frozen=True)
class KeyedFrames:
    """Protected frames and what they are.

    Args:
        frames: (B, C, H, W) float network inputs (AdcFormat.to_unit of the codes) in keyed order.
        readout: the readout they are in. For the per-frame modes, the stream's readout (no nonce)
            and frame i is in readout.for_frame(nonces[i]).
        nonces: B public nonces (per-frame modes), else None.
        key_fingerprint: the fingerprint of the key they were read out with.
        adc: their code format; needed when the values are masked (mode "masked").

    Example:
        >>> batch = stack_frames([sensor.capture_image(image, key=key) for image in images])  # doctest: +SKIP
        >>> logits = keyed(batch)  # doctest: +SKIP
    """

    frames: torch.Tensor
    readout: Readout
    nonces: list[int] | None
    key_fingerprint: str
    adc: AdcFormat | None = None

    def __post_init__(self) -> None:
        frames = self.frames
        if not isinstance(frames, torch.Tensor) or frames.dim() != 4 or not frames.is_floating_point():
            raise ValueError(f"KeyedFrames holds float frames (B, C, H, W), got {_describe(frames)}")
        if not isinstance(self.readout, Readout):
            raise TypeError(f"readout must be a privcam Readout, got {type(self.readout).__name__}")
        if self.readout.per_frame:
            if self.readout.nonce is not None:
                raise ValueError("a per-frame batch gives each frame's nonce in `nonces`; its readout carries none")
            if self.nonces is None or len(self.nonces) != len(frames):
                found = "none" if self.nonces is None else len(self.nonces)
                raise ValueError(
                    f"a '{self.readout.mode}' batch needs one nonce per frame: {len(frames)} frames, {found}"
                )
        elif self.nonces is not None:
            raise ValueError("a 'paper' batch has one order for every frame and takes no nonces")
        if self.readout.masked and self.adc is None:
            raise ValueError("masked frames need their code format (adc) so that the mask can be removed exactly")

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: Any) -> KeyedFrames:
        """The frames at `index` (an int, slice, list or index tensor), with their nonces."""
        if isinstance(index, int):
            index = [index]
        frames = self.frames[index]
        if self.nonces is None:
            nonces = None
        else:
            positions = range(len(self.nonces))[index] if isinstance(index, slice) else torch.as_tensor(index).tolist()
            nonces = [self.nonces[i] for i in positions]
        return replace(self, frames=frames, nonces=nonces)

    @classmethod
    def concat(cls, batches: list[KeyedFrames]) -> KeyedFrames:
        """One batch of several of one kind (key, readout, code format)."""
        first = batches[0]
        for batch in batches[1:]:
            if (batch.readout, batch.key_fingerprint, batch.adc) != (first.readout, first.key_fingerprint, first.adc):
                raise ValueError(f"cannot join frames in {batch.readout} to frames in {first.readout}")
        nonces = None if first.nonces is None else [n for b in batches for n in b.nonces]
        return replace(first, frames=torch.cat([b.frames for b in batches]), nonces=nonces)

    def readout_of(self, index: int) -> Readout:
        """The order frame `index` is in."""
        return self.readout if self.nonces is None else self.readout.for_frame(self.nonces[index])

    def unmasked(self, key: Key) -> KeyedFrames:
        """The same frames with the "masked" mode's value mask removed, exactly, in keyed order (the
        scene-order frame is never formed). Other modes come back as they are."""
        check_fingerprint(key, self.key_fingerprint, "these frames were")
        if not self.readout.masked:
            return self
        _, channels, height, width = self.frames.shape
        bits = self.adc.bit_depth
        masks = self._each_frame(lambda nonces: self.readout.masks(key, nonces, height, width, channels, bits))
        values = remove_mask_inputs(self.frames, mask_tensor(masks), self.adc)
        return replace(self, frames=values, readout=dataclasses.replace(self.readout, mode="per_frame"))

    def reveal(self, key: Key) -> torch.Tensor:
        """The frames (B, C, H, W) in scene order, for the key holder: unmasked and unshuffled."""
        height, width = self.frames.shape[-2:]
        if self.nonces is None:
            inverses = self.readout.inverse(key, height, width)[None]
        else:
            inverses = self._each_frame(lambda nonces: self.readout.inverses(key, nonces, height, width))
        return _gather_each(self.unmasked(key).frames, inverses)

    def in_order(self, key: Key, readout: Readout) -> torch.Tensor:
        """The frames (B, C, H, W), every one moved into `readout`'s order (a keyed order: the scene
        order is never formed), so that one set of index tables reads the whole batch.
        out[i].flat[j] = frames[i].flat[inverse_i[permutation[j]]], with inverse_i frame i's inverse
        order and permutation `readout`'s: frames already in that order are left as they are."""
        check_fingerprint(key, self.key_fingerprint, "these frames were")
        height, width = self.frames.shape[-2:]
        if self.nonces is None:
            in_order = readout == self.readout
        else:
            in_order = len(set(self.nonces)) == 1 and readout == self.readout_of(0)
        if in_order:
            return self.frames
        permutation = readout.permutation(key, height, width)
        if self.nonces is None:
            tables = self.readout.inverse(key, height, width)[None, permutation]
        else:
            tables = self._each_frame(lambda nonces: self.readout.inverses(key, nonces, height, width)[:, permutation])
        return _gather_each(self.frames, tables)

    def _each_frame(self, derive: Callable[[list[int]], np.ndarray]) -> np.ndarray:
        """derive(nonces) (one row per nonce) for this batch's distinct nonces, one row per frame:
        each nonce is derived once (an augmented batch shares its first frame's nonce)."""
        nonces = list(dict.fromkeys(self.nonces))
        rows = derive(nonces)
        if len(nonces) == len(self):
            return rows
        index = {nonce: row for row, nonce in enumerate(nonces)}
        return rows[[index[nonce] for nonce in self.nonces]]

    def with_frames(self, frames: torch.Tensor, readout: Readout | None = None) -> KeyedFrames:
        """The same frames' description for new values (an augmented batch; `readout` when the mode
        changes, e.g. once the mask is removed)."""
        return replace(self, frames=frames, readout=self.readout if readout is None else readout)

    @property
    def shape(self) -> torch.Size:
        return self.frames.shape

    def to(self, *args: Any, **kwargs: Any) -> KeyedFrames:
        return replace(self, frames=self.frames.to(*args, **kwargs))


def _gather_each(frames: torch.Tensor, indices: np.ndarray) -> torch.Tensor:
    """out[i].flat[j] = frames[i].flat[indices[i, j]] over the (H, W) positions of each frame."""
    batch, channels = frames.shape[:2]
    index = torch.from_numpy(np.asarray(indices)).to(frames.device).unsqueeze(1).expand(batch, channels, -1)
    return torch.gather(frames.reshape(batch, channels, -1), 2, index).reshape(frames.shape)


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__
