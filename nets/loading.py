"""Load a saved keyed network: rebuild it from its architecture and the key, then load its weights."""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from ..privacy import Key, Readout
from .convert import to_keyed
from .keyed_model import KEYED_MODEL_FILE, KeyedModel, KeyMismatchError


def load_keyed(path: str | os.PathLike, model: nn.Module, key: Key, map_location: Any = "cpu") -> KeyedModel:
    """A keyed network saved with KeyedModel.save.

    Args:
        path: the file KeyedModel.save wrote (privcam-keyed-model/2).
        model: the plain architecture (its weights are replaced by the saved ones).
        key: the key it was converted with; another key is a KeyMismatchError naming both fingerprints.
        map_location: where to load the tensors.

    Example:
        >>> keyed.save("vgg.keyed.pt")  # doctest: +SKIP
        >>> again = load_keyed("vgg.keyed.pt", create_model("vgg16_bn_cifar"), key)  # doctest: +SKIP
    """
    payload = KEYED_MODEL_FILE.load(path, map_location)
    if payload.get("key_fingerprint") != key.fingerprint:
        raise KeyMismatchError(
            f"{path} was made with the key of fingerprint {payload.get('key_fingerprint')}, "
            f"but the key given has fingerprint {key.fingerprint}"
        )
    settings = dict(payload["settings"])
    settings["input_size"] = tuple(settings["input_size"])
    settings["readout"] = Readout.from_dict(settings["readout"])
    if settings["fold_batchnorm"]:
        model = model.eval()
    keyed = to_keyed(model, key, **settings)
    keyed.load_state_dict(payload["state_dict"])
    return keyed
