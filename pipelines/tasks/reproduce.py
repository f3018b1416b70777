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
    tables = {
        mode: measure_table_rows(
            ctx.in_mode(mode), params.finetune_epochs, params.finetune_lr, params.finetune_limit, params.batch_size
        )
        for mode in params.modes
    }
    first = next(iter(tables.values()))
    rows = [
        {
            "row": name,
            "setting": ROW_TEXT[name],
            "accuracy": {mode: round(100 * table.accuracy[name], 2) for mode, table in tables.items()},
            "paper_cifar10_vgg16": PAPER_TABLE_1[name],
        }
        for name in PAPER_TABLE_1
    ]
    results = {
        "dataset": ctx.config.data.source,
        "arch": ctx.config.model.arch,
        "test_images": first.test_images,
        "modes": list(tables),
        "rows": rows,
        "keyed_vs_plain_prediction_agreement": {mode: table.agreement for mode, table in tables.items()},
        "fine_tuning_budget": (
            f"{params.finetune_epochs} epochs of SGD (lr {params.finetune_lr}, cosine) "
            f"on {first.finetune_frames} protected training frames"
        ),
        "key_fingerprint": ctx.key.fingerprint,
        "wrong_key_fingerprint": wrong_key(ctx.config.seed).fingerprint,
    }
    _write_table(ctx, results)
    return results


def _write_table(ctx: RunContext, results: dict) -> None:
    modes = results["modes"]
    agreement = ", ".join(f"{100 * v:.2f}% ({m})" for m, v in results["keyed_vs_plain_prediction_agreement"].items())
    lines = [
        f"| row | setting | {' | '.join(f'{m} mode' for m in modes)} | paper (CIFAR-10, VGG16) |",
        "|---|---|" + "---|" * len(modes) + "---|",
        *[
            f"| {r['row']} | {r['setting']} | "
            + " | ".join(f"{r['accuracy'][m]:.2f}%" for m in modes)
            + f" | {r['paper_cifar10_vgg16']}% |"
            for r in results["rows"]
        ],
        "",
        f"{results['dataset']}, {results['arch']}: {results['test_images']} test images captured through the "
        f"simulated sensor in each protection mode. Keyed and plain models agree on {agreement} of the "
        f"predictions. Fine-tuning budget: {results['fine_tuning_budget']}.",
    ]
    ctx.write_results("table.md", lines, results)
    figure, axis = subplots(figsize=(9, 3.8))
    names = [r["row"] for r in results["rows"]]
    x = np.arange(len(names))
    width = 0.8 / (len(modes) + 1)
    for i, mode in enumerate(modes):
        bars = axis.bar(
            x + (i - len(modes) / 2) * width,
            [r["accuracy"][mode] for r in results["rows"]],
            width,
            label=f"privcam, {mode} mode",
        )
        axis.bar_label(bars, fmt="%.1f", fontsize=6)
    paper = axis.bar(
        x + len(modes) / 2 * width,
        [r["paper_cifar10_vgg16"] for r in results["rows"]],
        width,
        label="paper (CIFAR-10, VGG16)",
    )
    axis.bar_label(paper, fmt="%.1f", fontsize=6)
    axis.set_xticks(x, names)
    axis.set_ylabel("test accuracy (%)")
    axis.set_ylim(0, 118)
    axis.set_title(f"Table 1 in each protection mode ({results['dataset']}, {results['arch']})")
    axis.legend(loc="upper center", ncol=len(modes) + 1, fontsize=7)
    write_figure(figure, ctx.out / "table.png")
