"""The run file's `augment:` list: kornia augmentations by class name, for training batches."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..augment import check_keyed
from ..augment.batches import BatchAugmentation, create_augmentation
from ..base.schema import ConfigError
from .config import RunConfig

if TYPE_CHECKING:
    from ..privacy import Key


def build_augmentation(config: RunConfig, protected: bool, key: Key | None = None) -> BatchAugmentation | None:
    """The `augment:` list as a BatchAugmentation; None when the list is empty.

    Args:
        config: the run file.
        protected: whether the training frames are protected, KeyedFrames batches (then every entry
            needs a keyed form).
        key: the frames' key, needed to apply keyed forms (not to validate them).
    """
    if not config.augment:
        return None
    augmentations = []
    for i, entry in enumerate(config.augment):
        options = {"name": entry} if isinstance(entry, str) else entry
        if not isinstance(options, dict) or not isinstance(options.get("name"), str):
            raise ConfigError(
                f"{config.where('augment', i)}: an augment entry is a kornia class name or a mapping with 'name' "
                f"and its parameters, e.g. {{name: RandomCrop, size: [28, 28], padding: 2}}; got {entry!r}"
            )
        options = dict(options)
        try:
            aug = create_augmentation(options.pop("name"), **options)
            if protected:
                check_keyed(aug)
        except ValueError as err:
            raise ConfigError(f"{config.where('augment', i)}: {err}") from None
        augmentations.append(aug)
    if protected and key is None:
        return None
    return BatchAugmentation(augmentations, key if protected else None)
