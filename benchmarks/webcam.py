"""The webcam loop's frame rate on the synthetic source, headless, at 640x480.

    python benchmarks/webcam.py [--frames N]

The loop is the whole demo: scene, full sensor model with keyed readout, reveal, binned capture and
keyed inference of the small Fashion-MNIST classifier, drawing and MP4 recording. The baseline,
measured in the same run, is the sensor capture alone at the same size.
Target (issue "webcam"): the whole loop >= 25 fps on 2 cores.
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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f"model.weights={REPO / 'weights/fashion_mnist_small_cnn.pt'}", f"key.path={tmp}/bench.key"]
        config = load_run_config(REPO / "configs/webcam.yaml", overrides)
        key = load_or_create_key(config)
        sensor = make_sensor(config)
        scenes = synthetic_scene((640, 480))
        samples = []
        for index in range(args.frames):
            scene = next(scenes)
            start = time.perf_counter()
            sensor.capture_image(scene, key=key, frame_index=index)
            samples.append(time.perf_counter() - start)
        baseline = 1.0 / statistics.median(samples[5:])
        params = config.task | {"frames": args.frames, "headless": True, "record": f"{tmp}/bench.mp4"}
        params.pop("name")
        stats = run_loop(config, WebcamParams(**params), key, Path(tmp))
    print(f"sensor capture alone (baseline): {baseline:.1f} fps")
    print(f"whole webcam loop: median {stats['fps_median']} fps, mean {stats['fps_mean']} fps, "
          f"{stats['fps_median'] / baseline:.2f}x baseline")  # fmt: skip
    print(f"target >= 25 fps: {'met' if stats['fps_median'] >= 25 else 'MISSED'}")


if __name__ == "__main__":
    main()
