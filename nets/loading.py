"""Load a saved keyed network: rebuild it from its architecture and the key, then load its weights."""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from ..privacy import AdcFormat, Key, Readout, check_fingerprint
from .convert import to_keyed
from .keyed_model import KEYED_MODEL_FILE, KeyedModel


def load_keyed(path: str | os.PathLike, model: nn.Module, key: Key, map_location: Any = "cpu") -> KeyedModel:
    """A keyed network saved with KeyedModel.save.

    Args:
        path: the file KeyedModel.save wrote (privcam-keyed-model/3).
        model: the plain architecture (its weights are replaced by the saved ones).
        key: the key it was converted with; another key is a KeyMismatchError naming both fingerprints.
        map_location: where to load the tensors.

    Example:
        >>> keyed.save("vgg.keyed.pt")  # doctest: +SKIP
        >>> again = load_keyed("vgg.keyed.pt", create_model("vgg16_bn_cifar"), key)  # doctest: +SKIP
    """
    payload = KEYED_MODEL_FILE.load(path, map_location)
    check_fingerprint(key, payload.get("key_fingerprint"), str(path))
    settings = dict(payload["settings"])
    settings["input_size"] = tuple(settings["input_size"])
    settings["readout"] = Readout.from_dict(settings["readout"])
    settings["adc"] = None if settings["adc"] is None else AdcFormat(**settings["adc"])
    if settings["fold_batchnorm"]:
        model = model.eval()
    keyed = to_keyed(model, key, **settings)
    keyed.load_state_dict(payload["state_dict"])
    return keyed
