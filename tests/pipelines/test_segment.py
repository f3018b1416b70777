import json

import cv2
import pytest
import torch

from privcam.pipelines.cli import main
from privcam.pipelines.config import load_run_config
from privcam.pipelines.runner import run
from privcam.pipelines.tasks.segment import segmentation_metrics

from conftest import write_config


def test_metrics():
    target = torch.tensor([[0, 0, 1, 1]])
    assert segmentation_metrics(target, target, 2) == {"miou": 1.0, "pixel_accuracy": 1.0}
    half = segmentation_metrics(torch.tensor([[0, 1, 1, 1]]), target, 2)
    assert half["miou"] == pytest.approx((1 / 2 + 2 / 3) / 2) and half["pixel_accuracy"] == 0.75


def test_make_shapes_then_segment_keyed(workdir, capsys):
    assert main(["make-shapes", "shapes", "--train", "48", "--test", "12", "--size", "32"]) == 0
    mask = cv2.imread(str(workdir / "shapes/train/masks/000000.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (32, 32) and set(mask.flatten()) <= {0, 1, 2, 3} and mask.max() > 0
    config = write_config(
        workdir / "segment.yaml",
        name="seg",
        key={"path": "keys/seg.key"},
        data={"source": "segmentation_folder", "root": "shapes"},
        sensor={"preset": "phone_imx363"},
        model={"arch": "unet_small", "num_classes": 4, "in_channels": 1},
        task={"name": "segment", "epochs": 2, "batch_size": 16, "lr": 0.05},
        augment=["RandomHorizontalFlip", {"name": "RandomAffine", "degrees": 10, "p": 0.5}],
        output={"dir": "runs/seg"},
    )
    results = run(load_run_config(config))
    rows = results["rows"]
    for mode in ("paper", "per_frame", "masked"):
        assert results["keyed_vs_plain_pixel_agreement"][mode] >= 0.999
        assert rows[f"keyed model, {mode} frames, revealed with the key"] == rows["plain model, plain frames"]
    out = workdir / "runs/seg"
    assert json.loads((out / "results.json").read_text())["test_scenes"] == 12
    assert "| plain model, plain frames |" in (out / "table.md").read_text()
    assert cv2.imread(str(out / "overlays.png")) is not None and (out / "weights.pt").exists()


@pytest.mark.slow
def test_fashion_mnist_foreground_segmentation(workdir):
    from pathlib import Path

    config = load_run_config(
        Path(__file__).resolve().parents[2] / "configs" / "segment_fashion_mnist.yaml",
        ["output.dir=runs/fm", "task.epochs=1", "task.train_limit=5000"],
    )
    results = run(config)
    rows = results["rows"]
    assert min(results["keyed_vs_plain_pixel_agreement"].values()) >= 0.999
    assert rows["plain model, plain frames"]["miou"] > 0.9
    constant = rows["constant prediction (majority class)"]
    for mode in ("paper", "masked"):
        wrong = rows[f"model keyed with another key, same {mode} frames"]
        assert wrong["pixel_accuracy"] <= constant["pixel_accuracy"] + 0.1
        assert wrong["miou"] < 0.5 * rows["plain model, plain frames"]["miou"]
    # In the paper's mode a permutation keeps each frame's histogram, so how many pixels are garment still
    # shows through; the masked mode's uniform values leave the other key's network at the constant level.
    assert rows["model keyed with another key, same masked frames"]["miou"] <= constant["miou"] + 0.05
