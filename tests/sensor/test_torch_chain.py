"""The capture chain in torch (sensor/torch_chain.py) against the numba kernels it mirrors: the same
draws and the same codes, bit for bit on the CPU, and a Sensor on a torch device gives the frames of
the default one."""

import numpy as np
import pytest
import torch

from privcam.privacy import Readout
from privcam.sensor import Sensor, noise, torch_chain
from privcam.sensor.noise import pixel_electrons

CPU = torch.device("cpu")


def test_normals_are_the_numba_kernels_draws_tails_and_wedges_included():
    count = 1_000_000
    expected = noise.normals(seed=11, count=count)
    keys = torch_chain.stream_keys(11, count, CPU)
    hz, iz, _ = torch_chain._split(keys)
    kn, _, _ = noise.tables()
    rejected = (hz.abs().numpy() >= kn[iz.numpy()]).sum()
    assert rejected > 5000  # the ziggurat's further steps are exercised, not only its first draw
    assert (np.abs(expected) > 3.4426).sum() > 300  # and its tail
    assert np.array_equal(torch_chain.normals(keys).numpy(), expected)


def test_poisson_counts_are_the_numba_kernels_counts():
    """In float64 both: a walk in float32 means gave another count about once in 200,000."""
    uniform = torch.rand(200_000, generator=torch.Generator().manual_seed(8))
    mean = torch.cat([uniform * 10, torch.full((1000,), 1e-4), torch.full((1000,), 9.999)])
    keys = torch_chain.stream_keys(3, mean.numel(), CPU)
    counts = torch_chain.poisson_counts(mean.double(), torch_chain.uniforms(keys))
    assert torch.equal(counts, noise.poisson_counts(mean, seed=3).double())
    assert counts.max() >= 16  # long walks too, over several steps of four terms


@pytest.mark.parametrize(("low", "high"), [(0.0, 10.0), (10.0, 5000.0), (9000.0, 10500.0)])
def test_pixel_electrons_match_in_each_branch_of_the_model(low, high):
    """Dim pixels (exact Poisson), mid signal (one Gaussian), near the full well (clipped)."""
    generator = torch.Generator().manual_seed(0)
    mean = low + (high - low) * torch.rand(300_000, generator=generator)
    dsnu = 2.0 * torch.randn(300_000, generator=generator)
    expected = pixel_electrons(mean, dsnu, 10000.0, 2.5, (5, 6), torch.empty(300_000))
    got = torch_chain.pixel_electrons(mean, dsnu, 10000.0, 2.5, (5, 6))
    assert got.dtype == torch.float32 and torch.equal(got, expected)


@pytest.mark.parametrize(
    ("preset", "overrides"),
    [
        ("generic_cmos", {}),
        ("phone_imx363", {"readout": {"unit": "quad"}}),
        ("machine_vision_12bit", {"binning": 2, "readout": {"mode": "paper"}}),
    ],
)
@pytest.mark.parametrize("white_photons", [40.0, 8000.0, 200_000.0])
def test_a_sensor_on_a_torch_device_gives_the_default_sensors_frames(preset, overrides, white_photons, key):
    """Dark, mid and saturating scenes (the bend and the clip), RGB, Bayer and binned, keyed."""
    image = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    image[:8] = 255
    numba_camera = Sensor.from_preset(preset, seed=4, white_photons=white_photons, **overrides)
    torch_camera = Sensor.from_preset(preset, seed=4, device="cpu", white_photons=white_photons, **overrides)
    assert numba_camera.device is None and torch_camera.device == CPU
    torch_camera.nonce_prefix = numba_camera.nonce_prefix
    for index in (0, 5):
        expected = numba_camera.capture_image(image, key=key, frame_index=index)
        got = torch_camera.capture_image(image, key=key, frame_index=index)
        assert got.data.dtype == np.uint16 and np.array_equal(got.data, expected.data)
        assert got.metadata["readout"] == expected.metadata["readout"]
    assert isinstance(Readout.from_dict(got.metadata["readout"]), Readout)


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("tpu", "unknown torch device 'tpu': expected e.g. 'cpu', 'cuda' or 'cuda:1'"),
        ("cuda:99", r"device 'cuda:99': this machine has \d+ CUDA devices"),
        ("meta", "device 'meta': a sensor captures on 'cpu' or 'cuda'"),
    ],
)
def test_a_device_the_machine_lacks_is_refused(device, message):
    with pytest.raises(ValueError, match=message):
        Sensor.from_preset("generic_cmos", device=device)
