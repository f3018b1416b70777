"""Capture a data split through the run's simulated sensor as network input, with a cache on disk.

A protected capture carries the readout its frames are in (with each frame's nonce in the per-frame
modes), the key's fingerprint and the code format, as a KeyedFrames batch, so every later step
(keyed networks, keyed augmentation, attacks) uses the order and mask the frames really have.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..base.store import FileFormat, FileFormatError, set_aside
from ..privacy import AdcFormat, Key, KeyedFrames, Readout, shuffle
from ..sensor import Sensor, stack_frames
from .config import RunConfig
from .shards import IDENTITY_FILE, simulated_frames
from .sources import DataError, content_digest, load_dataset
from .validate import sensor_config

CAPTURE_FILE = FileFormat("capture", 2)
TEST_INDEX_OFFSET = 10_000_000  # frame indices of test items, so train and test noise never repeat
CHUNK = 1000  # frames held as Frame objects at a time while capturing
log = logging.getLogger("privcam")


@dataclass
class Captured:
    """A split as network input.

    Args:
        frames: (N, C, H, W) float32 network inputs: what any model reads, keyed or not (for
            protected frames, in keyed order, with masked values in the "masked" mode).
        labels: (N,) int64 class ids, or None for a source without labels.
        keyed: for protected frames, the same frames with their readout, nonces, key fingerprint and
            code format: what keyed networks and keyed augmentation take. None for plain frames.
        digest: what the frames were made from (data, scenes' content, sensor, seed, key), as a
            short hash: a checkpoint trained on them records it.
    """

    frames: torch.Tensor
    labels: torch.Tensor | None
    keyed: KeyedFrames | None = None
    digest: str | None = None

    @property
    def input_size(self) -> tuple[int, int, int]:
        return tuple(self.frames.shape[1:])

    @property
    def readout(self) -> Readout | None:
        """The frames' readout (for the per-frame modes, without a nonce); None for plain frames."""
        return None if self.keyed is None else self.keyed.readout


def make_sensor(config: RunConfig) -> Sensor | None:
    """The run's sensor (preset, overrides, seed, device); None with `sensor: none`."""
    if not config.protected:
        return None
    return Sensor(sensor_config(config), seed=config.sensor.seed, device=config.sensor.device)


def capture_tensors(
    config: RunConfig,
    split: str,
    key: Key | None,
    cache_dir: Path | None = Path("runs/cache"),
    limit: int | None = None,
) -> Captured:
    """The split as network input: scenes through the sensor (keyed when `key` is given), or, with
    sensor 'none', scenes scaled to [0, 1] (shuffled in the paper's readout when keyed).

    Captures are cached on disk under a digest of everything they depend on, the scenes' content
    included: the sensor is deterministic given its seed and the frame index (the per-frame nonces
    of a capture come from its sensor's random prefix, and the cache keeps them).
    """
    if config.data.source == "shards":
        limits = [n for n in (limit, config.data.limit) if n is not None]
        return _simulated(Path(config.data.root) / split, key, min(limits) if limits else None)
    sensor = make_sensor(config)
    dataset = load_dataset(config.data, split)
    # Without a key the readout plays no part: plain captures of every protection mode share a cache.
    sensed = None if sensor is None else (sensor.config if key else sensor.config.replace(readout=Readout()))
    recipe = {
        "data": dict(vars(config.data)),
        "scenes": content_digest(dataset, limit),
        "split": split,
        "sensor": None if sensed is None else sensed.config_hash,
        "sensor_seed": config.sensor.seed,
        "key": None if key is None else key.fingerprint,
        "in_channels": config.model.in_channels,
        "limit": limit,
    }
    digest = hashlib.blake2b(json.dumps(recipe, sort_keys=True).encode(), digest_size=10).hexdigest()
    cache = None if cache_dir is None else Path(cache_dir) / f"capture-{digest}.pt"
    if cache is not None and cache.exists():
        try:
            return dataclasses.replace(_from_payload(CAPTURE_FILE.load(cache)), digest=digest)
        except FileFormatError as err:
            log.warning("capturing again: %s; it was moved to %s", err, set_aside(cache))
    images = dataset.images if limit is None else dataset.images[:limit]
    labels = None if dataset.labels is None else torch.from_numpy(dataset.labels[: len(images)])
    progress = tqdm(total=len(images), desc=f"capturing {split}", unit="frame", leave=False)
    if sensor is None:
        captured = _scenes(images, config.model.in_channels, key, progress, labels)
    else:
        captured = _captures(sensor, images, key, TEST_INDEX_OFFSET if split == "test" else 0, progress, labels)
    progress.close()
    captured.digest = digest
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        CAPTURE_FILE.save(cache, _to_payload(captured, recipe))
    return captured


def _captures(sensor: Sensor, images, key: Key | None, offset: int, progress, labels) -> Captured:
    """Every image through the sensor, frame index offset + i."""
    chunks, keyed = [], []
    for start in range(0, len(images), CHUNK):
        frames = [
            sensor.capture_image(image, key=key, frame_index=offset + start + i)
            for i, image in enumerate(images[start : start + CHUNK])
        ]
        progress.update(len(frames))
        if key is None:
            chunks.append(torch.stack([f.to_tensor() for f in frames]))
        else:
            keyed.append(stack_frames(frames))
    if key is None:
        return Captured(torch.cat(chunks), labels)
    batch = KeyedFrames.concat(keyed)
    return Captured(batch.frames, labels, batch)


def _simulated(folder: Path, key: Key | None, limit: int | None) -> Captured:
    """The frames a simulate run wrote to `folder` (in frame order, up to `limit`), as they are:
    nothing is captured again. They must be protected with `key`."""
    identity = folder / IDENTITY_FILE
    if not identity.is_file():
        raise DataError(f"{folder} is not a simulate run's folder (no {IDENTITY_FILE}); run task simulate into it")
    recorded = json.loads(identity.read_text()).get("key_fingerprint")
    if key is None or recorded != key.fingerprint:
        raise DataError(
            f"{folder} holds frames protected with the key of fingerprint {recorded}, "
            + ("read by a plain model" if key is None else f"not with the run's key ({key.fingerprint})")
        )
    digest = hashlib.blake2b(digest_size=10)
    chunk, keyed, labels = [], [], []
    progress = tqdm(desc=f"reading {folder}", unit="frame", leave=False)
    for frame, label in simulated_frames(folder):
        chunk.append(frame)
        labels.append(label)
        digest.update(np.ascontiguousarray(frame.data).data)
        progress.update()
        if len(chunk) == CHUNK or len(labels) == limit:
            keyed.append(stack_frames(chunk))
            chunk = []
        if len(labels) == limit:
            break
    progress.close()
    if chunk:
        keyed.append(stack_frames(chunk))
    batch = KeyedFrames.concat(keyed)
    targets = None if labels[0] is None else torch.tensor(labels, dtype=torch.int64)
    return Captured(batch.frames, targets, batch, digest.hexdigest())


def _scenes(images, channels: int, key: Key | None, progress, labels) -> Captured:
    """Scenes as network input without a sensor; shuffled in the paper's readout with a key."""
    tensors = []
    for image in images:
        tensor = _scene_tensor(image, channels)
        if key is not None:
            tensor = shuffle(tensor, Readout(mode="paper").permutation(key, *tensor.shape[1:]))
        tensors.append(tensor)
        progress.update()
    frames = torch.stack(tensors)
    if key is None:
        return Captured(frames, labels)
    return Captured(frames, labels, KeyedFrames(frames, Readout(mode="paper"), None, key.fingerprint))


def _to_payload(captured: Captured, recipe: dict) -> dict:
    keyed = captured.keyed
    return {
        "frames": captured.frames,
        "labels": captured.labels,
        "readout": None if keyed is None else keyed.readout.to_dict(),
        "nonces": None if keyed is None else keyed.nonces,
        "key_fingerprint": None if keyed is None else keyed.key_fingerprint,
        "adc": None if keyed is None or keyed.adc is None else dataclasses.asdict(keyed.adc),
        "recipe": recipe,
    }


def _from_payload(payload: dict) -> Captured:
    if payload["readout"] is None:
        return Captured(payload["frames"], payload["labels"])
    adc = None if payload["adc"] is None else AdcFormat(**payload["adc"])
    keyed = KeyedFrames(
        payload["frames"], Readout.from_dict(payload["readout"]), payload["nonces"], payload["key_fingerprint"], adc
    )
    return Captured(payload["frames"], payload["labels"], keyed)


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
