"""Sensor simulation speed: frames per second of the full model with keyed readout.

    python benchmarks/sensor.py [--frames N] [--device DEVICE]

Each case captures an sRGB scene (scikit-image's astronaut, resized) through the whole model:
linearisation, PRNU, shot noise, dark current, DSNU, full well, read/row/column noise, ADC and the
keyed readout. The baseline, measured in the same run, is a bare NumPy loop of Poisson shot noise,
Gaussian read noise and ADC rounding (no fixed patterns, no readout).
Targets: >= 60 fps at 640x480 RGB and >= 12 fps at
1920x1080 RGB on 2 cores, in the default "masked" mode (a fresh order and value mask per frame).
Then dark against mid-signal frames, 1024x1024 mono (machine_vision_12bit, no key), interleaved:
a dark frame draws exact Poisson shot noise for every pixel. Target: dark no slower than mid signal.
With --device (e.g. cuda), the torch capture chain on that device too (Sensor(device=...)): its
frames checked against the numba kernels' byte for byte, and its frame rate with and without the
keyed readout (on the device, but for the mask's keystream). Target on a GPU: >= 240 fps at 1920x1080.
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np
import skimage.data

from privcam.privacy import Key
from privcam.sensor import Sensor


def fps(capture, frames: int) -> float:
    capture()
    samples = []
    for _ in range(frames):
        start = time.perf_counter()
        capture()
        samples.append(time.perf_counter() - start)
    return 1.0 / statistics.median(samples)


def bare_numpy_loop(image: np.ndarray):
    rng = np.random.default_rng(0)
    photons = image.astype(np.float64) / 255.0 * 10000.0

    def capture():
        electrons = rng.poisson(photons) + rng.normal(0.0, 3.0, photons.shape)
        return np.clip(np.round(electrons * 0.38 + 100), 0, 4095).astype(np.uint16)

    return capture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--device", help="also time the torch capture chain on this torch device (cpu, cuda)")
    args = parser.parse_args()
    key = Key.generate()
    astronaut = skimage.data.astronaut()
    results = {}
    for width, height in [(640, 480), (1920, 1080)]:
        image = cv2.resize(astronaut, (width, height), interpolation=cv2.INTER_AREA)
        baseline = fps(bare_numpy_loop(image), max(3, args.frames // 4))
        cases = {
            "generic_cmos RGB, masked (the default)": Sensor.from_preset("generic_cmos"),
            "generic_cmos RGB, per_frame": Sensor.from_preset("generic_cmos", readout={"mode": "per_frame"}),
            "generic_cmos RGB, paper": Sensor.from_preset("generic_cmos", readout={"mode": "paper"}),
            "phone_imx363 Bayer quad, masked": Sensor.from_preset("phone_imx363"),
        }
        print(f"\n{width}x{height}: baseline bare NumPy Poisson+Gaussian+ADC {baseline:6.1f} fps")
        for label, sensor in cases.items():
            rate = fps(lambda s=sensor, i=image: s.capture_image(i, key=key), args.frames)
            results[(label, width)] = rate
            print(f"  {label:<42} {rate:6.1f} fps   {rate / baseline:5.2f}x baseline")
        if args.device:
            on_device(image, key, args.device, args.frames, results[("generic_cmos RGB, masked (the default)", width)])
    dark_over_mid = dark_and_mid(args.frames)
    if args.device:
        print(f"  dark / mid: {dark_and_mid(args.frames, args.device):.2f}")
    print("\nTargets")
    for width, target in [(640, 60), (1920, 12)]:
        rate = results[("generic_cmos RGB, masked (the default)", width)]
        print(f"  {width} wide RGB, masked >= {target} fps: {rate:.1f} fps, {'met' if rate >= target else 'MISSED'}")
    verdict = "met" if dark_over_mid <= 1.0 else "MISSED"
    print(f"  dark frame time / mid-signal frame time <= 1: {dark_over_mid:.2f}, {verdict}")


def on_device(image: np.ndarray, key: Key, device: str, frames: int, numba_rate: float) -> None:
    """The torch chain on `device`: the same frames as the numba kernels, and its frame rates."""
    numba_sensor = Sensor.from_preset("generic_cmos")
    device_sensor = Sensor.from_preset("generic_cmos", device=device)
    device_sensor.nonce_prefix = numba_sensor.nonce_prefix
    expected, got = (s.capture_image(image, key=key, frame_index=0).data for s in (numba_sensor, device_sensor))
    differ = int((expected != got).sum())
    most = int(np.abs(expected.astype(np.int32) - got).max())
    print(f"  torch chain on {device}: frames equal the numba kernels' in {expected.size - differ} of {expected.size}")
    print(f"    codes (largest difference {most} DN)")
    keyed = fps(lambda: device_sensor.capture_image(image, key=key), frames)
    plain = fps(lambda: device_sensor.capture_image(image), frames)
    print(f"    masked {keyed:6.1f} fps ({keyed / numba_rate:5.2f}x the numba kernels), no key {plain:6.1f} fps")


def dark_and_mid(frames: int, device: str | None = None) -> float:
    """Median time of a dark 1024x1024 frame over a mid-signal one, interleaved frame by frame."""
    sensor = Sensor.from_preset("machine_vision_12bit", device=device)
    c = sensor.config
    fields = {
        "dark": np.zeros((1024, 1024), np.float32),
        "mid": np.full((1024, 1024), 0.5 * c.saturation_e / c.qe[0] / c.exposure_s, np.float32),
    }
    times: dict[str, list[float]] = {name: [] for name in fields}
    for field in fields.values():
        sensor.capture_photons(field)
    for _ in range(frames):
        for name, field in fields.items():
            start = time.perf_counter()
            sensor.capture_photons(field)
            times[name].append(time.perf_counter() - start)
    dark, mid = (statistics.median(times[name]) for name in fields)
    chain = "numba kernels" if device is None else f"torch chain on {device}"
    print(f"\n1024x1024 mono, no key, {chain}: dark frame {dark * 1000:.1f} ms, mid signal {mid * 1000:.1f} ms")
    return dark / mid


if __name__ == "__main__":
    main()
