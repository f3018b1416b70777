"""privcam webcam: watch the camera protect the world live.

Every frame goes through the full sensor model (noise, ADC, keyed readout). One window shows the
scene, the frame as the camera sends it, what the key holder sees, and the keyed classifier's
prediction on a second, binned capture at the classifier's input size. Keys: q quit, space pause,
w wrong key, n next protection mode, s save the frame. Without a display it records an MP4 and
prints frame-rate statistics; without a camera it falls back to a synthetic source.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from ...base.atomic import unwritable_reason
from ...base.images import write_png
from ...base.video import VideoWriter
from ...nets import to_keyed
from ...privacy import PROTECTION_MODES, Key
from ...sensor import Sensor, stack_frames
from ..capture import make_sensor
from ..catalogue import RunContext
from ..config import DataSection, RunConfig, WebcamParams
from ..models import build_plain_model
from ..sources import FASHION_MNIST_CLASSES, DataError, load_dataset

PANEL = (320, 240)  # width, height of each tile in the window
WINDOW = "privcam webcam"


@dataclass
class LoopState:
    paused: bool = False
    wrong_key: bool = False
    mode: str = "masked"  # the readout's protection mode; the n key cycles through them
    frame_times: list[float] = field(default_factory=list)


def open_source(source: str, size: tuple[int, int]) -> tuple[Iterator[np.ndarray], str]:
    """RGB frames (H, W, 3) uint8 from a camera, a file or the synthetic scene, and a description.
    A missing camera falls back to the synthetic scene (said on stdout); a missing or unreadable
    video file is an error, since the user asked for that file."""
    if source.isdigit():
        capture = cv2.VideoCapture(int(source))
        if capture.isOpened():
            return _read_capture(capture, size), f"camera {source}"
        print(f"privcam webcam: no camera {source}; using the synthetic source")
    elif source != "synthetic":
        if not Path(source).is_file():
            raise ValueError(f"webcam source {source!r}: no such video file (or give a camera index, or 'synthetic')")
        capture = cv2.VideoCapture(source)
        if not capture.isOpened():
            raise ValueError(f"webcam source {source}: OpenCV cannot read this video file")
        return _read_capture(capture, size), f"video {source}"
    return synthetic_scene(size), "synthetic source (Fashion-MNIST items, or scikit-image pictures)"


def _read_capture(capture: cv2.VideoCapture, size: tuple[int, int]) -> Iterator[np.ndarray]:
    while True:
        ok, bgr = capture.read()
        if not ok:
            capture.release()
            return
        yield cv2.cvtColor(cv2.resize(bgr, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)


def synthetic_scene(size: tuple[int, int]) -> Iterator[np.ndarray]:
    """Garments drifting across the frame, 40 frames each (scikit-image pictures if Fashion-MNIST is absent)."""
    width, height = size
    try:
        items = load_dataset(DataSection(source="fashion_mnist", split="test", limit=50)).images
    except DataError:
        items = load_dataset(DataSection(source="skimage_samples")).images
    side = min(width, height)
    for index in range(10**9):
        item = items[(index // 40) % len(items)]
        tile = cv2.resize(item, (side, side), interpolation=cv2.INTER_LINEAR)
        tile = np.repeat(tile[..., None], 3, axis=2) if tile.ndim == 2 else tile
        tile = np.maximum(tile, 24)
        frame = np.full((height, width, 3), 24, np.uint8)  # a dim room, not a black void
        shift = int((index % 40 - 20) * (width - side) / 60)
        left = (width - side) // 2 + shift
        frame[(height - side) // 2 : (height - side) // 2 + side, left : left + side] = tile
        yield frame


def sensors_by_mode(sensor: Sensor, seed: int) -> dict[str, Sensor]:
    """The sensor with its readout in each protection mode: the window's n key cycles through them."""
    readout = sensor.config.readout
    return {
        mode: Sensor(sensor.config.replace(readout=dataclasses.replace(readout, mode=mode)), seed, device=sensor.device)
        for mode in PROTECTION_MODES
    }


class Classifier:
    """The keyed classifier on a binned capture: the scene's centre square, resized to the model's input."""

    def __init__(self, config: RunConfig, params: WebcamParams, key: Key, wrong_key: Key) -> None:
        self.classes = params.class_names or FASHION_MNIST_CLASSES
        if len(params.classifier_size) != 2 or len(self.classes) != config.model.num_classes:
            raise ValueError(
                f"task.classifier_size must be [H, W] and task.class_names must name {config.model.num_classes} classes"
            )
        self.input_size = (config.model.in_channels, *params.classifier_size)
        plain = build_plain_model(config, self.input_size).eval()
        self.sensors = sensors_by_mode(make_sensor(config), seed=config.sensor.seed + 1)
        # Per key, one network for the paper's fixed order and one for per-frame orders (any nonce).
        readouts = {
            per_frame: dataclasses.replace(
                self.sensors["paper"].config.readout, mode="per_frame" if per_frame else "paper"
            )
            for per_frame in (False, True)
        }
        self.models = {
            (held, per_frame): to_keyed(
                plain, held, self.input_size, readout.for_frame(0) if per_frame else readout, config.model.backend
            )
            for held in (key, wrong_key)
            for per_frame, readout in readouts.items()
        }
        self.key, self.wrong_key = key, wrong_key

    @torch.inference_mode()
    def predict(self, scene: np.ndarray, index: int, mode: str, wrong: bool) -> tuple[str, float]:
        height, width = scene.shape[:2]
        side = min(height, width)
        crop = scene[
            (height - side) // 2 : (height - side) // 2 + side, (width - side) // 2 : (width - side) // 2 + side
        ]
        binned = cv2.resize(crop, self.input_size[:0:-1], interpolation=cv2.INTER_AREA)
        frame = self.sensors[mode].capture_image(binned, key=self.key, frame_index=index)
        held = self.wrong_key if wrong else self.key
        model = self.models[(held, frame.readout.per_frame)]
        if wrong:  # another key's holder takes the frame as it comes (his own order and mask)
            batch = frame.to_tensor().unsqueeze(0)
            batch = batch.mean(1, keepdim=True) if batch.shape[1] != self.input_size[0] else batch
        else:  # the mask comes off first: channel mixing commutes with the order, not with the mask
            batch = stack_frames([frame]).unmasked(self.key)
            if batch.shape[1] != self.input_size[0]:
                batch = batch.with_frames(batch.frames.mean(1, keepdim=True))
        probabilities = model(batch).softmax(1)[0]
        confidence, label = probabilities.max(0)
        return self.classes[int(label)], float(confidence)


def compose(
    scene, protected, revealed, prediction: tuple[str, float], fps: float, fingerprint: str, state: LoopState
) -> np.ndarray:
    """The window: scene, camera output, key holder's view and the classifier panel, side by side."""
    tiles = [cv2.resize(image, PANEL, interpolation=cv2.INTER_AREA) for image in (scene, protected, revealed)]
    info = np.full((PANEL[1], PANEL[0], 3), 24, np.uint8)
    label, confidence = prediction
    lines = [
        ("keyed classifier", 0.5, (200, 200, 200)),
        (f"{label}", 0.8, (255, 255, 255)),
        (f"confidence {confidence:.0%}", 0.55, (255, 255, 255)),
        (f"{fps:5.1f} fps", 0.55, (120, 255, 120)),
        (f"key {fingerprint}", 0.45, (200, 200, 200)),
        (f"protection: {state.mode} mode", 0.45, (200, 200, 200)),
        ("WRONG KEY" if state.wrong_key else "", 0.6, (255, 80, 80)),
        ("q quit  space pause  w key  n mode  s save", 0.36, (160, 160, 160)),
    ]
    for row, (text, scale, colour) in enumerate(lines):
        cv2.putText(info, text, (10, 28 + row * 28), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)
    cv2.rectangle(info, (10, 2 * 28 + 34), (10 + int(280 * confidence), 2 * 28 + 40), (120, 200, 255), -1)
    titles = [
        "scene",
        "protected (camera output)",
        "revealed (wrong key)" if state.wrong_key else "revealed (key holder)",
    ]
    header = np.full((24, PANEL[0] * 4, 3), 255, np.uint8)
    for column, title in enumerate([*titles, "prediction"]):
        cv2.putText(
            header, title, (8 + column * PANEL[0], 17), cv2.FONT_HERSHEY_SIMPLEX, 0.48, (0, 0, 0), 1, cv2.LINE_AA
        )
    return np.vstack([header, np.hstack([*tiles, info])])


def run_loop(config: RunConfig, params: WebcamParams, key: Key, out: Path) -> dict:
    size = (params.width, params.height)
    display = not params.headless and bool(os.environ.get("DISPLAY"))
    if not params.headless and not display:
        print("privcam webcam: no display (DISPLAY is not set); running headless")
    if not display and params.record is None:
        params.record = str(out / "webcam.mp4")
    recording = None if params.record is None else Path(params.record)
    if recording is not None:
        _check_writable(recording)
    frames, description = open_source(params.source, size)
    sensor = make_sensor(config)
    sensors = sensors_by_mode(sensor, config.sensor.seed)
    wrong_key = Key.generate()
    classifier = Classifier(config, params, key, wrong_key)
    state = LoopState(mode=sensor.config.readout.mode)
    shown = 0
    last = time.perf_counter()
    scene = next(frames, None)
    print(f"privcam webcam: {description}, {size[0]}x{size[1]}, key {key.fingerprint}")
    if recording is not None:
        recording.parent.mkdir(parents=True, exist_ok=True)
    with VideoWriter(recording, 25) if recording is not None else contextlib.nullcontext() as video:
        try:
            while scene is not None and (params.frames is None or shown < params.frames):
                frame = sensors[state.mode].capture_image(scene, key=key, frame_index=shown)
                protected = frame.to_rgb8()
                revealed = frame.reveal(wrong_key if state.wrong_key else key, strict=False).to_rgb8()
                prediction = classifier.predict(scene, shown, state.mode, state.wrong_key)
                now = time.perf_counter()
                state.frame_times.append(now - last)
                last = now
                fps = 1.0 / statistics.median(state.frame_times[-30:])
                window = compose(scene, protected, revealed, prediction, fps, key.fingerprint, state)
                if video is not None:
                    video.write(window)
                shown += 1
                if display:
                    cv2.imshow(WINDOW, cv2.cvtColor(window, cv2.COLOR_RGB2BGR))
                    if _handle_key(cv2.waitKey(1) & 0xFF, state, frame, Path(params.snapshots), window):
                        break
                if not state.paused:
                    scene = next(frames, None)
        except KeyboardInterrupt:
            print("privcam webcam: interrupted; finishing the recording")
        finally:
            if display:
                cv2.destroyAllWindows()
    times = state.frame_times[1:] or state.frame_times
    stats = {
        "frames": shown,
        "fps_median": round(1.0 / statistics.median(times), 1) if times else 0.0,
        "fps_mean": round(len(times) / sum(times), 1) if times else 0.0,
        "record": params.record,
        "source": description,
        "protection_mode": state.mode,
        "key_fingerprint": key.fingerprint,
    }
    print(f"privcam webcam: {shown} frames, median {stats['fps_median']} fps, mean {stats['fps_mean']} fps")
    return stats


def _handle_key(key_code: int, state: LoopState, frame, snapshots: Path, window: np.ndarray) -> bool:
    """Apply a key press; True means quit."""
    if key_code == ord("q"):
        return True
    if key_code == ord(" "):
        state.paused = not state.paused
    elif key_code == ord("w"):
        state.wrong_key = not state.wrong_key
    elif key_code == ord("n"):
        state.mode = PROTECTION_MODES[(PROTECTION_MODES.index(state.mode) + 1) % len(PROTECTION_MODES)]
    elif key_code == ord("s"):
        snapshots.mkdir(parents=True, exist_ok=True)
        stem = snapshots / f"frame-{frame.metadata['frame_index']:06d}"
        frame.save(stem.with_suffix(".npz"))
        frame.save_png(stem.with_name(stem.name + "-raw16.png"))
        write_png(stem.with_name(stem.name + "-window.png"), window)
        print(f"privcam webcam: saved {stem}.npz and PNGs")
    return False


def _check_writable(path: Path) -> None:
    """A recording can be written at `path`: no file stands where a folder must be, and the first
    existing folder is writable."""
    if path.is_dir():
        raise ValueError(f"webcam recording {path} is a folder; give an .mp4 file name")
    reason = unwritable_reason(path.parent)
    if reason is not None:
        raise ValueError(f"webcam recording {path}: {reason}")


def run(ctx: RunContext) -> dict:
    return run_loop(ctx.config, ctx.params, ctx.key, ctx.out)
