"""Capture a data split through the run's simulated sensor as network input, with a cache on disk.

A captured split carries the readout its frames are in, so every later step (keyed networks,
keyed augmentation, attacks) uses the order the frames really have.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..base.store import FileFormat, FileFormatError
from ..privacy import Key, Readout, shuffle
from ..sensor import Sensor
from .config import RunConfig
from .sources import load_dataset
from .validate import sensor_config

CAPTURE_FILE = FileFormat("capture", 1)
TEST_INDEX_OFFSET = 10_000_000  # frame indices of test items, so train and test noise never repeat
log = logging.getLogger("privcam")


@dataclass
class Captured:
    """A split as network input.

    Args:
        frames: (N, C, H, W) float32, in keyed order when protected.
        labels: (N,) int64 class ids, or None for a source without labels.
        readout: the order of the frames (None: plain, physical order). In "per_frame" mode frame i
            is in readout.for_frame(nonces[i]).
        nonces: (N,) int64 per-frame nonces ("per_frame" mode), else None.
        key_fingerprint: the key's fingerprint (None for plain frames).
    """

    frames: torch.Tensor
    labels: torch.Tensor | None
    readout: Readout | None = None
    nonces: torch.Tensor | None = None
    key_fingerprint: str | None = None

    @property
    def input_size(self) -> tuple[int, int, int]:
        return tuple(self.frames.shape[1:])

    def readout_of(self, index: int) -> Readout | None:
        """The order frame `index` is in."""
        if self.readout is None or self.nonces is None:
            return self.readout
        return self.readout.for_frame(int(self.nonces[index]))


def make_sensor(config: RunConfig) -> Sensor | None:
    """The run's sensor (preset, overrides, seed); None with `sensor: none`."""
    return Sensor(sensor_config(config), seed=config.sensor.seed) if config.protected else None


def capture_tensors(
    config: RunConfig,
    split: str,
    key: Key | None,
    cache_dir: Path | None = Path("runs/cache"),
    limit: int | None = None,
) -> Captured:
    """The split as network input: scenes through the sensor (keyed when `key` is given), or, with
    sensor 'none', scenes scaled to [0, 1] (shuffled in the default Readout when keyed).

    Captures are cached on disk: the sensor is deterministic given its seed and the frame index.
    """
    sensor = make_sensor(config)
    recipe = {
        "data": dict(vars(config.data)),
        "split": split,
        "sensor": None if sensor is None else sensor.config.config_hash,
        "sensor_seed": config.sensor.seed,
        "key": None if key is None else key.fingerprint,
        "in_channels": config.model.in_channels,
        "limit": limit,
    }
    digest = hashlib.blake2b(json.dumps(recipe, sort_keys=True).encode(), digest_size=10).hexdigest()
    cache = None if cache_dir is None else Path(cache_dir) / f"capture-{digest}.pt"
    if cache is not None and cache.exists():
        try:
            return _from_payload(CAPTURE_FILE.load(cache))
        except FileFormatError as err:
            log.warning("capturing again: %s", err)
    dataset = load_dataset(config.data, split)
    images = dataset.images if limit is None else dataset.images[:limit]
    offset = TEST_INDEX_OFFSET if split == "test" else 0
    tensors, nonces = [], []
    readout = None if key is None else (Readout() if sensor is None else sensor.config.readout)
    for i, image in enumerate(tqdm(images, desc=f"capturing {split}", unit="frame", leave=False)):
        if sensor is None:
            tensor = _scene_tensor(image, config.model.in_channels)
            if key is not None:
                tensor = shuffle(tensor, readout.permutation(key, *tensor.shape[1:]))
        else:
            frame = sensor.capture_image(image, key=key, frame_index=offset + i)
            tensor = frame.to_tensor()
            if frame.readout is not None and frame.readout.nonce is not None:
                nonces.append(frame.readout.nonce)
        tensors.append(tensor)
    labels = None if dataset.labels is None else torch.from_numpy(dataset.labels[: len(images)])
    captured = Captured(
        torch.stack(tensors),
        labels,
        readout,
        torch.tensor(nonces, dtype=torch.int64) if nonces else None,
        None if key is None else key.fingerprint,
    )
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        CAPTURE_FILE.save(cache, _to_payload(captured, recipe))
    return captured


def _to_payload(captured: Captured, recipe: dict) -> dict:
    return {
        "frames": captured.frames,
        "labels": captured.labels,
        "readout": None if captured.readout is None else captured.readout.to_dict(),
        "nonces": captured.nonces,
        "key_fingerprint": captured.key_fingerprint,
        "recipe": recipe,
    }


def _from_payload(payload: dict) -> Captured:
    readout = payload["readout"]
    return Captured(
        payload["frames"],
        payload["labels"],
        None if readout is None else Readout.from_dict(readout),
        payload["nonces"],
        payload["key_fingerprint"],
    )


def _scene_tensor(image: np.ndarray, channels: int) -> torch.Tensor:
    values = image.astype(np.float32) / 255.0
    if values.ndim == 2:
        values = values[..., None]
    if values.shape[2] == 3 and channels == 1:
        values = values @ np.array([0.299, 0.587, 0.114], np.float32)
        values = values[..., None]
    elif values.shape[2] == 1 and channels == 3:
        values = np.repeat(values, 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(values.transpose(2, 0, 1)))
