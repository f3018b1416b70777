import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
import yaml

from privcam.pipelines.capture import capture_tensors
from privcam.pipelines.config import load_run_config
from privcam.pipelines.runner import run
from privcam.pipelines.sources import DataError, load_dataset
from privcam.pipelines.training import CHECKPOINT_FILE
from privcam.privacy import Key, Readout
from privcam.sensor import Frame

from conftest import synthetic_run, write_config, write_tiny_cifar


def run_config(workdir, config: dict, name="run.yaml", overrides=()):
    return run(load_run_config(write_config(workdir / name, **config), list(overrides)))


def test_train_plain_then_resume_then_evaluate(workdir):
    metrics = run_config(workdir, synthetic_run({"name": "train", "epochs": 2, "batch_size": 16, "lr": 0.05}))
    assert metrics["epochs"] == 2 and 0 <= metrics["test_accuracy"] <= 1
    checkpoint = CHECKPOINT_FILE.load(workdir / "runs/tiny/checkpoint.pt")
    assert checkpoint["epoch"] == 1 and checkpoint["config"]["task"]["epochs"] == 2
    assert checkpoint["meta"]["key_fingerprint"] is None  # a plain model: trained without the key
    again = run_config(workdir, synthetic_run({"name": "train", "epochs": 2, "batch_size": 16, "lr": 0.05}))
    assert again["test_accuracy"] == metrics["test_accuracy"]  # resumed at the end: nothing retrained
    evaluated = run_config(
        workdir,
        synthetic_run({"name": "evaluate"}, name="tiny_eval", model={"weights": "runs/tiny/weights.pt"}),
    )
    assert evaluated["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    assert len(evaluated["confusion"]) == 3


def test_train_keyed_on_protected_frames_with_keyed_augmentation(workdir):
    """Keyed training on protected frames, with crop + flip in their keyed form, learns like plain training
    with the same augmentation (the same network up to the order of features; dropout masks then fall on
    other features, so the runs are not bit-identical)."""
    task = {"name": "train", "epochs": 10, "batch_size": 16, "lr": 0.01, "schedule": "cosine"}
    data = {"count": 96}
    augment = [{"name": "RandomCrop", "size": [28, 28], "padding": 2}, "RandomHorizontalFlip"]
    plain = run_config(workdir, synthetic_run(task, name="plain", data=data, augment=augment))
    keyed = run_config(workdir, synthetic_run(task, name="keyed", data=data, augment=augment, model={"keyed": True}))
    assert keyed["keyed"] is True and keyed["key_fingerprint"] == Key.load(workdir / "keys/test.key").fingerprint
    assert (workdir / "runs/keyed/weights.keyed.pt").exists()
    assert plain["test_accuracy"] > 0.8 and keyed["test_accuracy"] > 0.8
    assert abs(keyed["test_accuracy"] - plain["test_accuracy"]) <= 0.15


def test_reproduce_rows(workdir):
    run_config(workdir, synthetic_run({"name": "train", "epochs": 3, "batch_size": 16, "lr": 0.05}))
    results = run_config(
        workdir,
        synthetic_run(
            {"name": "reproduce", "finetune_epochs": 1, "batch_size": 16},
            name="tiny_reproduce",
            model={"weights": "runs/tiny/weights.pt"},
        ),
    )
    rows = {r["row"]: r["accuracy"] for r in results["rows"]}
    assert results["modes"] == ["paper", "per_frame", "masked"]
    for mode in results["modes"]:  # keyed == plain in every mode
        assert rows["ours with key"][mode] == rows["non-privacy"][mode]
        assert results["keyed_vs_plain_prediction_agreement"][mode] == 1.0
    out = workdir / "runs/tiny_reproduce"
    assert "| row | setting | paper mode | per_frame mode | masked mode |" in (out / "table.md").read_text()
    assert cv2.imread(str(out / "table.png")) is not None
    assert json.loads((out / "results.json").read_text())["fine_tuning_budget"].startswith("1 epochs")


def test_reproduce_on_a_local_cifar10_folder_with_vgg16(workdir):
    write_tiny_cifar(workdir / "cifar")
    base = {
        "data": {"source": "cifar10", "root": "cifar"},
        "sensor": {"preset": "generic_cmos", "seed": 0},
        "model": {"arch": "vgg16_bn_cifar", "num_classes": 10, "in_channels": 3},
    }
    config = synthetic_run({"name": "train", "epochs": 1, "batch_size": 8, "lr": 0.01}, name="cifar", **base)
    config["data"] = base["data"]
    run_config(workdir, config)
    reproduce = synthetic_run({"name": "reproduce", "finetune_epochs": 1, "batch_size": 8}, name="cifar_rep", **base)
    reproduce["data"] = base["data"]
    reproduce["model"] = {**base["model"], "weights": "runs/cifar/weights.pt"}
    results = run_config(workdir, reproduce)
    assert results["test_images"] == 6
    assert set(results["keyed_vs_plain_prediction_agreement"].values()) == {1.0}


def test_data_sources(workdir):
    from privcam.pipelines.config import DataSection

    cifar = load_dataset(DataSection(source="cifar10", root=str(write_tiny_cifar(workdir / "c"))), "test")
    assert len(cifar.images) == 6 and cifar.images[0].shape == (32, 32, 3) and cifar.class_names[0] == "c0"
    folder = workdir / "images"
    for cls in ("cats", "dogs"):
        (folder / cls).mkdir(parents=True)
        for i in range(2):
            cv2.imwrite(str(folder / cls / f"{i}.png"), np.full((10, 12, 3), 40 * i, np.uint8))
    images = load_dataset(DataSection(source="image_folder", root=str(folder), size=[8, 8]))
    assert images.class_names == ["cats", "dogs"] and list(images.labels) == [0, 0, 1, 1]
    assert images.images[0].shape == (8, 8, 3)
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_dataset(DataSection(source="fashion_mnist", root=str(workdir / "nowhere")))
    with pytest.raises(DataError, match="lacks data_batch_1"):
        load_dataset(DataSection(source="cifar10", root=str(folder)), "train")


def test_captures_are_cached_and_reproducible(workdir):
    config = load_run_config(write_config(workdir / "r.yaml", **synthetic_run({"name": "train"})))
    key = Key.generate()
    captured = capture_tensors(config, "test", key)
    assert captured.readout == Readout() and captured.keyed.key_fingerprint == key.fingerprint  # "masked" by default
    assert captured.keyed.nonces[:2] == [(captured.keyed.nonces[0] >> 32 << 32) + 10_000_000 + i for i in (0, 1)]
    assert len(list((workdir / "runs/cache").iterdir())) == 1
    cached = capture_tensors(config, "test", key)
    assert torch.equal(cached.frames, captured.frames) and cached.keyed.nonces == captured.keyed.nonces
    again = capture_tensors(config, "test", key, cache_dir=None)  # another capture: other nonces, same scenes
    assert torch.equal(again.keyed.reveal(key), captured.keyed.reveal(key))
    plain = capture_tensors(config, "test", None)
    assert not torch.equal(captured.frames, plain.frames) and plain.readout is None


def test_simulate_images_resumes_in_the_npz_layout(workdir):
    config = synthetic_run(
        {"name": "simulate", "format": "npz"},
        name="sim",
        data={"source": "skimage_samples", "limit": 2, "size": [48, 64]},
    )
    stats = run_config(workdir, config)
    out = workdir / "runs/sim"
    assert stats["frames"] == 2 and stats["resumed_frames"] == 0
    frame = Frame.load(out / "frames/000000.npz")
    assert frame.protected and frame.data.shape == (48, 64)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest[1]["source"] == "camera" and manifest[0]["key_fingerprint"] == stats["key_fingerprint"]
    assert (out / "manifest.csv").read_text().startswith("file,sample,source,label,frame_index,nonce")
    assert cv2.imread(str(out / "previews/000001.png")).shape == (48, 64, 3)
    before = (out / "frames/000000.npz").stat().st_mtime_ns
    again = run_config(workdir, config)
    assert again["resumed_frames"] == 2 and (out / "frames/000000.npz").stat().st_mtime_ns == before


def test_simulate_video_writes_protected_and_revealed_mp4(workdir):
    video = workdir / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for i in range(6):
        frame = np.zeros((48, 64, 3), np.uint8)
        cv2.circle(frame, (10 + 8 * i, 24), 8, (255, 200, 0), -1)
        writer.write(frame)
    writer.release()
    config = synthetic_run(
        {"name": "simulate"},
        name="video",
        data={"source": "video", "path": str(video)},
        sensor={"preset": "generic_cmos", "overrides": {"readout": {"mode": "per_frame"}}},
    )
    stats = run_config(workdir, config)
    assert stats["frames"] == 6
    nonces = [row["nonce"] for row in json.loads((workdir / "runs/video/manifest.json").read_text())]
    assert nonces == [(nonces[0] >> 32 << 32) + i for i in range(6)]  # the run's random prefix, then the index
    for name in ("protected.mp4", "revealed.mp4"):
        capture = cv2.VideoCapture(str(workdir / "runs/video" / name))
        count = 0
        while capture.read()[0]:
            count += 1
        assert count == 6, name


@pytest.mark.slow
def test_simulate_fashion_mnist_with_per_frame_nonces(workdir):
    path = os.path.join(os.path.dirname(__file__), "../../configs/simulate_fashion_mnist.yaml")
    with open(path) as f:
        config = yaml.safe_load(f)
    config["output"] = {"dir": "runs/fm"}
    stats = run_config(workdir, config)
    assert stats["frames"] == config["data"]["limit"]


@pytest.mark.slow
def test_torchrun_trains_with_two_processes(workdir):
    """DistributedDataParallel over gloo on CPU: how users scale out training (slow: 20-25 s; the
    default run launches torchrun in test_simulate)."""
    subprocess.run([sys.executable, "-m", "privcam.pipelines.cli", "keygen", "keys/test.key"], check=True)
    path = write_config(
        workdir / "ddp.yaml", **synthetic_run({"name": "train", "epochs": 2, "batch_size": 8}, name="ddp")
    )
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
               "-m", "privcam.pipelines.cli", "run", str(path)]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((workdir / "runs/ddp/metrics.json").read_text())
    assert metrics["epochs"] == 2, (metrics, result.stdout[-2000:], result.stderr[-2000:])
    assert CHECKPOINT_FILE.load(workdir / "runs/ddp/checkpoint.pt")["epoch"] == 1


def test_attack_suite_in_every_mode_on_tiny_data(workdir):
    run_config(
        workdir, synthetic_run({"name": "train", "epochs": 3, "batch_size": 16, "lr": 0.01, "schedule": "cosine"})
    )
    task = {
        "name": "attack",
        "finetune_epochs": 1,
        "mlp_epochs": 1,
        "histogram_epochs": 2,
        "kpa_max_frames": 4,
        "kpa_trials": 1,
        "visual_frames": 4,
        "batch_size": 16,
    }
    results = run_config(workdir, synthetic_run(task, name="attack", model={"weights": "runs/tiny/weights.pt"}))
    runs = results["runs"]
    assert list(runs) == ["paper", "per_frame", "masked"]
    for mode, attacks in runs.items():
        assert attacks["readout"] == f"pixel readout, {mode} mode"
        assert attacks["key_extraction"]["network_order"] == 1.0  # the table is the network's own order
        assert attacks["visual"]["revealed_equals_plain_capture"] == 1.0
        assert attacks["keyed_vs_plain_agreement"] == 1.0
    assert runs["paper"]["known_plaintext"]["recovered_fraction"]["noise-free"][-1] >= 0.99
    assert runs["paper"]["key_extraction"]["recovered_fraction"] == 1.0  # ... which is every frame's order
    for mode in ("per_frame", "masked"):
        assert runs[mode]["known_plaintext"]["recovered_fraction"]["sensor noise"][-1] <= 0.05  # chance 1/784
        assert runs[mode]["key_extraction"]["recovered_fraction"] <= 0.05  # ... and no other frame's order here
    out = workdir / "runs/attack"
    report = (out / "report.md").read_text()
    assert "| attack | paper | per_frame | masked |" in report and "known plaintext, next frame" in report
    assert cv2.imread(str(out / "report.png")) is not None


def test_attack_scores_a_quad_readout_against_its_own_order(workdir):
    """With a Bayer sensor whose ADC reads 2x2 cells, the known-plaintext and visual attacks must score
    against the quad order the frames are really in (scored against a pixel order, both fall to chance)."""
    sensor = {"preset": "phone_imx363", "seed": 0}
    run_config(workdir, synthetic_run({"name": "train", "epochs": 1, "batch_size": 16}, sensor=sensor))
    task = {"name": "attack", "modes": ["paper"], "finetune_epochs": 1, "mlp_epochs": 1, "histogram_epochs": 1,
            "kpa_max_frames": 8, "kpa_trials": 1, "visual_frames": 4, "batch_size": 16}  # fmt: skip
    results = run_config(
        workdir, synthetic_run(task, name="attack_quad", sensor=sensor, model={"weights": "runs/tiny/weights.pt"})
    )
    paper = results["runs"]["paper"]
    kpa = paper["known_plaintext"]
    assert kpa["readout"] == "quad readout, paper mode"
    assert kpa["recovered_fraction"]["sensor noise"][-1] >= 0.5  # chance is 1/784
    assert paper["visual"]["revealed_equals_plain_capture"] == 1.0
    assert paper["key_extraction"]["recovered_fraction"] == 1.0


def test_per_frame_captures_carry_their_nonces(workdir):
    sensor = {"preset": "phone_imx363", "overrides": {"readout": {"mode": "per_frame"}}}
    config = load_run_config(write_config(workdir / "r.yaml", **synthetic_run({"name": "train"}, sensor=sensor)))
    key = Key.generate()
    captured = capture_tensors(config, "test", key, limit=3)
    assert captured.readout == Readout(unit="quad", mode="per_frame")  # the preset's unit, with the mode changed
    prefix = captured.keyed.nonces[0] >> 32
    assert captured.keyed.nonces == [(prefix << 32) + 10_000_000 + i for i in range(3)]  # the test frames' indices
    assert captured.keyed.readout_of(1) == Readout(unit="quad", mode="per_frame", nonce=(prefix << 32) + 10_000_001)
    plain = capture_tensors(config, "test", None, limit=3)
    assert torch.equal(captured.keyed.reveal(key), plain.frames)
