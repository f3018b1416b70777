"""kornia augmentations on protected frames: pointwise ones as they are, spatial ones keyed.

keyed_augment(aug, shuffle(x, p_in), readout, params) == shuffle(aug(x, params=params), p_out)
for the same sampled parameters, without forming the scene-order frame: the keyed forms
(forms.py) turn kornia's parameters into taps over scene positions (taps.py) and read the
protected frame through the readout permutation.
"""

from __future__ import annotations

import torch
from kornia.augmentation.base import _AugmentationBase
from torch import nn

from .forms import KEYED_FORMS, check_keyed
from .readout import Readout
from .run import Taps, run_taps
from .taps import SeparableTaps


def keyed_augment(
    aug: _AugmentationBase, x: torch.Tensor, readout: Readout, params: dict[str, torch.Tensor] | None = None
) -> torch.Tensor:
    """Apply kornia augmentation `aug` to protected frames x (B, C, H, W) in `readout` order.

    params: kornia's sampled parameters (aug.forward_parameters(x.shape)); sampled when None.
    Returns (B, C, H_out, W_out) in the readout order of the output size.
    """
    return KeyedAugmentation([aug], readout)(x, None if params is None else [params])


class KeyedAugmentation(nn.Module):
    """kornia augmentations in sequence, on protected frames (B, C, H, W) in `readout` order.

    Consecutive flips and crops are fused into the taps before them, so a crop + flip pipeline
    reads each frame once.
    """

    def __init__(self, augmentations: list[_AugmentationBase], readout: Readout) -> None:
        super().__init__()
        for aug in augmentations:
            check_keyed(aug)
        self.augmentations = nn.ModuleList(augmentations)
        self.readout = readout

    def forward(self, x: torch.Tensor, params: list[dict[str, torch.Tensor]] | None = None) -> torch.Tensor:
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
                    x = x if pending is None else run_taps(x, pending, self.readout)
                    pending = taps
                shape = torch.Size((*shape[:2], *taps.size))
                continue
            x = x if pending is None else run_taps(x, pending, self.readout)
            pending = None
            x = aug(x, params=p) if form is None else form.frames(aug, x, p, self.readout)
            shape = x.shape
        return x if pending is None else run_taps(x, pending, self.readout)


def _check_frames(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"keyed augmentation expects frames (B, C, H, W), got {getattr(x, 'shape', type(x))}")
    if x.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"keyed augmentation expects float32 or float64 frames, got {x.dtype}")
