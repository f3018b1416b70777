"""Sensor and ADC simulation (EMVA 1288 style) with keyed readout. Names are imported on first use."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submod_attrs={
        "config": [
            "CFA_PATTERNS",
            "PRESETS",
            "SensorConfig",
            "load_config",
            "load_preset",
            "load_sensor",
            "preset_names",
        ],
        "frame": ["Frame", "FrameKeyError", "stack_frames"],
        "sensor": ["Sensor", "srgb_to_linear"],
    },
)
