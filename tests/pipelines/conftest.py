import pickle

import numpy as np
import pytest
import yaml


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Runs write runs/... relative to the working folder: keep them in a temporary one."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_config(path, **sections):
    path.write_text(yaml.safe_dump(sections, sort_keys=False))
    return path


def synthetic_run(task: dict, **changes) -> dict:
    """A tiny, fast run: synthetic shapes, 28x28 frames, the small CNN."""
    config = {
        "name": "tiny",
        "seed": 0,
        "key": {"path": "keys/test.key"},
        "data": {"source": "synthetic", "count": 48, "classes": 3, "size": [28, 28]},
        "sensor": {"preset": "machine_vision_12bit", "seed": 0},
        "model": {"arch": "small_cnn", "num_classes": 3, "in_channels": 1},
        "task": task,
        "output": {"dir": "runs/{name}"},
    }
    for section, value in changes.items():
        if isinstance(value, dict) and isinstance(config.get(section), dict):
            config[section] = {**config[section], **value}
        else:
            config[section] = value
    return config


def write_tiny_cifar(root, train=12, test=6):
    """A CIFAR-10 folder in the python-pickle format, as torchvision reads it, with random images."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        batch = {
            "data": rng.integers(0, 256, (train // 5 + 1, 3072), dtype=np.uint8),
            "labels": [int(c) for c in rng.integers(0, 10, train // 5 + 1)],
        }
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump(batch, f)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(
            {
                "data": rng.integers(0, 256, (test, 3072), dtype=np.uint8),
                "labels": [int(c) for c in rng.integers(0, 10, test)],
            },
            f,
        )
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)
    return root
