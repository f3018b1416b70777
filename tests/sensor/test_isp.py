"""The ISP renders a revealed frame so that it looks like the scene it captured."""

import numpy as np
import pytest
import skimage.data

from privcam.sensor import Frame, Sensor, load_preset


@pytest.mark.parametrize(("preset", "limit"), [("generic_cmos", 3.0), ("phone_imx363", 6.0)])
def test_a_revealed_frame_looks_like_the_scene(preset, limit, key):
    scene = skimage.data.astronaut()
    frame = Sensor.from_preset(preset).capture_image(scene, key=key)
    view = frame.reveal(key).to_rgb8().astype(float)
    assert np.abs(view - scene).mean() < limit  # mean absolute error in 8-bit sRGB steps
    assert view.mean() == pytest.approx(scene.mean(), rel=0.02)  # neither darker nor brighter


def test_lens_shading_is_corrected_in_physical_order_only(key):
    """A grey card in the corner and at the centre of a strongly shaded array: the raw codes fall
    off towards the corner, the views do not."""
    config = load_preset("phone_imx363").replace(lens_shading_corner=0.3)
    grey = np.full((64, 64, 3), 128, np.uint8)
    views, raw = [], []
    for offset in ([0, 0], None):
        frame = Sensor(config.replace(roi_offset=offset)).capture_image(grey, key=key)
        revealed = frame.reveal(key)
        raw.append(revealed.data.astype(float).mean() - config.black_level_dn)
        views.append(revealed.to_rgb8().astype(float)[4:-4, 4:-4].mean())
        assert frame.to_rgb8().shape == (64, 64, 3)  # a protected frame renders too, its order unchanged
    assert raw[0] < 0.4 * raw[1]  # the array's corner gets less light
    assert views == [pytest.approx(128, abs=4)] * 2


def test_frames_saved_without_white_levels_still_render(tmp_path):
    frame = Sensor.from_preset("generic_cmos").capture_image(np.full((16, 16, 3), 200, np.uint8))
    metadata = {k: v for k, v in frame.metadata.items() if k not in ("white_dn", "region", "array_hw")}
    view = Frame(frame.data, metadata).to_rgb8()
    assert view.shape == (16, 16, 3) and view.dtype == np.uint8 and view.std() < 10


def test_crafted_metadata_is_refused_not_rendered(key):
    config = load_preset("phone_imx363").replace(lens_shading_corner=0.5)
    frame = Sensor(config).capture_image(np.full((16, 16, 3), 90, np.uint8))
    for bad, message in [
        ({"white_dn": [1.0, 0.0, 2.0]}, "white_dn must be 3 positive values"),
        ({"white_dn": [1.0]}, "white_dn must be 3 positive values"),
        ({"region": [0, 0, 16 * 10**6, 16 * 10**6, 10**6]}, r"region .* does not fit a \(16, 16\) frame"),
        ({"region": [0, 0, 32, 32, 1]}, r"region .* does not fit a \(16, 16\) frame"),
    ]:
        with pytest.raises(ValueError, match=message):
            Frame(frame.data, {**frame.metadata, **bad}).to_rgb8()
