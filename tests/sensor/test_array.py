"""One physical array per sensor: every capture is a region (or a binning) of the same fixed patterns."""

import numpy as np
import pytest

from privcam.sensor import Sensor, load_preset
from privcam.sensor.array import TILE, Region, pattern_field


def small_array(**overrides):
    return load_preset("generic_cmos").replace(**{"array_hw": [512, 512], **overrides})


def test_a_region_sees_the_arrays_fixed_patterns_exactly():
    """A 128x128 region at offset (40, 64) against the full 512x512 array."""
    full = Sensor(small_array(roi_offset=[0, 0]))._fixed_patterns((512, 512, 3))
    region = Sensor(small_array(roi_offset=[40, 64]))._fixed_patterns((128, 128, 3))
    for name in ("gain", "dsnu"):
        assert np.array_equal(region[name].numpy(), full[name][40:168, 64:192].numpy()), name
    assert np.array_equal(region["columns"].numpy(), full["columns"][:, 64:192].numpy())


def test_overlapping_dark_captures_agree_on_the_overlap():
    """Without temporal noise a dark frame is its fixed patterns: two regions agree where they overlap."""
    quiet = small_array(read_noise_e=0.0, row_noise_e=0.0, dark_current_e_per_s=0.0, dsnu_e=20.0, column_noise_e=5.0)
    a = Sensor(quiet.replace(roi_offset=[100, 30])).capture_photons(np.zeros((200, 300, 3), np.float32)).data
    b = Sensor(quiet.replace(roi_offset=[250, 200])).capture_photons(np.zeros((100, 250, 3), np.float32)).data
    assert np.array_equal(a[150:200, 170:300], b[0:50, 0:130])
    assert a.std() > 5  # the patterns are there to compare


def test_tiles_do_not_depend_on_the_region_that_drew_them():
    whole = pattern_field(7, "prnu", Region(0, 0, 2 * TILE, 2 * TILE), 1)
    corner = pattern_field(7, "prnu", Region(TILE - 3, TILE - 5, 10, 12), 1)
    assert np.array_equal(corner, whole[TILE - 3 : TILE + 7, TILE - 5 : TILE + 7])
    assert not np.array_equal(pattern_field(8, "prnu", Region(0, 0, 4, 4), 1), whole[:4, :4])  # another serial
    assert not np.array_equal(pattern_field(7, "dsnu", Region(0, 0, 4, 4), 1), whole[:4, :4])  # another pattern


def test_binning_sums_the_photosites_of_the_same_array():
    photosites = Sensor(small_array(roi_offset=[8, 16]))._fixed_patterns((128, 128, 3))
    binned = Sensor(small_array(roi_offset=[8, 16], binning=2))._fixed_patterns((64, 64, 3))

    def blocks(values):
        return values.numpy().reshape(64, 2, 64, 2, 3)

    np.testing.assert_allclose(binned["gain"].numpy(), blocks(photosites["gain"]).mean((1, 3)), rtol=1e-6)
    np.testing.assert_allclose(binned["dsnu"].numpy(), blocks(photosites["dsnu"]).sum((1, 3)), rtol=1e-5, atol=1e-5)
    columns = photosites["columns"].numpy().reshape(1, 64, 2, 3).sum(2) * 2
    np.testing.assert_allclose(binned["columns"].numpy(), columns, rtol=1e-5, atol=1e-5)


def test_binned_dark_signal_and_read_noise_add_up():
    """A 2x2 binned pixel collects 4 photosites' dark current and 4 read noise variances."""
    config = load_preset("machine_vision_12bit").replace(
        dsnu_e=0.0, prnu=0.0, row_noise_e=0.0, column_noise_e=0.0, dark_current_e_per_s=2000.0, read_noise_e=4.0,
        dcnu=0.0, hot_pixel_fraction=0.0, nonlinearity=0.0,
    )  # fmt: skip
    gain = config.system_gain_dn_per_e
    for binning in (1, 2):
        frame = Sensor(config.replace(binning=binning)).capture_photons(np.zeros((200, 200), np.float32)).data
        electrons = (frame.astype(float) - config.black_level_dn) / gain
        dark = config.dark_current_at_temperature_e_per_s * config.exposure_s * binning**2
        assert electrons.mean() == pytest.approx(dark, rel=0.02)
        assert electrons.var() == pytest.approx(dark + 16.0 * binning**2 + 1 / (12 * gain**2), rel=0.05)


def test_frames_are_centred_regions_by_default():
    frame = Sensor.from_preset("generic_cmos").capture_image(np.zeros((28, 28, 3), np.uint8))
    assert frame.metadata["region"] == [(2160 - 28) // 2 // 2 * 2, (3840 - 28) // 2 // 2 * 2, 28, 28, 1]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"array_hw": [0, 100]}, r"array_hw must be \[rows, columns\], two integers >= 1 \(photosites\)"),
        ({"roi_offset": [-1, 0]}, r"roi_offset must be \[row, column\], two integers >= 0 \(photosites\)"),
        ({"binning": 0}, r"binning must be an integer >= 1 \(photosites per pixel side\)"),
        ({"unknown_switch": True}, r"unknown field 'unknown_switch'"),
    ],
)
def test_bad_array_settings_name_the_field_and_unit(overrides, message):
    with pytest.raises(ValueError, match=message):
        small_array(**overrides)


def test_bayer_arrays_refuse_binning_and_odd_offsets():
    bayer = load_preset("phone_imx363")
    with pytest.raises(ValueError, match="binning must be 1 on a Bayer sensor"):
        bayer.replace(binning=2)
    with pytest.raises(ValueError, match="roi_offset must be even on a Bayer sensor"):
        bayer.replace(roi_offset=[1, 0])


def test_a_region_outside_the_array_is_refused_before_any_work():
    camera = Sensor(small_array(roi_offset=[400, 0]))
    with pytest.raises(ValueError, match=r"reads photosite rows 400..528 .* outside the sensor's array of 512x512"):
        camera.capture_photons(np.zeros((128, 128, 3), np.float32))
    assert camera.frame_index == 0
