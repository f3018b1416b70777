"""Which kornia augmentations may touch protected frames: the pointwise ones as they are, the
spatial ones through their keyed forms (keyed_forms.py), listed here by kornia class name so that
listing them does not import kornia."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..base.registry import Registry

# kornia augmentations that act on each pixel alone, or on the frame's histogram (which a
# permutation keeps): they commute with the readout and apply to protected frames unchanged.
POINTWISE_SAFE = frozenset(
    {
        "ColorJiggle",
        "ColorJitter",
        "Denormalize",
        "Normalize",
        "RandomAutoContrast",
        "RandomBrightness",
        "RandomChannelDropout",
        "RandomChannelShuffle",
        "RandomContrast",
        "RandomEqualize",
        "RandomGamma",
        "RandomGrayscale",
        "RandomHue",
        "RandomInvert",
        "RandomPlanckianJitter",
        "RandomPosterize",
        "RandomRGBShift",
        "RandomSaturation",
        "RandomSolarize",
    }
)


@dataclass(frozen=True)
class KeyedForm:
    """A spatial augmentation's keyed form: taps(aug, params, shape, dtype) from its parameters alone
    (geometric), or frames(aug, x, params, order) of the protected frames (filters)."""

    taps: Callable[[Any, dict, Any, Any], Any] | None = None
    frames: Callable[[Any, Any, dict, Any], Any] | None = None
    options: Callable[[Any], None] = lambda aug: None  # raises KeyedAugmentationError for options it lacks


# Each name is a kornia class and a KeyedForm of the same name in keyed_forms.py.
KEYED_FORMS: Registry[KeyedForm] = Registry("keyed augmentation")
for _name in (
    "RandomHorizontalFlip",
    "RandomVerticalFlip",
    "RandomCrop",
    "RandomResizedCrop",
    "RandomRotation",
    "RandomPerspective",
    "RandomAffine",
    "RandomGaussianBlur",
    "RandomBoxBlur",
    "RandomMotionBlur",
    "RandomSharpness",
    "RandomGaussianNoise",
):
    KEYED_FORMS.register_lazy(_name, f"privcam.augment.keyed_forms:{_name}")


class KeyedAugmentationError(ValueError):
    """A spatial augmentation (or one of its options) that has no keyed form."""


def check_keyed(aug: Any) -> None:
    """Refuse a kornia augmentation that would act on shuffled positions, or an option of it that has
    no keyed form, with KeyedAugmentationError."""
    name = type(aug).__name__
    if name not in POINTWISE_SAFE and name not in KEYED_FORMS:
        raise KeyedAugmentationError(
            f"{name} moves pixels and has no keyed form: on protected frames it would act on shuffled "
            f"positions. Keyed forms: {', '.join(KEYED_FORMS.names())}; pointwise, applied as they are: "
            f"{', '.join(sorted(POINTWISE_SAFE))}"
        )
    if name in KEYED_FORMS:
        KEYED_FORMS.get(name).options(aug)
