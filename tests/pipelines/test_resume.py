"""Resuming never mixes runs: simulate refuses a folder made from other scenes, sensor seed or key;
the capture cache notices replaced pictures; a corrupt checkpoint is set aside, not trusted."""

import cv2
import numpy as np
import pytest
import yaml

from privcam.pipelines.capture import capture_tensors
from privcam.pipelines.config import load_run_config
from privcam.pipelines.runner import run
from privcam.pipelines.training import CHECKPOINT_FILE

from conftest import synthetic_run, write_config


def image_folder(root, seed):
    """Two classes of two 16x16 pictures."""
    rng = np.random.default_rng(seed)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(2):
            cv2.imwrite(str(root / cls / f"{i}.png"), rng.integers(0, 256, (16, 16), dtype=np.uint8))
    return root


def simulate(workdir, **changes):
    config = synthetic_run({"name": "simulate", "previews": 0}, name="sim", **changes)
    path = write_config(workdir / "run.yaml", **config)
    return run(load_run_config(path))


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"sensor": {"preset": "machine_vision_12bit", "seed": 1}}, "sensor_seed"),
        ({"data": {"source": "synthetic", "count": 6, "classes": 2, "size": [28, 28]}}, "data"),
        ({"key": {"path": "keys/other.key"}}, "key_fingerprint"),
    ],
)
def test_simulate_refuses_to_resume_another_run(workdir, change, named):
    base = {"data": {"source": "synthetic", "count": 6, "classes": 3, "size": [28, 28]}}
    assert simulate(workdir, **base)["frames"] == 6
    manifest = (workdir / "runs/sim/manifest.json").read_bytes()
    with pytest.raises(ValueError, match=f"holds frames of another run: {named} differ"):
        simulate(workdir, **{**base, **change})
    assert (workdir / "runs/sim/manifest.json").read_bytes() == manifest
    assert simulate(workdir, **base)["resumed_frames"] == 6


def test_simulate_notices_pictures_replaced_on_disk(workdir):
    data = {"source": "image_folder", "root": str(image_folder(workdir / "pictures", seed=0))}
    simulate(workdir, data=data)
    image_folder(workdir / "pictures", seed=1)  # same names, other pictures
    with pytest.raises(ValueError, match="scenes of frames 0-3 differ from those they were captured from"):
        simulate(workdir, data=data)


def test_capture_cache_notices_pictures_replaced_on_disk(workdir):
    config = synthetic_run({"name": "evaluate"})
    config["data"] = {"source": "image_folder", "root": str(image_folder(workdir / "pictures", seed=0))}
    run_config = load_run_config(write_config(workdir / "run.yaml", **config))
    first = capture_tensors(run_config, "test", None, cache_dir=workdir / "cache")
    assert len(list((workdir / "cache").iterdir())) == 1
    image_folder(workdir / "pictures", seed=1)
    second = capture_tensors(run_config, "test", None, cache_dir=workdir / "cache")
    assert len(list((workdir / "cache").iterdir())) == 2 and not np.array_equal(first.frames, second.frames)


def test_corrupt_checkpoint_and_cache_are_set_aside(workdir, caplog):
    config = synthetic_run({"name": "train", "epochs": 1, "batch_size": 16})
    path = write_config(workdir / "run.yaml", **config)
    run(load_run_config(path))
    checkpoint = workdir / "runs/tiny/checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:200])  # truncated, as by a full disk
    cache = next((workdir / "runs/cache").iterdir())
    cache.write_bytes(b"not a capture")
    metrics = run(load_run_config(path))
    assert metrics["epochs"] == 1
    assert CHECKPOINT_FILE.load(checkpoint)["epoch"] == 0  # a new one, from scratch
    assert (workdir / "runs/tiny/checkpoint.pt.corrupt").stat().st_size == 200
    assert cache.with_name(cache.name + ".corrupt").read_bytes() == b"not a capture"
    assert "moved to" in caplog.text
    assert yaml.safe_load((workdir / "runs/tiny/config.yaml").read_text())["task"]["epochs"] == 1


def test_training_refuses_to_resume_another_runs_checkpoint(workdir):
    path = write_config(workdir / "run.yaml", **synthetic_run({"name": "train", "epochs": 1, "batch_size": 16}))
    run(load_run_config(path))
    checkpoint = (workdir / "runs/tiny/checkpoint.pt").read_bytes()
    other = synthetic_run({"name": "train", "epochs": 2, "batch_size": 16}, sensor={"seed": 3})
    with pytest.raises(
        ValueError, match=r"checkpoint.pt belongs to another run \(epochs, run, test_frames, train_frames"
    ):
        run(load_run_config(write_config(workdir / "other.yaml", **other)))
    assert (workdir / "runs/tiny/checkpoint.pt").read_bytes() == checkpoint


def test_a_keyed_train_runs_weights_are_evaluated_from_the_cli(workdir):
    keyed = {"keyed": True}
    path = write_config(
        workdir / "run.yaml", **synthetic_run({"name": "train", "epochs": 1, "batch_size": 16}, model=keyed)
    )
    trained = run(load_run_config(path))
    evaluate = synthetic_run(
        {"name": "evaluate"}, name="eval", model={"keyed": True, "weights": "runs/tiny/weights.keyed.pt"}
    )
    metrics = run(load_run_config(write_config(workdir / "eval.yaml", **evaluate)))
    assert metrics["accuracy"] == pytest.approx(trained["test_accuracy"])
    other = {**evaluate, "key": {"path": "keys/other.key"}, "name": "eval_other"}
    with pytest.raises(ValueError, match="made with the key of fingerprint"):
        run(load_run_config(write_config(workdir / "other.yaml", **other)))
