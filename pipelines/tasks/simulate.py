"""task: simulate. Capture a dataset, image folder or video through the sensor and keep what the
camera sends, streamed from the source in constant memory.

Frames go to WebDataset tar shards (`shards/NNNNNN.tar`: per frame NNNNNN.npy, NNNNNN.json and, with
labels, NNNNNN.cls) or to one .npz per frame (`frames/NNNNNN.npz`). The work is cut into shards of
`shard_size` frames by frame index. Shard s belongs to torchrun rank s % world size, and within a
rank to any of its worker processes. A frame depends only on its index (noise seed, nonce) and the
run's nonce prefix, so the output is the same byte for byte whatever the number of ranks and workers.
A shard is finished once its record `parts/NNNNNN.json` exists (written after its frames); a rerun
skips finished shards whose scenes are unchanged. Rank 0 then writes the manifest, stats and videos.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import multiprocessing
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ...base.atomic import atomic_write
from ...base.images import write_png
from ...base.schema import differing_fields
from ...base.video import VideoWriter
from ...privacy import Key
from ...sensor import Frame, Sensor
from ...sensor.config import SensorConfig
from ..catalogue import RunContext
from ..config import RunConfig, SimulateParams
from ..shards import FRAMES, IDENTITY_FILE, PARTS, SHARDS, simulated_frames
from ..sources import DataError, Scene, SceneStream, stream_scenes
from ..training import distributed
from ..validate import sensor_config

PREVIEWS = "previews"
WAIT_SECONDS = 0.5  # how often rank 0 looks for the other ranks' finished shards


@dataclass(frozen=True)
class _Job:
    """What a worker process needs to capture any shard of the run."""

    config: RunConfig
    key_path: Path  # each process reads the key itself: a Key is never pickled
    params: SimulateParams
    nonce_prefix: int
    epoch: float
    out: Path
    frames: int  # in the whole run

    def span(self, shard: int) -> range:
        return range(shard * self.params.shard_size, min((shard + 1) * self.params.shard_size, self.frames))


def run(ctx: RunContext) -> dict:
    config, params, out = ctx.config, ctx.params, ctx.out
    rank, world = distributed()
    stream = stream_scenes(config.data)
    frames = stream.count
    if not frames:
        raise DataError(f"{config.where('data')}: data source {config.data.source!r} gave no scenes to capture")
    identity = _identity(config, ctx.key, params, frames)
    if rank == 0:
        identity = _claim(out, identity)
    if world > 1:
        torch.distributed.barrier()
        identity = _claim(out, identity) if rank else identity
    job = _Job(
        config, Path(config.key.path).resolve(), params, identity["nonce_prefix"], identity["epoch"], out, frames
    )
    for folder in (PARTS, SHARDS if params.format == "shards" else FRAMES) + ((PREVIEWS,) if params.previews else ()):
        (out / folder).mkdir(parents=True, exist_ok=True)
    shards = math.ceil(frames / params.shard_size)
    resumed = _capture(job, stream, list(range(rank, shards, world)), rank)
    if rank:
        return {"rank": rank, "resumed_frames": resumed}
    _wait_for_parts(out, shards)
    stats = {**_finish(job, shards), "resumed_frames": resumed}
    if config.data.source == "video" and params.video:
        _write_videos(job, shards, stream.fps or 25.0)
    return stats


def _identity(config: RunConfig, key: Key, params: SimulateParams, frames: int) -> dict:
    """Everything a run's frames depend on but the scenes' content (checked shard by shard): a
    resumed run must match it all. The nonce prefix (drawn at random) and the epoch (the frames'
    simulated start time) are set once, by the run that makes the folder, and kept: a resumed run,
    and every rank, reuses them."""
    return {
        "data": dict(vars(config.data)),
        "frames": frames,
        "sensor": sensor_config(config).config_hash,
        "sensor_seed": config.sensor.seed,
        "key_fingerprint": key.fingerprint,
        "format": params.format,
        "shard_size": params.shard_size,
        "nonce_prefix": secrets.randbits(64),
        "epoch": round(time.time(), 3),
    }


def _claim(out: Path, identity: dict) -> dict:
    """The folder's identity.json, written when missing; a folder whose frames were made from
    anything else is refused, naming what differs."""
    path = out / IDENTITY_FILE
    if not path.exists():
        with atomic_write(path, "w") as f:
            json.dump(identity, f, indent=2)
        return identity
    try:
        before = json.loads(path.read_text())
        drawn = {"nonce_prefix": int(before["nonce_prefix"]), "epoch": float(before["epoch"])}
        changed = differing_fields({**before, **drawn}, {**identity, **drawn})
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path} cannot be read ({err}); remove the folder or choose another output.dir") from None
    if changed:
        raise ValueError(
            f"{out} holds frames of another run: {', '.join(changed)} differ; "
            "choose another output.dir or remove the folder"
        )
    return {**identity, **drawn}


def _capture(job: _Job, stream: SceneStream, shards: list[int], rank: int) -> int:
    """Capture this rank's shards, in this process or over `workers` processes; returns the
    number of frames resumed from finished shards. Each process reads the scenes through one
    stream, which keeps its place in the source (an IDX file's gzip stream): a process's shards,
    in frame order, read it in one pass."""
    total = sum(len(job.span(s)) for s in shards)
    label = "simulating" if rank == 0 else f"simulating (rank {rank})"
    with tqdm(total=total, desc=label, unit="frame") as progress:
        if job.params.workers == 1 or len(shards) < 2:
            return sum(_capture_shard(job, stream, shard, progress.update) for shard in shards)
        threads = max(1, torch.get_num_threads() // job.params.workers)
        context = multiprocessing.get_context("spawn")
        resumed = 0
        with context.Pool(job.params.workers, initializer=_start_worker, initargs=(threads, job.config)) as pool:
            for shard, count in pool.imap_unordered(functools.partial(_capture_worker_shard, job), shards):
                resumed += count
                progress.update(len(job.span(shard)))
        return resumed


_WORKER_STREAM: SceneStream | None = None  # a worker process's scenes, opened once by _start_worker


def _start_worker(threads: int, config: RunConfig) -> None:
    global _WORKER_STREAM
    torch.set_num_threads(threads)
    _WORKER_STREAM = stream_scenes(config.data)


def _capture_worker_shard(job: _Job, shard: int) -> tuple[int, int]:
    return shard, _capture_shard(job, _WORKER_STREAM, shard, lambda n: None)


def _capture_shard(job: _Job, stream: SceneStream, shard: int, advance: Callable[[int], object]) -> int:
    """Capture one shard and write its frames, then its record; returns its frame count when
    it was already finished (and its scenes are unchanged), else 0."""
    span = job.span(shard)
    scenes = list(stream.read(span.start, span.stop))
    digest = _scenes_digest(scenes)
    part = job.out / PARTS / f"{shard:06d}.json"
    if part.exists() and _finished(job, shard, part, digest):
        advance(len(span))
        return len(span)
    # A sensor per shard: its record of used nonces stays the size of a shard.
    sensor = Sensor(
        sensor_config(job.config),
        seed=job.config.sensor.seed,
        nonce_prefix=job.nonce_prefix,
        epoch=job.epoch,
        device=_rank_device(job.config.sensor.device),
    )
    key = _load_key(job.key_path)
    frames = _frames(sensor, key, job, span, scenes, advance)
    rows = _write_frames(job, shard, frames, sensor.config)
    record = {"shard": shard, "frames": [span.start, span.stop], "scenes": digest, "files": _file_sizes(job, shard)}
    with atomic_write(part, "w") as f:
        json.dump({**record, "rows": rows}, f)
    return 0


def _rank_device(device: str | None) -> str | None:
    """Under torchrun, "cuda" is each rank's own GPU (its LOCAL_RANK); a numbered device is kept."""
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        return f"cuda:{int(os.environ['LOCAL_RANK']) % torch.cuda.device_count()}"
    return device


@functools.cache
def _load_key(path: Path) -> Key:
    return Key.load(path)


def _frames(
    sensor: Sensor, key: Key, job: _Job, span: range, scenes: list[Scene], advance: Callable[[int], object]
) -> Iterator[tuple[int, Frame, Scene]]:
    for index, scene in zip(span, scenes, strict=True):
        frame = sensor.capture_image(scene[0], key=key, frame_index=index)
        if index < job.params.previews:
            write_png(job.out / PREVIEWS / f"{index:06d}.png", frame.to_rgb8())
        yield index, frame, scene
        advance(1)


def _write_frames(
    job: _Job, shard: int, frames: Iterator[tuple[int, Frame, Scene]], sensor: SensorConfig
) -> list[dict]:
    """Write a shard's frames (a tar written atomically, or .npz files); returns its manifest rows."""
    rows = []
    if job.params.format == "npz":
        for index, frame, (_, label, name) in frames:
            path = job.out / FRAMES / f"{index:06d}.npz"
            frame.save(path)
            rows.append(_manifest_row(frame, name, label, str(path.relative_to(job.out)), sensor))
        return rows
    from webdataset import TarWriter

    relative = f"{SHARDS}/{shard:06d}.tar"
    with atomic_write(job.out / relative, "wb") as f:
        writer = TarWriter(f, user="privcam", group="privcam", mtime=0, encoder=False)
        for index, frame, (_, label, name) in frames:
            sample = {"__key__": f"{index:06d}", **frame.to_sample()}
            if label is not None:
                sample["cls"] = str(label).encode()
            writer.write(sample)
            rows.append(_manifest_row(frame, name, label, relative, sensor))
        writer.close()
    return rows


def _file_sizes(job: _Job, shard: int) -> dict[str, int]:
    """The byte size of each file a shard wrote: a rerun captures again a shard whose files are gone or cut short."""
    if job.params.format == "shards":
        names = [f"{SHARDS}/{shard:06d}.tar"]
    else:
        names = [f"{FRAMES}/{index:06d}.npz" for index in job.span(shard)]
    return {name: (job.out / name).stat().st_size for name in names}


def _finished(job: _Job, shard: int, part: Path, digest: str) -> bool:
    """Whether a shard with a record is finished: its scenes must be those it was captured from
    (else the run is refused), and its files whole (else it is captured again)."""
    try:
        record = json.loads(part.read_text())
        files, scenes = record["files"], record["scenes"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if scenes != digest:
        span = job.span(shard)
        raise ValueError(
            f"{job.out}: the scenes of frames {span.start}-{span.stop - 1} differ from those they were captured "
            "from (pictures replaced on disk?); choose another output.dir or remove the folder"
        )
    return all((job.out / name).is_file() and (job.out / name).stat().st_size == size for name, size in files.items())


def _scenes_digest(scenes: list[Scene]) -> str:
    """What a shard's frames were made from: its scenes' pixels, labels and names."""
    digest = hashlib.blake2b(digest_size=16)
    for image, label, name in scenes:
        digest.update(f"{image.shape}{image.dtype}{label}{name}".encode())
        digest.update(np.ascontiguousarray(image).data)
    return digest.hexdigest()


def _manifest_row(frame: Frame, name: str, label: int | None, file: str, sensor: SensorConfig) -> dict:
    meta = frame.metadata
    signal_dn = float(frame.data.mean()) - meta["black_level_dn"]
    signal_e = max(signal_dn / sensor.system_gain_dn_per_e, 0.0)
    noise_e = math.sqrt(signal_e + sensor.read_noise_e**2 + sensor.row_noise_e**2)
    return {
        "file": file,
        "sample": f"{meta['frame_index']:06d}",
        "source": name,
        "label": label,
        "frame_index": meta["frame_index"],
        "nonce": None if frame.readout is None else frame.readout.nonce,
        "key_fingerprint": meta["key_fingerprint"],
        "config_hash": meta["config_hash"],
        "mean_signal_dn": round(signal_dn, 3),
        "model_snr_db": round(20 * math.log10(signal_e / noise_e), 2) if signal_e > 0 else float("-inf"),
        "saturated_fraction": float((frame.data >= 2 ** meta["bit_depth"] - 1).mean()),
    }


def _wait_for_parts(out: Path, shards: int) -> None:
    """Rank 0 waits for the other ranks' shards (torchrun stops every rank if one fails)."""
    with tqdm(total=shards, desc="waiting for other ranks", unit="shard", leave=False) as progress:
        while (done := sum((out / PARTS / f"{s:06d}.json").exists() for s in range(shards))) < shards:
            progress.n = done
            progress.refresh()
            time.sleep(WAIT_SECONDS)


def _rows(out: Path, shards: int) -> Iterator[dict]:
    """Every frame's manifest row in frame order, read shard record by shard record."""
    for shard in range(shards):
        yield from json.loads((out / PARTS / f"{shard:06d}.json").read_text())["rows"]


def _finish(job: _Job, shards: int) -> dict:
    """manifest.json, manifest.csv and stats.json from the shard records, streamed row by row."""
    import csv

    sums = {"mean_signal_dn": 0.0, "model_snr_db": 0.0, "saturated_fraction": 0.0}
    count = 0
    with atomic_write(job.out / "manifest.json", "w") as as_json, atomic_write(job.out / "manifest.csv", "w") as as_csv:
        writer = None
        as_json.write("[")
        for row in _rows(job.out, shards):
            if writer is None:
                writer = csv.DictWriter(as_csv, fieldnames=list(row))
                writer.writeheader()
            writer.writerow(row)
            as_json.write(("," if count else "") + "\n  " + json.dumps(row))
            for name in sums:
                sums[name] += row[name]
            count += 1
        as_json.write("\n]\n")
    stats = {
        "frames": count,
        "shards": shards,
        "format": job.params.format,
        **{name: total / count for name, total in sums.items()},
        "key_fingerprint": _load_key(job.key_path).fingerprint,
        "config_hash": sensor_config(job.config).config_hash,
    }
    with atomic_write(job.out / "stats.json", "w") as f:
        json.dump(stats, f, indent=2)
    return stats


def _write_videos(job: _Job, shards: int, fps: float) -> None:
    """protected.mp4 (as sent) and revealed.mp4 (for the key holder), a frame at a time."""
    with VideoWriter(job.out / "protected.mp4", fps) as protected, VideoWriter(job.out / "revealed.mp4", fps) as shown:
        for frame, _ in simulated_frames(job.out):
            protected.write(frame.to_rgb8())
            shown.write(frame.reveal(_load_key(job.key_path)).to_rgb8())
