"""task: reproduce. The five rows of the paper's Table 1 (Perez et al., ICASSP 2024) on our data."""

from __future__ import annotations

import numpy as np

from ...base.images import subplots, write_figure
from ..attacks.learned import measure_table_rows, wrong_key
from ..catalogue import RunContext

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


def run(ctx: RunContext) -> dict:
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
    ctx.write_results("table.md", lines, results)
    figure, axis = subplots(figsize=(8, 3.8))
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
