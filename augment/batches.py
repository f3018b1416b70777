"""The run file's `augment:` list: kornia augmentations by class name, applied to training batches
as they are on scene frames and in their keyed forms on protected frames."""

from __future__ import annotations

from typing import Any

import kornia.augmentation as K
import torch
from kornia.augmentation import AugmentationBase2D

from ..base.registry import Registry
from ..privacy import Key, KeyedFrames, Readout
from .keyed import KeyedAugmentation


def _kornia_augmentations() -> Registry[type]:
    """kornia's 2-D augmentations, by class name."""
    registry: Registry[type] = Registry("kornia augmentation")
    for name in dir(K):
        item = getattr(K, name)
        if isinstance(item, type) and issubclass(item, AugmentationBase2D) and not name.endswith("Base2D"):
            registry.register(name)(item)
    return registry


KORNIA_AUGMENTATIONS = _kornia_augmentations()


def create_augmentation(name: str, **options: Any) -> AugmentationBase2D:
    """A kornia 2-D augmentation by class name; lists in `options` become tuples, as kornia wants."""
    cls = KORNIA_AUGMENTATIONS.get(name)
    try:
        return cls(**{k: _tuples(v) for k, v in options.items()})
    except (TypeError, ValueError, AssertionError) as err:
        raise ValueError(f"{name}({', '.join(f'{k}={v!r}' for k, v in options.items())}): {err}") from None


class BatchAugmentation:
    """Augment training batches: frames (B, C, H, W) and their targets, labels (B,) or masks (B, H, W).

    With a key the frames are protected, a KeyedFrames batch or a tensor in `readout` order, and the
    spatial augmentations run in their keyed form (masks are not supported there: dense training on
    protected frames has no keyed masks yet).
    """

    def __init__(
        self, augmentations: list[AugmentationBase2D], key: Key | None = None, readout: Readout | None = None
    ) -> None:
        self.augmentations = augmentations
        self.keyed = None if key is None else KeyedAugmentation(augmentations, key, readout)
        self.with_masks = K.AugmentationSequential(*augmentations, data_keys=["input", "mask"])

    def __call__(
        self, frames: torch.Tensor | KeyedFrames, targets: torch.Tensor
    ) -> tuple[torch.Tensor | KeyedFrames, torch.Tensor]:
        dense = targets.dim() == 3
        if self.keyed is not None:
            if dense:
                raise ValueError("augmenting protected frames with masks is not supported; train on plain frames")
            return self.keyed(frames), targets
        if not dense:  # parameters drawn as the keyed path draws them: the same seed, the same batches
            for aug in self.augmentations:
                frames = aug(frames, params=aug.forward_parameters(frames.shape))
            return frames, targets
        out, masks = self.with_masks(frames, targets.unsqueeze(1).to(frames.dtype))
        return out, masks[:, 0].round().to(targets.dtype)


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value
