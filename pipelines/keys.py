"""The run's key: loaded from `key.path`, or made there (mode 0600) on the first run."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..base.schema import ConfigError
from ..privacy import Key
from .config import RunConfig

log = logging.getLogger("privcam")


def load_or_create_key(config: RunConfig) -> Key:
    """The key of `key.path`; a new one when the file is missing and `key.create` allows it."""
    path = Path(config.key.path)
    if not path.exists():
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ConfigError(f"{config.where('key', 'path')}: create the key before torchrun: privcam keygen {path}")
        if not config.key.create:
            raise ConfigError(f"{config.where('key', 'path')}: key file {path} does not exist (privcam keygen {path})")
        Key.generate().save(path)
        log.info("created a new key at %s (mode 0600)", path)
    return Key.load(path)
