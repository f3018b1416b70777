"""SensorConfig: every physical parameter of the simulated sensor, with its unit in its name, and the
shipped presets (configs/sensors/NAME.yaml), found through one Registry."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..base.registry import shipped_files
from ..base.schema import ConfigError, SourceLines, build, read_yaml
from ..privacy.readout import Readout

CFA_PATTERNS = ("none", "rggb", "bggr", "grbg", "gbrg")
# Fields of a sensor YAML file that describe it for people and are not settings.
DESCRIPTIVE_FIELDS = ("description", "source")


@dataclass(frozen=True)
class SensorConfig:
    """An EMVA 1288-style sensor. Electrons (e), digital numbers (DN), seconds (s), degrees C (c).

    `readout` is the order the ADC reads the photosites out in when a key is given; a sensor's
    readout carries no nonce (each frame gets its own in "per_frame" mode).
    """

    name: str = "custom"
    qe: tuple[float, ...] | float = (0.5, 0.6, 0.5)
    full_well_e: float = 10000.0
    conversion_gain_dn_per_e: float = 0.38
    analog_gain: float = 1.0
    read_noise_e: float = 3.0
    row_noise_e: float = 0.0
    column_noise_e: float = 0.0
    dark_current_e_per_s: float = 5.0
    reference_temperature_c: float = 25.0
    dark_doubling_c: float = 6.5
    temperature_c: float = 25.0
    dsnu_e: float = 1.0
    prnu: float = 0.01
    black_level_dn: float = 100.0
    bit_depth: int = 12
    exposure_s: float = 0.01
    white_photons: float = 20000.0
    cfa: Literal["none", "rggb", "bggr", "grbg", "gbrg"] = "none"
    channels: int = 3
    serial: int = 0
    readout: Readout = field(default_factory=Readout)

    def __post_init__(self) -> None:
        object.__setattr__(self, "qe", tuple(float(q) for q in _as_sequence(self.qe, "qe")))
        _check(isinstance(self.readout, Readout), "readout", "a privcam Readout", self.readout)
        _check(self.readout.nonce is None, "readout.nonce", "unset (each frame gets its own nonce)", self.readout.nonce)
        _check(all(0 < q <= 1 for q in self.qe), "qe", "each in (0, 1] (electrons per photon)", self.qe)
        for name, unit in [
            ("full_well_e", "electrons"),
            ("conversion_gain_dn_per_e", "DN per electron"),
            ("analog_gain", "times"),
            ("dark_doubling_c", "degrees C"),
            ("exposure_s", "seconds"),
            ("white_photons", "photons"),
        ]:
            _check(_number(getattr(self, name)) and getattr(self, name) > 0, name, f"> 0 ({unit})", getattr(self, name))
        for name in ("read_noise_e", "row_noise_e", "column_noise_e", "dark_current_e_per_s", "dsnu_e"):
            _check(
                _number(getattr(self, name)) and getattr(self, name) >= 0, name, ">= 0 (electrons)", getattr(self, name)
            )
        _check(_number(self.prnu) and 0 <= self.prnu < 0.5, "prnu", "in [0, 0.5) (fraction of the signal)", self.prnu)
        _check(
            isinstance(self.bit_depth, int) and 1 <= self.bit_depth <= 16, "bit_depth", "1..16 (bits)", self.bit_depth
        )
        _check(
            _number(self.black_level_dn) and 0 <= self.black_level_dn < self.max_dn,
            "black_level_dn",
            f"in [0, {self.max_dn}) (DN at {self.bit_depth} bits)",
            self.black_level_dn,
        )
        for name in ("temperature_c", "reference_temperature_c"):
            _check(_number(getattr(self, name)), name, "a number (degrees C)", getattr(self, name))
        _check(self.cfa in CFA_PATTERNS, "cfa", f"one of {CFA_PATTERNS}", self.cfa)
        if self.cfa == "none":
            _check(self.channels in (1, 3), "channels", "1 or 3 for cfa 'none'", self.channels)
            _check(len(self.qe) == self.channels, "qe", f"{self.channels} values, one per channel", self.qe)
        else:
            _check(self.channels == 1, "channels", "1 for a Bayer sensor (one raw plane)", self.channels)
            _check(len(self.qe) == 3, "qe", "3 values (R, G, B filters) for a Bayer sensor", self.qe)
            _check(
                self.readout.unit != "block" or self.readout.block % 2 == 0,
                "readout.block",
                "even on a Bayer sensor",
                self.readout.block,
            )
        _check(isinstance(self.serial, int) and self.serial >= 0, "serial", "a non-negative integer", self.serial)

    @property
    def max_dn(self) -> int:
        return 2**self.bit_depth - 1

    @property
    def system_gain_dn_per_e(self) -> float:
        """K of EMVA 1288: DN per electron, conversion gain times analog gain."""
        return self.conversion_gain_dn_per_e * self.analog_gain

    @property
    def dark_current_at_temperature_e_per_s(self) -> float:
        doublings = (self.temperature_c - self.reference_temperature_c) / self.dark_doubling_c
        return self.dark_current_e_per_s * 2.0**doublings

    @property
    def saturation_e(self) -> float:
        """Saturation capacity: the full well or the ADC's top, whichever comes first."""
        return min(self.full_well_e, (self.max_dn - self.black_level_dn) / self.system_gain_dn_per_e)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["qe"] = list(self.qe)
        return data

    @property
    def config_hash(self) -> str:
        """A short hash of every setting: frames record which sensor made them."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

    def replace(self, **overrides: Any) -> SensorConfig:
        """A copy with some fields changed; `readout` may be a Readout or a dict of the fields it changes."""
        data = self.to_dict()
        for name, value in overrides.items():
            if name == "readout" and isinstance(value, dict):
                value = {**data["readout"], **value}
            data[name] = value.to_dict() if isinstance(value, Readout) else value
        return self.from_dict(data, "sensor")

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "sensor config") -> SensorConfig:
        """A validated SensorConfig; errors name `where`, the field and what is allowed."""
        return build(cls, data, SourceLines(where))


def _check(ok: bool, name: str, expected: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"{name} must be {expected}, got {value!r}")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value  # NaN != NaN


def _as_sequence(value: Any, name: str) -> tuple:
    if isinstance(value, int | float):
        return (value,)
    if isinstance(value, list | tuple) and all(_number(v) for v in value):
        return tuple(value)
    raise ValueError(f"{name} must be a number or a list of numbers, got {value!r}")


PRESETS = shipped_files("sensor preset", "privcam.configs", "sensors")  # configs/sensors/NAME.yaml


def preset_names() -> list[str]:
    return PRESETS.names()


def load_preset(name: str) -> SensorConfig:
    """A shipped preset from configs/sensors/NAME.yaml."""
    try:
        path = PRESETS.get(name)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return load_config(path)


def load_config(path: str | Path) -> SensorConfig:
    """A SensorConfig from a YAML file; errors name the file, the line and the field."""
    data, lines = read_yaml(path, "sensor file")
    return build(SensorConfig, {k: v for k, v in data.items() if k not in DESCRIPTIVE_FIELDS}, lines)
