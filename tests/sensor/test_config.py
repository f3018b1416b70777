import math
from pathlib import Path

import pytest
import yaml

from privcam.sensor import Sensor, SensorConfig, load_config, load_preset, preset_names

PRESET_DIR = Path(__file__).resolve().parents[2] / "configs" / "sensors"


def test_presets_load_and_cite_their_sources():
    assert set(preset_names()) == {"generic_cmos", "phone_imx363", "machine_vision_12bit"}
    for name in preset_names():
        config = load_preset(name)
        assert config.name == name
        raw = yaml.safe_load((PRESET_DIR / f"{name}.yaml").read_text())
        assert len(raw["source"]) > 80, f"{name} must say where its numbers come from"


def test_phone_preset_follows_isetcam_imx363():
    config = load_preset("phone_imx363")
    assert (config.full_well_e, config.read_noise_e, config.bit_depth, config.black_level_dn) == (6000, 5.0, 10, 64)
    assert config.prnu == pytest.approx(0.007)
    assert config.cfa == "rggb" and config.readout.unit == "quad" and config.readout.mode == "masked"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("read_noise_e", -1.0, r"read_noise_e must be >= 0 \(electrons\), got -1.0"),
        ("bit_depth", 17, r"bit_depth must be 1..16 \(bits\)"),
        ("full_well_e", 0, r"full_well_e must be > 0 \(electrons\)"),
        ("exposure_s", math.nan, r"exposure_s must be a number, got nan"),
        ("qe", [0.5, 1.2, 0.5], r"qe must be each in \(0, 1\]"),
        ("prnu", 0.7, r"prnu must be in \[0, 0.5\)"),
        ("black_level_dn", 5000, r"black_level_dn must be in \[0, 4095\)"),
        ("cfa", "rgbw", r"sensor: cfa is 'rgbw' \(did you mean 'rggb'\?\); allowed: none, rggb"),
        ("readout", {"unit": "row"}, r"readout\.unit is 'row'; allowed: pixel, quad, block"),
        ("readout", {"mode": "per_frme"}, r"readout\.mode is 'per_frme' \(did you mean 'per_frame'\?\)"),
        ("readout", {"mode": "fixed"}, r"readout\.mode is 'fixed'; allowed: paper, per_frame, masked"),
        (
            "readout",
            {"mode": "per_frame", "nonce": 3},
            r"readout\.nonce must be unset \(each frame gets its own nonce\)",
        ),
    ],
)
def test_bad_values_name_field_and_unit(field, value, message):
    with pytest.raises(ValueError, match=message):
        load_preset("generic_cmos").replace(**{field: value})


def test_unknown_fields_get_a_suggestion(tmp_path):
    with pytest.raises(ValueError, match=r"unknown field 'read_noise' \(did you mean 'read_noise_e'\?\)"):
        SensorConfig.from_dict({"read_noise": 2})
    bad = tmp_path / "bad.yaml"
    bad.write_text("full_well_e: [unclosed\n")
    with pytest.raises(ValueError, match=r"bad\.yaml:2: not valid YAML"):
        load_config(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("bit_depth: 20\n")
    with pytest.raises(ValueError, match=r"wrong.yaml:1: bit_depth must be 1..16"):
        load_config(wrong)
    typo = tmp_path / "typo.yaml"
    typo.write_text("name: typo\nreadout:\n  unit: quad\n  mode: paper\n  blok: 4\n")
    with pytest.raises(ValueError, match=r"typo.yaml:5: unknown field 'readout.blok' \(did you mean 'block'\?\)"):
        load_config(typo)
    with pytest.raises(ValueError, match="did you mean 'phone_imx363'"):
        load_preset("phone_imx36")


def test_derived_quantities_and_hash():
    config = load_preset("phone_imx363")
    assert config.system_gain_dn_per_e == pytest.approx(0.16)
    # the bent response gives 0.5% less than the 6000 e- well out, just before the ADC tops out (5994 e-)
    assert config.saturation_e == pytest.approx(6000 * (1 - 0.005))
    assert config.replace(nonlinearity=0.0).saturation_e == pytest.approx((1023 - 64) / 0.16)
    warmer = config.replace(temperature_c=config.temperature_c + config.dark_doubling_c)
    assert warmer.dark_current_at_temperature_e_per_s == pytest.approx(2 * config.dark_current_at_temperature_e_per_s)
    assert warmer.config_hash != config.config_hash
    assert config.replace().config_hash == config.config_hash


def test_from_preset_overrides():
    sensor = Sensor.from_preset("generic_cmos", seed=3, read_noise_e=1.0, readout={"unit": "quad"})
    assert sensor.config.read_noise_e == 1.0 and sensor.config.readout.unit == "quad" and sensor.seed == 3
