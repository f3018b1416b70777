"""Keyed (deformable) operators, the model converter and the model zoo."""

from .convert import BACKENDS, KeyConversionError, to_keyed
from .keyed_model import KeyedModel, KeyMismatchError
from .zoo import create_model, list_models, register_model

__all__ = [
    "BACKENDS",
    "KeyConversionError",
    "KeyMismatchError",
    "KeyedModel",
    "create_model",
    "list_models",
    "register_model",
    "to_keyed",
]
