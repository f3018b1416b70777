"""simulate at scale: streamed sources, WebDataset shards that repeat byte for byte, resuming per
shard, and training that reads the shards."""

import gzip
import json
import os
import subprocess
import sys
import tarfile

import cv2
import numpy as np
import pytest

from privcam.pipelines.config import DataSection, load_run_config
from privcam.pipelines.runner import run
from privcam.pipelines.shards import simulated_frames
from privcam.pipelines.sources import DataError, load_dataset, stream_scenes
from privcam.pipelines.validate import sensor_config
from privcam.privacy import Key
from privcam.sensor import Frame, Sensor

from conftest import synthetic_run, write_config

SCENES = {"source": "synthetic", "count": 10, "classes": 3, "size": [28, 28], "repeat": 2}


def simulate(workdir, name="sim", **task):
    config = synthetic_run({"name": "simulate", "shard_size": 6, **task}, name=name, data=SCENES)
    return run(load_run_config(write_config(workdir / f"{name}.yaml", **config)))


def write_idx(path, array):
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 8, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape) + array.tobytes())


def test_streamed_scenes_are_the_loaded_ones_by_any_range(tmp_path):
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8), rng.integers(0, 10, 7).astype(np.uint8)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    section = DataSection(source="fashion_mnist", root=str(tmp_path), limit=5, repeat=3, size=[14, 14])
    stream = stream_scenes(section)
    assert stream.count == 15
    every = list(stream.read(0, 15))
    assert [name for _, _, name in every] == [f"test-{i % 5:05d}" for i in range(15)]
    assert [label for _, label, _ in every] == [int(labels[i % 5]) for i in range(15)]
    for start, stop in [(3, 12), (9, 10), (11, 15)]:
        part = list(stream.read(start, stop))
        assert all(np.array_equal(a[0], b[0]) for a, b in zip(part, every[start:stop], strict=True))
    loaded = load_dataset(DataSection(source="fashion_mnist", root=str(tmp_path), limit=5, size=[14, 14]))
    assert all(np.array_equal(a, b[0]) for a, b in zip(loaded.images, every[:5], strict=True))
    assert np.array_equal(every[2][0], cv2.resize(images[2], (14, 14), interpolation=cv2.INTER_AREA))
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images[:4])  # fewer images than labels
    with pytest.raises(DataError, match=r"holds 4 images but .* 7 labels"):
        stream_scenes(section)
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as f:  # the header promises 7 images
        f.write(bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in (7, 28, 28)) + images[:4].tobytes())
    with pytest.raises(DataError, match="truncated: it ends before item 5 of 7"):
        list(stream_scenes(section).read(0, 15))
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-30])  # the gzip stream itself cut short
    with pytest.raises(DataError, match="cannot be read past item 0"):
        list(stream_scenes(section).read(0, 15))
    path.write_bytes(b"not gzip")
    with pytest.raises(DataError, match="is not a gzipped IDX file"):
        stream_scenes(section)


def test_shards_hold_the_frames_the_sensor_gives_and_resume_per_shard(workdir):
    stats = simulate(workdir)
    out = workdir / "runs/sim"
    assert stats["frames"] == 20 and stats["shards"] == 4 and stats["resumed_frames"] == 0
    with tarfile.open(out / "shards/000001.tar") as tar:
        members = tar.getmembers()
    assert [m.name for m in members[:3]] == ["000006.cls", "000006.json", "000006.npy"] and len(members) == 18
    assert {(m.mtime, m.uname) for m in members} == {(0, "privcam")}
    identity = json.loads((out / "identity.json").read_text())
    config = load_run_config(workdir / "sim.yaml")
    sensor = Sensor(sensor_config(config), seed=0, nonce_prefix=identity["nonce_prefix"], epoch=identity["epoch"])
    key = Key.load(workdir / "keys/test.key")
    scenes = list(stream_scenes(config.data).read(0, 20))
    frames = list(simulated_frames(out))
    assert len(frames) == 20 and [label for _, label in frames] == [label for _, label, _ in scenes]
    for index in (0, 7, 13, 19):  # each frame is what the sensor gives for its index, byte for byte
        expected = sensor.capture_image(scenes[index][0], key=key, frame_index=index)
        assert frames[index][0].to_sample() == expected.to_sample()
    assert frames[3][0].reveal(key).data.shape == (28, 28) and frames[3][0].protected
    rows = json.loads((out / "manifest.json").read_text())
    assert [row["frame_index"] for row in rows] == list(range(20)) and rows[7]["file"] == "shards/000001.tar"
    assert len(list((out / "previews").iterdir())) == 16
    before = {p.name: p.read_bytes() for p in (out / "shards").iterdir()}
    (out / "shards/000002.tar").write_bytes(before["000002.tar"][:1000])  # cut short, as by a full disk
    again = simulate(workdir)
    assert again["resumed_frames"] == 14  # three shards whole; the cut one is captured again
    assert {p.name: p.read_bytes() for p in (out / "shards").iterdir()} == before


def test_a_shard_captured_again_on_a_torch_device_is_the_same(workdir):
    """The torch chain gives the numba kernels' frames: a run resumed with sensor.device keeps its shards."""
    simulate(workdir)
    shards = workdir / "runs/sim/shards"
    before = {p.name: p.read_bytes() for p in shards.iterdir()}
    (shards / "000001.tar").unlink()
    config = synthetic_run({"name": "simulate", "shard_size": 6}, name="sim", data=SCENES, sensor={"device": "cpu"})
    again = run(load_run_config(write_config(workdir / "sim.yaml", **config)))
    assert again["resumed_frames"] == 14
    assert {p.name: p.read_bytes() for p in shards.iterdir()} == before


def test_a_frame_sample_that_is_not_one_is_refused():
    frame = Frame(np.zeros((4, 5), np.uint16), {"shape": [4, 5]})
    sample = frame.to_sample()
    assert Frame.from_sample(sample, "x").data.shape == (4, 5)
    with pytest.raises(ValueError, match=r"x: a frame sample needs .npy and .json files, found \['npy'\]"):
        Frame.from_sample({"npy": sample["npy"]}, "x")
    with pytest.raises(ValueError, match="x: not a frame sample"):
        Frame.from_sample({**sample, "npy": b"garbage"}, "x")
    with pytest.raises(ValueError, match=r"x: data must be uint16 of shape \[4, 6\], got uint16 \[4, 5\]"):
        Frame.from_sample({**sample, "json": b'{"shape": [4, 6]}'}, "x")


def test_training_reads_the_shards_of_a_simulate_run(workdir):
    for split in ("train", "test"):
        config = synthetic_run(
            {"name": "simulate", "shard_size": 16}, name=f"fm_{split}", output={"dir": f"runs/frames/{split}"}
        )
        config["data"]["split"] = split
        run(load_run_config(write_config(workdir / f"{split}.yaml", **config)))
    keyed = {"keyed": True}
    train = synthetic_run({"name": "train", "epochs": 1, "batch_size": 16}, model=keyed)
    train["data"] = {"source": "shards", "root": "runs/frames"}
    metrics = run(load_run_config(write_config(workdir / "train.yaml", **train)))
    assert metrics["epochs"] == 1 and 0 <= metrics["test_accuracy"] <= 1
    other = {**train, "key": {"path": "keys/other.key"}, "name": "other"}
    with pytest.raises(DataError, match="holds frames protected with the key of fingerprint"):
        run(load_run_config(write_config(workdir / "other.yaml", **other)))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"data": {**SCENES, "repeat": 2}}, "data.repeat captures the scenes several times over"),
        ({"data": {"source": "shards", "root": "."}}, "this run has task 'train' with model.keyed: false"),
        (
            {"data": {"source": "shards", "root": "."}, "model": {"keyed": True}},
            r"train needs identity.json, the train split of a folder with a finished simulate run",
        ),
    ],
)
def test_data_a_task_cannot_use_is_refused_by_validate(workdir, changes, message):
    config = synthetic_run({"name": "train"}, **changes)
    with pytest.raises(ValueError, match=message):
        run(load_run_config(write_config(workdir / "run.yaml", **config)))


@pytest.mark.slow
def test_torchrun_and_worker_processes_write_the_same_shards(workdir):
    simulate(workdir)
    base = workdir / "runs/sim"
    for name in ("workers", "ranks"):  # the same run (its nonce prefix and epoch) in other folders
        (workdir / "runs" / name).mkdir()
        (workdir / "runs" / name / "identity.json").write_bytes((base / "identity.json").read_bytes())
    simulate(workdir, name="workers", workers=2)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29519",
               "-m", "privcam.pipelines.cli", "run", "ranks.yaml"]  # fmt: skip
    write_config(
        workdir / "ranks.yaml", **synthetic_run({"name": "simulate", "shard_size": 6}, name="ranks", data=SCENES)
    )
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("workers", "ranks"):
        for path in [*(base / "shards").iterdir(), base / "manifest.json"]:
            assert (workdir / "runs" / name / path.relative_to(base)).read_bytes() == path.read_bytes(), (name, path)
