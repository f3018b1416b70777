"""Sensor and ADC simulation (EMVA 1288 style) with keyed readout."""

from .config import CFA_PATTERNS, NONCE_MODES, ReadoutConfig, SensorConfig, load_config, load_preset, preset_names
from .frame import Frame, FrameKeyError
from .sensor import Sensor, srgb_to_linear

__all__ = [
    "CFA_PATTERNS",
    "NONCE_MODES",
    "Frame",
    "FrameKeyError",
    "ReadoutConfig",
    "Sensor",
    "SensorConfig",
    "load_config",
    "load_preset",
    "preset_names",
    "srgb_to_linear",
]
