import json

import cv2
import numpy as np
import pytest
import torch

from privcam.base.store import FileFormatError
from privcam.privacy import Readout, permutation, shuffle
from privcam.sensor import Frame, FrameKeyError, Sensor, load_preset, srgb_to_linear


def scene(height=32, width=48, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("preset", "readout"),
    [
        ("generic_cmos", {"unit": "pixel"}),
        ("generic_cmos", {"unit": "block", "block": 8, "mode": "paper"}),
        ("phone_imx363", {"unit": "quad"}),
        ("phone_imx363", {"unit": "pixel", "mode": "per_frame"}),
        ("machine_vision_12bit", {"unit": "pixel", "mode": "paper"}),
    ],
)
def test_keyed_readout_is_exact(preset, readout, key):
    keyed_camera = Sensor.from_preset(preset, seed=7, readout=readout)
    plain_camera = Sensor.from_preset(preset, seed=7, readout=readout)
    for _ in range(2):
        protected = keyed_camera.capture_image(scene(), key=key)
        plain = plain_camera.capture_image(scene())
        assert protected.protected and not plain.protected
        assert not np.array_equal(protected.data, plain.data)
        revealed = protected.reveal(key)
        assert revealed.data.dtype == np.uint16
        assert np.array_equal(revealed.data, plain.data)
    if readout.get("mode", "masked") != "paper":  # the presets' default is "masked"
        nonce = (keyed_camera.nonce_prefix << 32) + 1  # the run's random prefix, then the frame index
        assert protected.readout.nonce == nonce and protected.metadata["readout"]["nonce"] == nonce


def test_same_seed_same_frame_and_any_frame_can_be_recaptured(key):
    image = scene()
    a = Sensor.from_preset("generic_cmos", seed=1)
    b = Sensor.from_preset("generic_cmos", seed=1)
    frames_a = [a.capture_image(image).data for _ in range(3)]
    frames_b = [b.capture_image(image).data for _ in range(3)]
    assert all(np.array_equal(x, y) for x, y in zip(frames_a, frames_b, strict=True))
    assert not np.array_equal(frames_a[0], frames_a[1])  # temporal noise changes frame to frame
    assert np.array_equal(
        Sensor.from_preset("generic_cmos", seed=1).capture_image(image, frame_index=2).data, frames_a[2]
    )
    other = Sensor.from_preset("generic_cmos", seed=2).capture_image(image).data
    assert not np.array_equal(other, frames_a[0])


def test_fixed_patterns_come_from_the_serial_not_the_key(key, other_key):
    dark = np.zeros((64, 64, 3), np.float32)
    config = load_preset("generic_cmos").replace(read_noise_e=0.0, row_noise_e=0.0, dark_current_e_per_s=0.0)
    camera = Sensor(config)
    a = camera.capture_photons(dark, key=key, frame_index=0).reveal(key)
    b = camera.capture_photons(dark, key=other_key, frame_index=0).reveal(other_key)
    assert np.array_equal(a.data, b.data)
    c = Sensor(config.replace(serial=config.serial + 1)).capture_photons(dark, frame_index=0)
    assert not np.array_equal(a.data, c.data)


def test_row_and_column_noise_act_in_physical_layout(key):
    config = load_preset("machine_vision_12bit").replace(
        read_noise_e=0.0, dsnu_e=0.0, prnu=0.0, dark_current_e_per_s=0.0, row_noise_e=20.0, column_noise_e=0.0
    )
    frame = Sensor(config).capture_photons(np.zeros((64, 64), np.float32), key=key).reveal(key)
    values = frame.data.astype(float)
    assert values.std(axis=1).max() <= 1.0  # each physical row is one offset
    assert values.mean(axis=1).std() > 3.0
    columns = load_preset("machine_vision_12bit").replace(
        read_noise_e=0.0, dsnu_e=0.0, prnu=0.0, dark_current_e_per_s=0.0, row_noise_e=0.0, column_noise_e=20.0
    )
    frame = Sensor(columns).capture_photons(np.zeros((64, 64), np.float32), key=key).reveal(key)
    assert frame.data.astype(float).std(axis=0).max() <= 1.0


def test_white_maps_to_white_photons():
    config = load_preset("machine_vision_12bit").replace(
        read_noise_e=0.0, row_noise_e=0.0, column_noise_e=0.0, dsnu_e=0.0, prnu=0.0, dark_current_e_per_s=0.0
    )
    frame = Sensor(config).capture_image(np.full((64, 64), 255, np.uint8))
    expected = config.white_photons * config.qe[0] * config.system_gain_dn_per_e + config.black_level_dn
    assert frame.data.mean() == pytest.approx(expected, rel=0.002)
    assert np.allclose(
        srgb_to_linear(np.arange(256, dtype=np.uint8)), srgb_to_linear(np.arange(256) / 255.0), atol=1e-6
    )
    assert srgb_to_linear(np.array([0.5]))[0] == pytest.approx(0.2140, abs=1e-4)


def test_low_light_shot_noise_is_poisson():
    """Below 10 e- the shot noise is drawn from the Poisson law: integer counts, P(0) = exp(-mean)."""
    config = load_preset("machine_vision_12bit").replace(
        qe=[1.0], conversion_gain_dn_per_e=1.0, read_noise_e=0.0, row_noise_e=0.0, column_noise_e=0.0,
        dsnu_e=0.0, prnu=0.0, dark_current_e_per_s=0.0, black_level_dn=10,
    )  # fmt: skip
    photons = np.full((200, 200), 2.0 / config.exposure_s, np.float32)
    counts = Sensor(config).capture_photons(photons).data.astype(float) - 10
    assert counts.mean() == pytest.approx(2.0, rel=0.02)
    assert counts.var() == pytest.approx(2.0, rel=0.04)
    assert (counts == 0).mean() == pytest.approx(np.exp(-2.0), rel=0.05)


def test_bad_input_is_refused_clearly():
    camera = Sensor.from_preset("generic_cmos")
    bayer = Sensor.from_preset("phone_imx363")
    with pytest.raises(ValueError, match=r"\(H, W\) or \(H, W, 3\) photons/pixel/s, got shape \(8, 8, 4\)"):
        camera.capture_photons(np.zeros((8, 8, 4)))
    with pytest.raises(ValueError, match="NaN"):
        camera.capture_photons(np.full((8, 8, 3), np.nan))
    with pytest.raises(ValueError, match=">= 0"):
        camera.capture_photons(np.full((8, 8, 3), -1.0))
    with pytest.raises(TypeError, match=r"uint8 .* or float"):
        camera.capture_image(np.zeros((8, 8, 3), np.int16))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        camera.capture_image(np.full((8, 8, 3), 2.0))
    with pytest.raises(ValueError, match="even frame size"):
        bayer.capture_image(np.zeros((9, 8, 3), np.uint8))
    with pytest.raises(TypeError, match="SensorConfig"):
        Sensor({"read_noise_e": 1})


def test_capture_leaves_the_callers_array_alone():
    radiance = np.full((16, 16, 3), 1e5, np.float32)
    Sensor.from_preset("generic_cmos").capture_photons(radiance)
    assert (radiance == 1e5).all()


def test_metadata_records_the_capture_but_never_the_key(key):
    sensor = Sensor.from_preset("phone_imx363", seed=5)
    frame = sensor.capture_image(scene(), key=key, nonce=9)
    meta = frame.metadata
    assert meta["key_fingerprint"] == key.fingerprint
    assert meta["readout"] == {"unit": "quad", "block": None, "mode": "masked", "nonce": 9}
    assert frame.readout == Readout(unit="quad", mode="masked", nonce=9)
    assert meta["preset"] == "phone_imx363" and meta["bit_depth"] == 10
    assert meta["config_hash"] == sensor.config.config_hash and meta["shape"] == [32, 48]
    assert key.secret.hex() not in json.dumps(meta)


def test_frame_files_round_trip(tmp_path, key, other_key):
    frame = Sensor.from_preset("generic_cmos").capture_image(scene(), key=key)
    path = frame.save(tmp_path / "frame.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame.npz"]
    loaded = Frame.load(path)
    assert np.array_equal(loaded.data, frame.data) and loaded.metadata == frame.metadata
    with pytest.raises(FrameKeyError, match=f"fingerprint {key.fingerprint}, not with .* {other_key.fingerprint}"):
        loaded.reveal(other_key)
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(FileFormatError, match=r"junk\.npz is not a readable privcam-frame/2 file"):
        Frame.load(tmp_path / "junk.npz")
    png = frame.save_png(tmp_path / "frame.png")
    image = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
    assert image.dtype == np.uint16 and image.shape == (32, 48, 3)
    assert np.array_equal(cv2.cvtColor(image, cv2.COLOR_BGR2RGB) >> 4, frame.data)


def test_tensors_for_networks(key):
    camera = Sensor.from_preset("phone_imx363", seed=1, readout={"mode": "paper"})
    protected = camera.capture_image(scene(), key=key)
    tensor = protected.to_tensor()
    assert tensor.shape == (1, 32, 48) and tensor.dtype == torch.float32
    assert float(tensor.min()) > -0.1 and float(tensor.max()) <= 1.0
    packed = protected.to_tensor(packed=True)
    plain_packed = protected.reveal(key).to_tensor(packed=True)
    assert packed.shape == (4, 16, 24)
    cell_order = permutation(key, "readout/32x48/quad", 16 * 24)  # the quad readout moves whole cells
    assert np.array_equal(shuffle(plain_packed, cell_order).numpy(), packed.numpy())
    with pytest.raises(ValueError, match="quad or block readout"):
        Sensor.from_preset("phone_imx363", readout={"unit": "pixel"}).capture_image(scene(), key=key).to_tensor(
            packed=True
        )
    with pytest.raises(ValueError, match="needs a Bayer frame"):
        Sensor.from_preset("generic_cmos").capture_image(scene()).to_tensor(packed=True)
    rgb = protected.reveal(key).to_rgb8()
    assert rgb.shape == (32, 48, 3) and rgb.dtype == np.uint8


def test_the_sensor_assigns_nonces_in_the_per_frame_modes_only_and_never_reuses_one(key, other_key):
    paper = Sensor.from_preset("generic_cmos", readout={"mode": "paper"})
    assert paper.capture_image(scene(), key=key).readout == Readout(mode="paper")
    with pytest.raises(ValueError, match=r"'paper' mode .* takes no nonce"):
        paper.capture_image(scene(), key=key, nonce=4)
    with pytest.raises(ValueError, match="give the key too"):
        paper.capture_image(scene(), nonce=4)
    per_frame = Sensor(load_preset("generic_cmos").replace(readout={"mode": "per_frame"}), nonce_prefix=7)
    frames = [per_frame.capture_image(scene(), key=key, frame_index=i) for i in (5, 6)]
    assert [f.readout.nonce for f in frames] == [(7 << 32) + 5, (7 << 32) + 6]  # prefix, then the frame index
    assert not np.array_equal(frames[0].data, frames[1].data)
    with pytest.raises(ValueError, match=f"nonce {(7 << 32) + 5} was already used .* {key.fingerprint}"):
        per_frame.capture_image(scene(), key=key, frame_index=5)
    per_frame.capture_image(scene(), key=other_key, frame_index=5)  # another key: its own nonces
    prefixes = {Sensor.from_preset("generic_cmos").nonce_prefix for _ in range(4)}
    assert len(prefixes) == 4  # random per sensor, so two runs never share nonces


def test_masked_frames_look_uniform_and_reveal_exactly(key, other_key):
    camera = Sensor.from_preset("machine_vision_12bit", seed=2)
    plain = Sensor.from_preset("machine_vision_12bit", seed=2).capture_image(np.zeros((32, 32), np.uint8))
    masked = camera.capture_image(np.zeros((32, 32), np.uint8), key=key)  # a black scene
    assert masked.readout.mode == "masked" and plain.data.max() < 200
    assert masked.data.std() > 1000  # codes spread over the whole 12-bit range
    assert np.array_equal(masked.reveal(key).data, plain.data)
    assert not np.array_equal(masked.reveal(other_key, strict=False).data, plain.data)
    with pytest.raises(ValueError, match="divisible by 8"):
        Sensor.from_preset("generic_cmos", readout={"unit": "block"}).capture_image(scene(30, 48), key=key)
