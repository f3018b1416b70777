"""task: reproduce. The five rows of the paper's Table 1 (Perez et al., ICASSP 2024) on our data."""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ...nets.train import TrainSettings, evaluate, fit
from ...privacy import Key
from ...privacy.atomic import write_figure
from ..data import capture_tensors
from ..runner import TASKS, RunContext, Task, build_plain_model, make_keyed, write_results

# Table 1 of the paper: CIFAR-10, VGG16, accuracy in %.
PAPER_TABLE_1 = {
    "non-privacy": 94.1,
    "pretrained": 11.7,
    "fine-tuning": 57.6,
    "ours with key": 94.1,
    "ours without key": 11.8,
}
ROW_TEXT = {
    "non-privacy": "plain model on plain frames",
    "pretrained": "the same plain model on protected frames",
    "fine-tuning": "the plain model fine-tuned on protected training frames",
    "ours with key": "the keyed model on protected frames",
    "ours without key": "a model keyed with another key on the same protected frames",
}


@dataclass
class ReproduceParams:
    finetune_epochs: int = 2
    finetune_lr: float = 0.01
    finetune_limit: int | None = None  # protected training frames for the fine-tuning row (None: all)
    batch_size: int = 128


def wrong_key(seed: int) -> Key:
    """Another key, fixed by the run seed so that the table can be reproduced."""
    return Key(hashlib.blake2b(f"privcam-reproduce-wrong-key/{seed}".encode(), digest_size=32).digest())


@dataclass
class TableRows:
    """The five accuracies of Table 1, and how they were obtained."""

    accuracy: dict[str, float]
    agreement: float  # keyed vs plain predictions
    test_images: int
    finetune_frames: int


def measure_table_rows(
    ctx: RunContext, finetune_epochs: int, finetune_lr: float, finetune_limit, batch_size: int
) -> TableRows:
    """Plain, plain on protected, fine-tuned on protected, keyed, and keyed with another key."""
    config, key = ctx.config, ctx.key
    if not config.model.weights:
        raise ValueError(f"{config.where('model')}: {config.task['name']} needs model.weights (a plain trained model)")
    plain_test, labels = capture_tensors(config, "test", None)
    protected_test, _ = capture_tensors(config, "test", key)
    input_size = tuple(protected_test.shape[1:])
    model = build_plain_model(config, input_size).eval()

    accuracy = {}
    accuracy["non-privacy"], _, plain_predictions = evaluate(model, plain_test, labels)
    accuracy["pretrained"], _, _ = evaluate(model, protected_test, labels)
    keyed = make_keyed(model, config, key, input_size)
    accuracy["ours with key"], _, keyed_predictions = evaluate(keyed, protected_test, labels)
    stranger = make_keyed(model, config, wrong_key(config.seed), input_size)
    accuracy["ours without key"], _, _ = evaluate(stranger, protected_test, labels)

    train_frames, train_labels = capture_tensors(config, "train", key, limit=finetune_limit)
    finetuned = copy.deepcopy(model)
    settings = TrainSettings(epochs=finetune_epochs, batch_size=batch_size, lr=finetune_lr, schedule="cosine")
    meta = {"finetune_on": "protected", "frames": len(train_frames), "key_fingerprint": key.fingerprint}
    fit(finetuned, (train_frames, train_labels), (protected_test, labels), settings, ctx.out / "finetune", meta)
    accuracy["fine-tuning"], _, _ = evaluate(finetuned, protected_test, labels)
    agreement = float((keyed_predictions == plain_predictions).float().mean())
    return TableRows(accuracy, agreement, len(labels), len(train_frames))


def run_reproduce(ctx: RunContext) -> dict:
    params = ctx.params
    table = measure_table_rows(
        ctx, params.finetune_epochs, params.finetune_lr, params.finetune_limit, params.batch_size
    )
    budget = (
        f"{params.finetune_epochs} epochs of SGD (lr {params.finetune_lr}, cosine) "
        f"on {table.finetune_frames} protected training frames"
    )
    rows = [
        {
            "row": name,
            "setting": ROW_TEXT[name],
            "accuracy": round(100 * table.accuracy[name], 2),
            "paper_cifar10_vgg16": PAPER_TABLE_1[name],
        }
        for name in PAPER_TABLE_1
    ]
    results = {
        "dataset": ctx.config.data.source,
        "arch": ctx.config.model.arch,
        "test_images": table.test_images,
        "rows": rows,
        "keyed_vs_plain_prediction_agreement": table.agreement,
        "fine_tuning_budget": budget,
        "key_fingerprint": ctx.key.fingerprint,
        "wrong_key_fingerprint": wrong_key(ctx.config.seed).fingerprint,
    }
    _write_table(ctx, results)
    return results


def _write_table(ctx: RunContext, results: dict) -> None:
    lines = [
        f"| row | setting | accuracy ({results['dataset']}, {results['arch']}) | paper (CIFAR-10, VGG16) |",
        "|---|---|---|---|",
        *[
            f"| {r['row']} | {r['setting']} | {r['accuracy']:.2f}% | {r['paper_cifar10_vgg16']}% |"
            for r in results["rows"]
        ],
        "",
        f"{results['test_images']} test images captured through the simulated sensor. Keyed and plain models "
        f"agree on {100 * results['keyed_vs_plain_prediction_agreement']:.2f}% of the predictions. "
        f"Fine-tuning budget: {results['fine_tuning_budget']}.",
    ]
    write_results(ctx.out, "table.md", lines, results)
    figure, axis = plt.subplots(figsize=(8, 3.8))
    names = [r["row"] for r in results["rows"]]
    x = np.arange(len(names))
    ours_label = f"privcam ({results['dataset']}, {results['arch']})"
    ours = axis.bar(x - 0.2, [r["accuracy"] for r in results["rows"]], 0.4, label=ours_label)
    paper = axis.bar(x + 0.2, [r["paper_cifar10_vgg16"] for r in results["rows"]], 0.4, label="paper (CIFAR-10, VGG16)")
    axis.bar_label(ours, fmt="%.1f", fontsize=8)
    axis.bar_label(paper, fmt="%.1f", fontsize=8)
    axis.set_xticks(x, names)
    axis.set_ylabel("test accuracy (%)")
    axis.set_ylim(0, 118)
    axis.set_title("Table 1 reproduced")
    axis.legend(loc="upper center", ncol=2)
    write_figure(figure, ctx.out / "table.png")


TASKS.register("reproduce")(Task(ReproduceParams, run_reproduce, "the paper's Table 1: five rows"))
