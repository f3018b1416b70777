import json

import pytest

from privcam.sensor import Sensor, preset_names
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
    } <= quantities
    report = json.loads((tmp_path / "characterization.json").read_text())
    assert report["passed"] is True and len(report["planes"]) == {"generic_cmos": 3, "phone_imx363": 4}.get(preset, 1)
    assert (tmp_path / "ptc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_characterisation_notices_a_wrong_model(tmp_path):
    """The checks can fail: a sensor whose gain is not what its config says."""
    sensor = Sensor.from_preset("machine_vision_12bit")
    result = characterize(sensor, progress=False, levels=30)
    sensor_claims = sensor.config.replace(conversion_gain_dn_per_e=0.4)
    from privcam.sensor.characterize import _checks

    wrong = _checks(result.planes, sensor_claims)
    assert not next(c for c in wrong if c.quantity == "system_gain_dn_per_e").passed


def test_command_line(tmp_path, capsys):
    assert "phone_imx363" in preset_names()
    assert main(["--sensor", "machine_vision_12bit", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "all checks passed" in printed and "system_gain_dn_per_e" in printed
