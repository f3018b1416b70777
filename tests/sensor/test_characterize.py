import json

import pytest

from privcam.sensor import Sensor, preset_names
from privcam.sensor.array import pattern_field
from privcam.sensor.characterize import characterize, main


@pytest.mark.parametrize("preset", ["generic_cmos", "phone_imx363", "machine_vision_12bit"])
def test_every_preset_passes_characterisation(preset, tmp_path):
    result = characterize(Sensor.from_preset(preset), tmp_path, progress=False)
    failed = [c for c in result.checks if not c.passed]
    assert not failed, "\n" + result.table()
    quantities = {c.quantity for c in result.checks}
    assert {
        "system_gain_dn_per_e",
        "read_noise_e",
        "saturation_e",
        "dark_current_e_per_s",
        "dsnu_e",
        "prnu",
        "dcnu",
        "hot_pixel_fraction",
        "dead_pixel_fraction",
        "linearity_error_pct",
        "snr_max",
        "dynamic_range_db",
    } <= quantities
    # defects are found exactly: the counts are those of the array's region that was measured
    config = Sensor.from_preset(preset).config
    channels = 3 if config.cfa == "none" and config.channels == 3 else 1
    defects = pattern_field(config.serial, "defects", Sensor(config).region((512, 512)), channels)
    found = {q: result.planes[0].__dict__[q] * defects.size for q in ("hot_pixel_fraction", "dead_pixel_fraction")}
    assert round(found["hot_pixel_fraction"]) == (defects >= 1 - config.hot_pixel_fraction).sum()
    assert round(found["dead_pixel_fraction"]) == (defects < config.dead_pixel_fraction).sum()
    report = json.loads((tmp_path / "characterization.json").read_text())
    assert report["passed"] is True and len(report["planes"]) == {"generic_cmos": 3, "phone_imx363": 4}.get(preset, 1)
    for plot in ("ptc.png", "report.png"):
        assert (tmp_path / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_characterisation_notices_a_wrong_model(tmp_path):
    """The checks can fail: a sensor whose gain is not what its config says."""
    sensor = Sensor.from_preset("machine_vision_12bit")
    result = characterize(sensor, progress=False, levels=30)
    for claim, quantity in [
        ({"conversion_gain_dn_per_e": 0.4}, "system_gain_dn_per_e"),
        ({"dcnu": 0.25}, "dcnu"),
        ({"nonlinearity": 0.01}, "linearity_error_pct"),
        ({"hot_pixel_fraction": 0.0002}, "hot_pixel_fraction"),
    ]:
        wrong = result.checks_against(sensor.config.replace(**claim))
        assert not next(c for c in wrong if c.quantity == quantity).passed, claim


def test_command_line(tmp_path, capsys):
    assert "phone_imx363" in preset_names()
    assert main(["--sensor", "machine_vision_12bit", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "all checks passed" in printed and "system_gain_dn_per_e" in printed


def test_command_line_takes_a_sensor_yaml_file(tmp_path, capsys):
    """A sensor of one's own, as a YAML file: characterised like a preset; a typo'd preset name is named."""
    sensor_file = tmp_path / "my_sensor.yaml"
    sensor_file.write_text(
        "name: my_sensor\nqe: [0.7]\nchannels: 1\nfull_well_e: 8000\nconversion_gain_dn_per_e: 0.45\n"
        "read_noise_e: 2.0\ndsnu_e: 1.0\nprnu: 0.01\narray_hw: [1024, 1280]\n"
    )
    assert main(["--sensor", str(sensor_file), "--out", str(tmp_path / "out")]) == 0
    assert "all checks passed" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "characterization.json").read_text())["sensor"] == "my_sensor"
    with pytest.raises(ValueError, match="did you mean 'phone_imx363'"):
        main(["--sensor", "phone_imx36"])
