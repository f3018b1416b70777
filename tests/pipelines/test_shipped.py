"""The shipped Fashion-MNIST weights and the Table 1 reproduction (needs dataset-fashion-mnist)."""

from pathlib import Path

import pytest

from privcam.nets import create_model
from privcam.pipelines.config import load_run_config
from privcam.pipelines.models import load_weights
from privcam.pipelines.runner import run

REPO = Path(__file__).resolve().parents[2]
WEIGHTS = REPO / "weights" / "fashion_mnist_small_cnn.pt"


# the zoo's Fashion-MNIST networks: weights file, the test accuracy their training run reached
SHIPPED = {"small_cnn": 0.93, "vit_tiny": 0.83, "convnext_nano": 0.78}


@pytest.mark.parametrize("arch", SHIPPED)
def test_shipped_weights_say_how_they_were_made(arch):
    path = REPO / "weights" / f"fashion_mnist_{arch}.pt"
    meta = load_weights(create_model(arch), path)
    assert meta["keyed_frames"] is False and meta["test_accuracy"] >= SHIPPED[arch]
    assert path.stat().st_size < 1_000_000


@pytest.mark.parametrize("arch", ["vit_tiny", "convnext_nano"])
def test_the_zoos_transformer_and_convnext_run_keyed_on_protected_frames(workdir, arch):
    weights = REPO / "weights" / f"fashion_mnist_{arch}.pt"
    overrides = [f"model.arch={arch}", f"model.weights={weights}", "data.limit=2000", "output.dir=runs/eval"]
    metrics = run(load_run_config(REPO / "configs" / "evaluate_fashion_mnist.yaml", overrides))
    assert metrics["accuracy"] >= SHIPPED[arch] - 0.03  # 2,000 of the 10,000 test frames


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
