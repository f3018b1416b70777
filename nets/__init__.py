"""Keyed (deformable) operators, the model converter and the model zoo. Names are imported on first use."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submod_attrs={
        "convert": ["BACKENDS", "KeyConversionError", "to_keyed"],
        "keyed_model": ["KeyedModel"],
        "stencil": ["F_PAD_MODES", "PADDING_MODES", "pad_index"],
        "loading": ["load_keyed"],
        "zoo": ["MODELS", "create_model", "list_models", "register_model"],
    },
)
