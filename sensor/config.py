"""SensorConfig: every physical parameter of the simulated sensor, with its unit in its name."""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..privacy import READOUT_UNITS

CFA_PATTERNS = ("none", "rggb", "bggr", "grbg", "gbrg")
NONCE_MODES = ("fixed", "per_frame")


@dataclass(frozen=True)
class ReadoutConfig:
    """How the ADC walks the photosites: unit moved by the key, block size, nonce per frame or fixed."""

    unit: str = "pixel"
    block: int = 8
    nonce: str = "fixed"

    def __post_init__(self) -> None:
        if self.unit not in READOUT_UNITS:
            raise ValueError(f"readout.unit must be one of {READOUT_UNITS}, got {self.unit!r}")
        if not isinstance(self.block, int) or self.block < 1:
            raise ValueError(f"readout.block must be a positive integer (pixels), got {self.block!r}")
        if self.nonce not in NONCE_MODES:
            raise ValueError(f"readout.nonce must be one of {NONCE_MODES}, got {self.nonce!r}")


@dataclass(frozen=True)
class SensorConfig:
    """An EMVA 1288-style sensor. Electrons (e), digital numbers (DN), seconds (s), degrees C (c)."""

    name: str = "custom"
    qe: tuple[float, ...] = (0.5, 0.6, 0.5)
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
    cfa: str = "none"
    channels: int = 3
    serial: int = 0
    readout: ReadoutConfig = field(default_factory=ReadoutConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "qe", tuple(float(q) for q in _as_sequence(self.qe, "qe")))
        if isinstance(self.readout, dict):
            object.__setattr__(self, "readout", _build(ReadoutConfig, self.readout, "readout"))
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
        """A copy with some fields changed (readout may be a dict of its own fields)."""
        return _build(SensorConfig, {**self.to_dict(), **overrides}, "sensor")

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "sensor config") -> SensorConfig:
        return _build(cls, data, where)


def _build(cls, data: dict[str, Any], where: str):
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping of fields, got {type(data).__name__}")
    names = [f.name for f in dataclasses.fields(cls)]
    for name in data:
        if name not in names:
            close = difflib.get_close_matches(str(name), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{where}: unknown field {name!r}{hint}; allowed: {', '.join(names)}")
    return cls(**data)


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


def preset_names() -> list[str]:
    folder = resources.files("privcam.configs") / "sensors"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_preset(name: str) -> SensorConfig:
    """A shipped preset from configs/sensors/NAME.yaml."""
    names = preset_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown sensor preset {name!r}{hint}; available: {', '.join(names)}")
    path = resources.files("privcam.configs") / "sensors" / f"{name}.yaml"
    return load_config(Path(str(path)))


def load_config(path: Path) -> SensorConfig:
    """A SensorConfig from a YAML file; errors name the file."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from None
    data.pop("source", None)
    data.pop("description", None)
    try:
        return SensorConfig.from_dict(data, str(path))
    except ValueError as err:
        message = str(err)
        raise ValueError(message if message.startswith(str(path)) else f"{path}: {message}") from None
