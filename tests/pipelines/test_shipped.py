"""The shipped Fashion-MNIST weights and the Table 1 reproduction (needs dataset-fashion-mnist)."""

from pathlib import Path

import pytest

from privcam.nets import create_model
from privcam.pipelines.config import load_run_config
from privcam.pipelines.models import load_weights
from privcam.pipelines.runner import run

REPO = Path(__file__).resolve().parents[2]
WEIGHTS = REPO / "weights" / "fashion_mnist_small_cnn.pt"


def test_shipped_weights_say_how_they_were_made():
    meta = load_weights(create_model("small_cnn"), WEIGHTS)
    assert meta["keyed_frames"] is False and meta["test_accuracy"] >= 0.91
    assert WEIGHTS.stat().st_size < 1_000_000


def test_shipped_weights_reach_91_percent_keyed_on_protected_frames(workdir):
    config = load_run_config(
        REPO / "configs" / "evaluate_fashion_mnist.yaml", [f"model.weights={WEIGHTS}", "output.dir=runs/eval"]
    )
    metrics = run(config)
    assert metrics["accuracy"] >= 0.91


@pytest.mark.slow
def test_reproduce_table_1_on_fashion_mnist(workdir):
    config = load_run_config(
        REPO / "configs" / "reproduce_fashion_mnist.yaml", [f"model.weights={WEIGHTS}", "output.dir=runs/table"]
    )
    results = run(config)
    rows = {r["row"]: r["accuracy"] for r in results["rows"]}
    for mode in ("paper", "per_frame", "masked"):
        assert results["keyed_vs_plain_prediction_agreement"][mode] >= 0.999
        assert rows["non-privacy"][mode] >= 91 and rows["ours with key"][mode] == rows["non-privacy"][mode]
        assert rows["pretrained"][mode] <= 20 and rows["ours without key"][mode] <= 20
    assert abs(rows["fine-tuning"]["masked"] - 10) <= 3  # frames-only learning falls to chance in the default mode
