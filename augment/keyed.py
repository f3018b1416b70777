"""kornia augmentations on protected frames: pointwise ones as they are, spatial ones keyed.

keyed_augment(aug, shuffle(x, p_in), key, readout, params) == shuffle(aug(x, params=params), p_out)
for the same sampled parameters, without forming the scene-order frame: the keyed forms
(keyed_forms.py) turn kornia's parameters into taps over scene positions (taps.py) and read the
protected frame through the readout permutation.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import nn

from ..privacy import Key, KeyedFrames, Readout, check_fingerprint
from .forms import KEYED_FORMS, check_keyed
from .run import Taps, run_taps
from .tables import Order
from .taps import SeparableTaps


def keyed_augment(
    aug: Any,
    x: torch.Tensor,
    key: Key,
    readout: Readout | None = None,
    params: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Apply one kornia augmentation to protected frames.

    Args:
        aug: a kornia 2-D augmentation (pointwise, or one of KEYED_FORMS).
        x: (B, C, H, W) float32 or float64 frames in the keyed order of `readout` under `key`.
        key: the frames' key.
        readout: the frames' order (default: pixel units, "paper" mode).
        params: kornia's sampled parameters (aug.forward_parameters(x.shape)); sampled when None.

    Returns:
        (B, C, H_out, W_out) in the same readout's order at the output size.
    """
    return KeyedAugmentation([aug], key, readout)(x, None if params is None else [params])


class KeyedAugmentation(nn.Module):
    """kornia augmentations in sequence, on protected frames: a tensor (B, C, H, W) in one readout
    order, or a KeyedFrames batch whose frames may each have their own order and masked values.

    Consecutive flips and crops are fused into the taps before them, so a crop + flip pipeline
    reads each frame once. A KeyedFrames batch is unmasked (exactly, in keyed order), moved into
    its first frame's order so that one set of taps serves it, and augmented; it comes back in that
    order at the output size (each frame's nonce is the first frame's), since moving every frame
    back would derive each frame's order once more, and a keyed network moves the batch into its
    own order anyway. The scene order is never formed.

    Args:
        augmentations: kornia 2-D augmentations; one with no keyed form is a KeyedAugmentationError.
        key: the frames' key.
        readout: the order of tensor inputs (default: pixel units, "paper" mode); KeyedFrames
            batches carry their own.

    Example:
        >>> augment = KeyedAugmentation([K.RandomCrop((32, 32), padding=4)], key)  # doctest: +SKIP
        >>> batch = augment(protected)  # doctest: +SKIP
    """

    def __init__(self, augmentations: list[Any], key: Key, readout: Readout | None = None) -> None:
        super().__init__()
        readout = Readout(mode="paper") if readout is None else readout
        if not isinstance(key, Key) or not isinstance(readout, Readout):
            raise TypeError(f"expected a privcam Key and Readout, got {type(key).__name__}, {type(readout).__name__}")
        for aug in augmentations:
            check_keyed(aug)
        self.augmentations = nn.ModuleList(augmentations)
        self.order = Order(key, readout)

    def forward(
        self, x: torch.Tensor | KeyedFrames, params: list[dict[str, torch.Tensor]] | None = None
    ) -> torch.Tensor | KeyedFrames:
        """x: protected frames; params: one dict per augmentation (sampled when None). Returns the
        augmented frames, a KeyedFrames batch (unmasked, all in its first frame's order) for one."""
        if isinstance(x, KeyedFrames):
            return self._forward_batch(x, params)
        return self._augment(x, self.order, params)

    def _forward_batch(self, batch: KeyedFrames, params: list[dict[str, torch.Tensor]] | None) -> KeyedFrames:
        key = self.order.key
        check_fingerprint(key, batch.key_fingerprint, "these frames were")
        batch = batch.unmasked(key)
        reference = batch.readout_of(0) if len(batch) else batch.readout
        out = self._augment(batch.in_order(key, reference), Order(key, reference), params)
        nonces = None if batch.nonces is None else batch.nonces[:1] * len(batch)
        return replace(batch, frames=out, nonces=nonces)

    def _augment(self, x: torch.Tensor, order: Order, params: list[dict[str, torch.Tensor]] | None) -> torch.Tensor:
        _check_frames(x)
        if params is not None and len(params) != len(self.augmentations):
            raise ValueError(f"expected {len(self.augmentations)} parameter dicts, got {len(params)}")
        pending: Taps | None = None
        shape = x.shape
        for i, aug in enumerate(self.augmentations):
            p = aug.forward_parameters(shape) if params is None else params[i]
            name = type(aug).__name__
            form = KEYED_FORMS.get(name) if name in KEYED_FORMS else None
            if form is not None and form.taps is not None:
                taps = form.taps(aug, p, shape, x.dtype)
                if isinstance(pending, SeparableTaps) and isinstance(taps, SeparableTaps) and taps.is_gather:
                    pending = pending.then(taps)
                else:
                    x = x if pending is None else run_taps(x, pending, order)
                    pending = taps
                shape = torch.Size((*shape[:2], *taps.size))
                continue
            x = x if pending is None else run_taps(x, pending, order)
            pending = None
            x = aug(x, params=p) if form is None else form.frames(aug, x, p, order)
            shape = x.shape
        return x if pending is None else run_taps(x, pending, order)


def _check_frames(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"keyed augmentation expects frames (B, C, H, W), got {getattr(x, 'shape', type(x))}")
    if x.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"keyed augmentation expects float32 or float64 frames, got {x.dtype}")
