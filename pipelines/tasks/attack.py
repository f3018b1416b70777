"""task: attack. What the protection is worth: eight attacks and the per-frame nonce mitigation."""

from __future__ import annotations

from dataclasses import asdict

from ...base.images import subplots, write_figure
from ..attacks.drivers import key_extraction, known_plaintext, visual_privacy
from ..attacks.learned import histogram_accuracy, measure_table_rows, mlp_accuracy
from ..capture import capture_tensors
from ..catalogue import RunContext


def run(ctx: RunContext) -> dict:
    config, params, key = ctx.config, ctx.params, ctx.key
    table = measure_table_rows(
        ctx, params.finetune_epochs, params.finetune_lr, params.finetune_limit, params.batch_size
    )
    train_protected = capture_tensors(config, "train", key, limit=params.train_limit)
    train_plain = capture_tensors(config, "train", None, limit=params.train_limit)
    test_protected = capture_tensors(config, "test", key)
    test_plain = capture_tensors(config, "test", None)
    classes = config.model.num_classes
    mlp = (params.mlp_epochs, params.batch_size)
    accuracy = {
        "plain model on plain frames (reference)": table.accuracy["non-privacy"],
        "1. wrong key: model keyed with another key": table.accuracy["ours without key"],
        "2. plain pretrained model on protected frames": table.accuracy["pretrained"],
        "3. plain CNN fine-tuned on protected frames": table.accuracy["fine-tuning"],
        "4. MLP trained on protected frames": mlp_accuracy(ctx, train_protected, test_protected, *mlp, "mlp_protected"),
        "4. same MLP trained on plain frames": mlp_accuracy(ctx, train_plain, test_plain, *mlp, "mlp_plain"),
        "5. histogram classifier on protected frames": histogram_accuracy(
            ctx, train_protected, test_protected, params.histogram_bins, params.histogram_epochs, params.batch_size
        ),
    }
    pixels = test_plain.frames[0].numel()
    bins = params.histogram_bins
    results = {
        "dataset": config.data.source,
        "test_images": table.test_images,
        "accuracy": accuracy,
        "budgets": {
            "fine_tuning": f"{params.finetune_epochs} epochs, lr {params.finetune_lr}, {table.finetune_frames} frames",
            "mlp": f"{params.mlp_epochs} epochs, {len(train_protected.labels)} frames, MLP {pixels}-256-{classes}",
            "histogram": f"{params.histogram_epochs} epochs, {bins} bins, MLP {bins}-64-{classes}",
        },
        "known_plaintext": known_plaintext(ctx, test_protected),
        "key_extraction": key_extraction(ctx, test_protected),
        "visual": visual_privacy(ctx, test_protected, test_plain),
        "key_fingerprint": key.fingerprint,
        "params": asdict(params),
    }
    _write_report(ctx, results)
    return results


def _write_report(ctx: RunContext, results: dict) -> None:
    kpa, visual, extraction = results["known_plaintext"], results["visual"], results["key_extraction"]
    lines = [
        f"# Privacy evaluation: {results['dataset']}, {results['test_images']} test images",
        "",
        "| attack | test accuracy |",
        "|---|---|",
        *[f"| {name} | {100 * value:.2f}% |" for name, value in results["accuracy"].items()],
        "",
        "Budgets: " + "; ".join(f"{k}: {v}" for k, v in results["budgets"].items()) + ".",
        "",
        f"## 6. Known plaintext (recovered fraction of positions; chance {kpa['chance']})",
        "",
        "| known frames | " + " | ".join(kpa["recovered_fraction"]) + " |",
        "|---|" + "---|" * len(kpa["recovered_fraction"]),
        *[
            f"| {k} | " + " | ".join(f"{values[i]:.4f}" for values in kpa["recovered_fraction"].values()) + " |"
            for i, k in enumerate(kpa["frames"])
        ],
        "",
        f"Readout: {kpa['readout']}. Scenes: {kpa['scenes']}. With nonces, the permutation recovered from the "
        "known frames is scored on the next frame.",
        "",
        f"## 7. Key extraction from the keyed model: {extraction['recovered_fraction']} of positions recovered "
        f"({extraction.get('from', extraction.get('note'))})",
        "",
        "## 8. Visual privacy (PSNR, SSIM against the noise-free scene)",
        "",
        "| frames | PSNR (dB) | SSIM |",
        "|---|---|---|",
        f"| protected (camera output) | {visual['protected_psnr_db']:.2f} | {visual['protected_ssim']:.4f} |",
        f"| revealed with the key | {visual['revealed_psnr_db']:.2f} | {visual['revealed_ssim']:.4f} |",
        "",
        f"The reveal equals the plain capture of the same seed bit for bit on "
        f"{100 * visual['revealed_equals_plain_capture']:.1f}% of {visual['frames']} frames.",
    ]
    ctx.write_results("report.md", lines, results)
    figure, (left, right) = subplots(1, 2, figsize=(12, 4))
    names = list(results["accuracy"])
    left.barh(range(len(names)), [100 * results["accuracy"][n] for n in names], color="tab:blue")
    left.set_yticks(range(len(names)), names, fontsize=8)
    left.invert_yaxis()
    left.set_xlabel("test accuracy (%)")
    left.set_title("attacks on protected frames")
    for label, values in kpa["recovered_fraction"].items():
        right.plot(kpa["frames"], values, "o-", label=label)
    right.axhline(kpa["chance"], color="gray", linestyle=":", label="chance")
    right.set(
        xlabel="known (scene, frame) pairs", ylabel="fraction of positions recovered", title="known-plaintext attack"
    )
    right.legend(fontsize=8)
    write_figure(figure, ctx.out / "report.png")
