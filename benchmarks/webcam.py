"""The webcam loop's frame rate on the synthetic source, headless, at 640x480.

    python benchmarks/webcam.py [--frames N] [--modes masked,paper]

The loop is the whole demo: scene, full sensor model with keyed readout, reveal, binned capture and
keyed inference of the small Fashion-MNIST classifier, drawing and MP4 recording, in each protection
mode given (the first is the one the target is for). The baseline, measured in the same run, is the
sensor capture alone at the same size in that mode. Target: the whole loop in the default mode
("masked") >= 25 fps on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from privcam.pipelines.capture import make_sensor
from privcam.pipelines.config import WebcamParams, load_run_config
from privcam.pipelines.keys import load_or_create_key
from privcam.pipelines.tasks.webcam import run_loop, synthetic_scene

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--modes", default="masked,paper", help="comma-separated protection modes")
    args = parser.parse_args()
    loops = {}
    for mode in args.modes.split(","):
        baseline, stats = measure(mode, args.frames)
        loops[mode] = stats["fps_median"]
        ratio = stats["fps_median"] / baseline
        print(f"{mode}: sensor capture alone (baseline) {baseline:.1f} fps; whole webcam loop median "
              f"{stats['fps_median']} fps, mean {stats['fps_mean']} fps, {ratio:.2f}x baseline")  # fmt: skip
    first = next(iter(loops))
    for mode, fps in loops.items():
        if mode != first:
            print(f"{first} loop / {mode} loop: {loops[first] / fps:.2f}x the frame rate")
    print(f"target: {first} loop >= 25 fps: {'met' if loops[first] >= 25 else 'MISSED'}")


def measure(mode: str, frames: int) -> tuple[float, dict]:
    """(fps of the sensor capture alone, the loop's statistics) in one protection mode."""
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [
            f"model.weights={REPO / 'weights/fashion_mnist_small_cnn.pt'}",
            f"key.path={tmp}/bench.key",
            f"sensor.overrides.readout.mode={mode}",
        ]
        config = load_run_config(REPO / "configs/webcam.yaml", overrides)
        key = load_or_create_key(config)
        sensor = make_sensor(config)
        scenes = synthetic_scene((640, 480))
        samples = []
        for index in range(frames):
            scene = next(scenes)
            start = time.perf_counter()
            sensor.capture_image(scene, key=key, frame_index=index)
            samples.append(time.perf_counter() - start)
        params = config.task | {"frames": frames, "headless": True, "record": f"{tmp}/bench.mp4"}
        params.pop("name")
        stats = run_loop(config, WebcamParams(**params), key, Path(tmp))
    return 1.0 / statistics.median(samples[5:]), stats


if __name__ == "__main__":
    main()
