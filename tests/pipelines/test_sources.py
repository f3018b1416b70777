"""Data sources read local files only, and a crafted file is a clear error, never code that runs."""

import os
import pickle

import numpy as np
import pytest

from privcam.pipelines.config import DataSection
from privcam.pipelines.sources import DataError, cifar10

from conftest import write_tiny_cifar


class _RunsCode:
    """What a malicious pickle does: reduce to a call of the attacker's choice."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_cifar10_folder_is_read_as_written(tmp_path):
    write_tiny_cifar(tmp_path)
    train, test = (cifar10(DataSection(source="cifar10", root=str(tmp_path)), split) for split in ("train", "test"))
    assert len(train.images) == 15 and len(test.images) == 6
    assert train.images[0].shape == (32, 32, 3) and train.images[0].dtype == np.uint8
    with open(tmp_path / "cifar-10-batches-py/test_batch", "rb") as f:
        batch = pickle.load(f)  # the test's own file
    np.testing.assert_array_equal(test.images[2], batch["data"][2].reshape(3, 32, 32).transpose(1, 2, 0))
    assert test.labels.tolist() == batch["labels"] and train.class_names == [f"c{i}" for i in range(10)]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (lambda marker: _RunsCode(marker), "refused posix.mkdir"),
        (lambda marker: {"data": _RunsCode(marker), "labels": []}, "refused posix.mkdir"),
        (lambda marker: {"data": np.array([_RunsCode(marker)], dtype=object), "labels": [0]}, "refused posix.mkdir"),
        (lambda marker: ["not", "a", "dict"], "holds a list, not a dict"),
        (lambda marker: {"data": np.zeros((2, 3072), np.float32), "labels": [0, 1]}, "uint8 array (N, 3072)"),
        (lambda marker: {"data": np.zeros((2, 3072), np.uint8), "labels": [0]}, "list of 2 class indices"),
        (lambda marker: {"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]}, "class indices in [0, 10)"),
    ],
)
def test_a_crafted_cifar10_batch_is_refused_and_runs_no_code(tmp_path, payload, message):
    write_tiny_cifar(tmp_path)
    marker = tmp_path / "code-ran"
    with open(tmp_path / "cifar-10-batches-py/test_batch", "wb") as f:
        pickle.dump(payload(marker), f)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        cifar10(DataSection(source="cifar10", root=str(tmp_path)), "test")
    assert not marker.exists()


def test_a_truncated_cifar10_batch_names_the_file(tmp_path):
    write_tiny_cifar(tmp_path)
    path = tmp_path / "cifar-10-batches-py/test_batch"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="test_batch is not a CIFAR-10 pickle batch"):
        cifar10(DataSection(source="cifar10", root=str(tmp_path)), "test")
