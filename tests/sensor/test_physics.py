"""The sensor's physics switches, each against what it should do: dark current non-uniformity,
hot and dead pixels, the bent response near the full well, lens shading and the lens blur."""

import numpy as np
import pytest

from privcam.sensor import Sensor, load_preset
from privcam.sensor.array import pattern_field
from privcam.sensor.pixels import NONLINEAR_KNEE


def bare(**overrides):
    """A mono sensor with every temporal and fixed-pattern noise off, then `overrides`."""
    quiet = {
        "read_noise_e": 0.0, "row_noise_e": 0.0, "column_noise_e": 0.0, "dsnu_e": 0.0, "prnu": 0.0,
        "dark_current_e_per_s": 0.0, "dcnu": 0.0, "hot_pixel_fraction": 0.0, "dead_pixel_fraction": 0.0,
        "nonlinearity": 0.0, "array_hw": [512, 512],
    }  # fmt: skip
    return load_preset("machine_vision_12bit").replace(**{**quiet, **overrides})


def electrons(config, photons=0.0, size=(256, 256), frames=1):
    camera = Sensor(config)
    field = np.full(size, photons / config.exposure_s, np.float32)
    data = np.mean([camera.capture_photons(field).data.astype(float) for _ in range(frames)], axis=0)
    return (data - config.black_level_dn) / config.system_gain_dn_per_e


@pytest.mark.parametrize("dcnu", [0.0, 0.4])
def test_dark_signal_non_uniformity_grows_with_exposure_and_temperature(dcnu):
    config = bare(dark_current_e_per_s=50.0, dcnu=dcnu, temperature_c=25.0)
    spreads = {}
    for exposure, temperature in [(1.0, 25.0), (4.0, 25.0), (1.0, 38.0)]:
        dark = electrons(config.replace(exposure_s=exposure, temperature_c=temperature), frames=8)
        mean_dark = config.replace(temperature_c=temperature).dark_current_at_temperature_e_per_s * exposure
        shot = mean_dark / 8  # the temporal noise left in an average of 8 frames
        spreads[exposure, temperature] = np.sqrt(max(dark.var() - shot, 0)) / mean_dark
        assert dark.mean() == pytest.approx(mean_dark, rel=0.02)
    for spread in spreads.values():  # the spread is DCNU times the dark signal, whatever makes that signal
        assert spread == pytest.approx(dcnu, abs=0.03)


def test_hot_and_dead_pixels_sit_where_the_array_puts_them():
    config = bare(
        hot_pixel_fraction=0.001, hot_pixel_dark_factor=40.0, dead_pixel_fraction=0.001, dark_current_e_per_s=20.0
    )
    camera = Sensor(config.replace(exposure_s=2.0))
    defects = pattern_field(config.serial, "defects", camera.region((256, 256)), 1)[..., 0]
    dark = electrons(config.replace(exposure_s=2.0))
    hot = defects >= 1 - config.hot_pixel_fraction
    assert hot.sum() > 20
    mean_dark = config.dark_current_at_temperature_e_per_s * 2.0
    assert np.median(dark[hot]) == pytest.approx(40 * mean_dark, rel=0.1)
    assert np.median(dark[~hot]) == pytest.approx(mean_dark, rel=0.1)
    light = electrons(config, photons=5000.0)
    dead = defects < config.dead_pixel_fraction
    assert dead.sum() > 20
    assert light[dead].max() < 50 and light[~dead].min() > 2000  # dead photosites: no response to light


def test_the_response_bends_only_near_the_full_well():
    config = bare(nonlinearity=0.05, full_well_e=10000.0, conversion_gain_dn_per_e=0.3)
    linear = bare(full_well_e=10000.0, conversion_gain_dn_per_e=0.3)
    qe = config.qe[0]
    low = 0.5 * config.full_well_e / qe
    assert electrons(config, low, frames=4).mean() == pytest.approx(electrons(linear, low, frames=4).mean(), rel=2e-3)
    near = 0.98 * config.full_well_e / qe
    loss = 0.05 * ((0.98 - NONLINEAR_KNEE) / (1 - NONLINEAR_KNEE)) ** 2
    bent, straight = electrons(config, near, frames=4).mean(), electrons(linear, near, frames=4).mean()
    assert bent / straight == pytest.approx(1 - loss / 0.98, abs=2e-3)


def test_lens_shading_follows_the_cos4_law_over_the_whole_array():
    config = bare(lens_shading_corner=0.5, array_hw=[400, 600])
    centre = electrons(config.replace(roi_offset=[190, 290]), 8000.0, size=(20, 20), frames=4).mean()
    corner = electrons(config.replace(roi_offset=[0, 0]), 8000.0, size=(4, 4), frames=16).mean()
    assert centre == pytest.approx(8000.0 * config.qe[0], rel=0.01)
    assert corner / centre == pytest.approx(0.5, abs=0.02)


def test_the_lens_blur_is_the_airy_cores_gaussian():
    config = bare(f_number=8.0, pixel_pitch_um=1.0, wavelength_nm=600.0)
    assert config.blur_sigma_photosites == pytest.approx(0.42 * 0.6 * 8.0)
    scene = np.zeros((64, 64), np.float32)
    scene[32, 32] = 2e5 / config.exposure_s / config.qe[0]  # 2e5 e: the blurred peak stays below the full well
    image = np.mean([Sensor(config).capture_photons(scene).data.astype(float) for _ in range(4)], axis=0)
    image -= config.black_level_dn
    rows = np.arange(64)[:, None]
    sigma = np.sqrt((image * (rows - 32) ** 2).sum() / image.sum())
    assert sigma == pytest.approx(config.blur_sigma_photosites, rel=0.05)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("dcnu", -0.1, r"dcnu must be in \[0, 2\) \(fraction of the mean dark current\)"),
        ("hot_pixel_fraction", 0.5, r"hot_pixel_fraction must be in \[0, 0.1\) \(fraction of the photosites\)"),
        ("hot_pixel_dark_factor", 0.5, r"hot_pixel_dark_factor must be >= 1 \(times the mean dark current\)"),
        ("nonlinearity", 0.7, r"nonlinearity must be in \[0, 0.5\) \(fraction of the signal lost at the full well\)"),
        ("lens_shading_corner", 0.0, r"lens_shading_corner must be in \(0, 1\]"),
        ("f_number", -2.0, r"f_number must be > 0 \(the lens's f-number\), or null"),
        ("pixel_pitch_um", 0.0, r"pixel_pitch_um must be > 0 \(micrometres\)"),
        ("wavelength_nm", 5000.0, r"wavelength_nm must be in \[300, 1200\] \(nanometres\)"),
    ],
)
def test_bad_physics_settings_name_the_field_and_unit(field, value, message):
    with pytest.raises(ValueError, match=message):
        bare(**{field: value})
