"""SensorConfig: every physical parameter of the simulated sensor, with its unit in its name, and the
shipped presets (configs/sensors/NAME.yaml), found through one Registry."""

from __future__ import annotations

import dataclasses
import functools
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
    # The physical array: (rows, columns) of photosites. A capture reads a region of it at
    # roi_offset (row, column; None: centred), binning x binning photosites per pixel.
    array_hw: tuple[int, ...] = (3000, 4000)
    roi_offset: tuple[int, ...] | None = None
    binning: int = 1
    # Physics switches; each is off at its default.
    dcnu: float = 0.0  # dark current non-uniformity: relative std of a photosite's dark current
    hot_pixel_fraction: float = 0.0  # photosites with hot_pixel_dark_factor times the dark current
    hot_pixel_dark_factor: float = 50.0
    dead_pixel_fraction: float = 0.0  # photosites with no response to light
    nonlinearity: float = 0.0  # fraction of the signal lost at the full well (bending from 70% of it)
    lens_shading_corner: float = 1.0  # relative illumination at the array's corners (cos^4 law)
    f_number: float | None = None  # the lens's f-number: a Gaussian blur of the Airy core; None: no blur
    pixel_pitch_um: float = 3.0
    wavelength_nm: float = 550.0
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
        _check(
            _integers(self.array_hw, 2, 1), "array_hw", "[rows, columns], two integers >= 1 (photosites)", self.array_hw
        )
        object.__setattr__(self, "array_hw", tuple(self.array_hw))
        if self.roi_offset is not None:
            _check(
                _integers(self.roi_offset, 2, 0),
                "roi_offset",
                "[row, column], two integers >= 0 (photosites), or null for a centred region",
                self.roi_offset,
            )
            object.__setattr__(self, "roi_offset", tuple(self.roi_offset))
        _check(
            isinstance(self.binning, int) and not isinstance(self.binning, bool) and self.binning >= 1,
            "binning",
            "an integer >= 1 (photosites per pixel side)",
            self.binning,
        )
        for name, low, high, unit in [
            ("dcnu", 0.0, 2.0, "fraction of the mean dark current"),
            ("hot_pixel_fraction", 0.0, 0.1, "fraction of the photosites"),
            ("dead_pixel_fraction", 0.0, 0.1, "fraction of the photosites"),
            ("nonlinearity", 0.0, 0.5, "fraction of the signal lost at the full well"),
        ]:
            value = getattr(self, name)
            _check(_number(value) and low <= value < high, name, f"in [{low:g}, {high:g}) ({unit})", value)
        _check(
            _number(self.hot_pixel_dark_factor) and self.hot_pixel_dark_factor >= 1,
            "hot_pixel_dark_factor",
            ">= 1 (times the mean dark current)",
            self.hot_pixel_dark_factor,
        )
        _check(
            _number(self.lens_shading_corner) and 0 < self.lens_shading_corner <= 1,
            "lens_shading_corner",
            "in (0, 1] (relative illumination at the corners; 1: no shading)",
            self.lens_shading_corner,
        )
        _check(
            self.f_number is None or (_number(self.f_number) and self.f_number > 0),
            "f_number",
            "> 0 (the lens's f-number), or null for no blur",
            self.f_number,
        )
        _check(
            _number(self.pixel_pitch_um) and self.pixel_pitch_um > 0,
            "pixel_pitch_um",
            "> 0 (micrometres)",
            self.pixel_pitch_um,
        )
        _check(
            _number(self.wavelength_nm) and 300 <= self.wavelength_nm <= 1200,
            "wavelength_nm",
            "in [300, 1200] (nanometres)",
            self.wavelength_nm,
        )
        if self.cfa != "none":
            _check(self.binning == 1, "binning", "1 on a Bayer sensor (binning would mix colour filters)", self.binning)
            _check(
                self.roi_offset is None or all(v % 2 == 0 for v in self.roi_offset),
                "roi_offset",
                "even on a Bayer sensor (the colour filter pattern repeats every 2 photosites)",
                self.roi_offset,
            )

    @property
    def blur_sigma_photosites(self) -> float:
        """The lens blur as a Gaussian: 0.42 lambda N, the Gaussian fit to the Airy disk's core
        (Zhang, Zerubia and Olivo-Marin, Applied Optics 2007), in photosites; 0 without a lens."""
        return 0.0 if self.f_number is None else 0.42 * self.wavelength_nm * 1e-3 * self.f_number / self.pixel_pitch_um

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
        """Saturation capacity, the signal at saturation over K (EMVA 1288): the full well (as the
        nonlinear response gives it out) or the ADC's top, whichever comes first."""
        return min(
            self.full_well_e * (1 - self.nonlinearity), (self.max_dn - self.black_level_dn) / self.system_gain_dn_per_e
        )

    @property
    def mean_dark_current_e_per_s(self) -> float:
        """The array's mean dark current at `temperature_c`: hot pixels raise it (DCNU keeps the mean)."""
        hot = self.hot_pixel_fraction * (self.hot_pixel_dark_factor - 1)
        return self.dark_current_at_temperature_e_per_s * (1 + hot)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["qe"] = list(self.qe)
        return data

    @functools.cached_property
    def config_hash(self) -> str:
        """A short hash of every setting: frames record which sensor made them (computed once: the
        config is frozen)."""
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


def _integers(value: Any, count: int, least: int) -> bool:
    return (
        isinstance(value, list | tuple)
        and len(value) == count
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= least for v in value)
    )


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


def load_sensor(spec: str | Path) -> SensorConfig:
    """A sensor by preset name (configs/sensors/NAME.yaml) or by the path of a sensor YAML file."""
    path = Path(spec)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return load_config(path)
    return load_preset(str(spec))


def load_config(path: str | Path) -> SensorConfig:
    """A SensorConfig from a YAML file; errors name the file, the line and the field."""
    data, lines = read_yaml(path, "sensor file")
    return build(SensorConfig, {k: v for k, v in data.items() if k not in DESCRIPTIVE_FIELDS}, lines)
