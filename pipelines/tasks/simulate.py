"""task: simulate. Capture a dataset, image folder or video through the sensor and keep what the camera sends."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ...base.atomic import atomic_write
from ...base.images import write_png
from ...base.schema import differing_fields
from ...base.video import VideoWriter
from ...sensor import Frame
from ..capture import make_sensor
from ..catalogue import RunContext
from ..sources import content_digest, load_dataset

IDENTITY_FILE = "identity.json"


def run(ctx: RunContext) -> dict:
    config, key = ctx.config, ctx.key
    sensor = make_sensor(config)
    dataset = load_dataset(config.data)
    frames_dir, previews_dir = ctx.out / "frames", ctx.out / "previews"
    _claim(ctx.out, _identity(config, dataset, sensor, key))
    frames_dir.mkdir(parents=True, exist_ok=True)
    if ctx.params.previews:
        previews_dir.mkdir(exist_ok=True)
    rows, resumed = [], 0
    for index, (image, name) in enumerate(
        tqdm(list(zip(dataset.images, dataset.names, strict=True)), desc="simulating", unit="frame")
    ):
        path = frames_dir / f"{index:06d}.npz"
        if path.exists():
            frame = Frame.load(path)
            _check_same_run(frame, sensor, key, path)
            resumed += 1
        else:
            frame = sensor.capture_image(image, key=key, frame_index=index)
            frame.save(path)
        preview = previews_dir / f"{index:06d}.png"
        if ctx.params.previews and not preview.exists():
            write_png(preview, frame.to_rgb8())
        rows.append(_manifest_row(frame, name, path.relative_to(ctx.out), sensor.config))
    _write_manifest(ctx.out, rows)
    stats = {
        "frames": len(rows),
        "resumed_frames": resumed,
        "mean_signal_dn": float(np.mean([r["mean_signal_dn"] for r in rows])),
        "model_snr_db": float(np.mean([r["model_snr_db"] for r in rows])),
        "saturated_fraction": float(np.mean([r["saturated_fraction"] for r in rows])),
        "key_fingerprint": key.fingerprint,
        "config_hash": sensor.config.config_hash,
    }
    with atomic_write(ctx.out / "stats.json", "w") as f:
        json.dump(stats, f, indent=2)
    if config.data.source == "video" and ctx.params.video:
        fps = dataset.fps or 25.0
        frames = [Frame.load(frames_dir / f"{i:06d}.npz") for i in range(len(rows))]
        _write_video(ctx.out / "protected.mp4", [f.to_rgb8() for f in frames], fps)
        _write_video(ctx.out / "revealed.mp4", [f.reveal(key).to_rgb8() for f in frames], fps)
    return stats


def _identity(config, dataset, sensor, key) -> dict:
    """Everything the frames of a simulate run depend on: a resumed run must match it all."""
    return {
        "data": dict(vars(config.data)),
        "scenes": content_digest(dataset),
        "sensor": sensor.config.config_hash,
        "sensor_seed": config.sensor.seed,
        "key_fingerprint": key.fingerprint,
    }


def _claim(out: Path, identity: dict) -> None:
    """Record what this run's frames are made from (identity.json); a folder whose frames were
    made from anything else is refused, naming what differs."""
    path = out / IDENTITY_FILE
    if path.exists():
        try:
            before = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise ValueError(f"{path} cannot be read ({err}); remove the folder or choose another output.dir") from None
        changed = differing_fields(before, identity)
        if changed:
            raise ValueError(
                f"{out} holds frames of another run: {', '.join(changed)} differ; "
                "choose another output.dir or remove the folder"
            )
        return
    with atomic_write(path, "w") as f:
        json.dump(identity, f, indent=2)


def _check_same_run(frame: Frame, sensor, key, path: Path) -> None:
    if frame.metadata.get("config_hash") != sensor.config.config_hash or frame.metadata.get("key_fingerprint") != (
        key.fingerprint if key else None
    ):
        raise ValueError(f"{path} was written by another sensor or key; choose another output.dir or remove it")


def _manifest_row(frame: Frame, name: str, relative: Path, sensor_config) -> dict:
    meta = frame.metadata
    signal_dn = float(frame.data.mean()) - meta["black_level_dn"]
    signal_e = max(signal_dn / sensor_config.system_gain_dn_per_e, 0.0)
    noise_e = math.sqrt(signal_e + sensor_config.read_noise_e**2 + sensor_config.row_noise_e**2)
    return {
        "file": str(relative),
        "source": name,
        "frame_index": meta["frame_index"],
        "nonce": None if frame.readout is None else frame.readout.nonce,
        "key_fingerprint": meta["key_fingerprint"],
        "config_hash": meta["config_hash"],
        "mean_signal_dn": round(signal_dn, 3),
        "model_snr_db": round(20 * math.log10(signal_e / noise_e), 2) if signal_e > 0 else float("-inf"),
        "saturated_fraction": float((frame.data >= 2 ** meta["bit_depth"] - 1).mean()),
    }


def _write_manifest(out: Path, rows: list[dict]) -> None:
    with atomic_write(out / "manifest.json", "w") as f:
        json.dump(rows, f, indent=2)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    with atomic_write(out / "manifest.csv", "w") as f:
        f.write(buffer.getvalue())


def _write_video(path: Path, frames: list[np.ndarray], fps: float) -> None:
    with VideoWriter(path, fps) as video:
        for frame in frames:
            video.write(frame)
