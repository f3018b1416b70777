"""kornia augmentations on protected frames: pointwise ones as they are, spatial ones keyed."""

from .forms import KEYED_FORMS, POINTWISE_SAFE, KeyedAugmentationError, check_keyed
from .keyed import KeyedAugmentation, keyed_augment
from .readout import Readout

__all__ = [
    "KEYED_FORMS",
    "POINTWISE_SAFE",
    "KeyedAugmentation",
    "KeyedAugmentationError",
    "Readout",
    "check_keyed",
    "keyed_augment",
]
