"""kornia augmentations on protected frames: pointwise ones as they are, spatial ones keyed.
Names are imported on first use."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submod_attrs={
        "forms": ["KEYED_FORMS", "POINTWISE_SAFE", "KeyedAugmentationError", "KeyedForm", "check_keyed"],
        "keyed": ["KeyedAugmentation", "keyed_augment"],
    },
)
