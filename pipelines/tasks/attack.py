"""task: attack. What each protection mode is worth: every attack, in every mode, with chance beside it."""

from __future__ import annotations

import textwrap
from dataclasses import asdict

import numpy as np

from ...base.images import subplots, write_figure
from ..attacks.drivers import ciphertext_only, jigsaw, key_extraction, known_plaintext, visual_privacy
from ..attacks.learned import histogram_accuracy, measure_table_rows, mlp_accuracy
from ..capture import capture_tensors
from ..catalogue import RunContext


def run(ctx: RunContext) -> dict:
    config, params = ctx.config, ctx.params
    units = params.units or [None]
    runs = {}
    for unit in units:
        for mode in params.modes:
            label = mode if unit is None else f"{mode}, {unit}"
            runs[label] = _attacks(ctx.in_mode(mode, unit))
    results = {
        "dataset": config.data.source,
        "runs": runs,
        "key_fingerprint": ctx.key.fingerprint,
        "params": asdict(params),
    }
    if "learned" in params.attacks:
        test = capture_tensors(config, "test", None)
        train = capture_tensors(config, "train", None, limit=params.train_limit)
        results["mlp_on_plain_frames"] = mlp_accuracy(
            ctx, train, test, params.mlp_epochs, params.batch_size, "mlp_plain"
        )
    _write_report(ctx, results)
    return results


def _attacks(ctx: RunContext) -> dict:
    """Every chosen attack on the frames of one protection mode."""
    config, params, key = ctx.config, ctx.params, ctx.key
    ctx.out.mkdir(parents=True, exist_ok=True)
    chosen = set(params.attacks)
    protected = capture_tensors(config, "test", key)
    plain = capture_tensors(config, "test", None)
    result: dict = {"readout": str(protected.readout), "classes": config.model.num_classes}
    if "learned" in chosen:
        table = measure_table_rows(
            ctx, params.finetune_epochs, params.finetune_lr, params.finetune_limit, params.batch_size
        )
        train = capture_tensors(config, "train", key, limit=params.train_limit)
        result["accuracy"] = {
            "plain model on plain frames (reference)": table.accuracy["non-privacy"],
            "keyed model on protected frames": table.accuracy["ours with key"],
            "wrong key: model keyed with another key": table.accuracy["ours without key"],
            "plain pretrained model on protected frames": table.accuracy["pretrained"],
            "plain CNN fine-tuned on protected frames": table.accuracy["fine-tuning"],
            "MLP trained on protected frames": mlp_accuracy(
                ctx, train, protected, params.mlp_epochs, params.batch_size, "mlp_protected"
            ),
            "histogram classifier on protected frames": histogram_accuracy(
                ctx, train, protected, params.histogram_bins, params.histogram_epochs, params.batch_size
            ),
        }
        result["keyed_vs_plain_agreement"] = table.agreement
        result["budgets"] = {
            "fine_tuning": f"{params.finetune_epochs} epochs, lr {params.finetune_lr}, {table.finetune_frames} frames",
            "mlp": f"{params.mlp_epochs} epochs, {len(train.frames)} frames, MLP pixels-256-classes",
            "histogram": f"{params.histogram_epochs} epochs, {params.histogram_bins} bins, MLP bins-64-classes",
        }
    if "ciphertext_only" in chosen:
        reference = None
        if protected.readout.unit == "pixel":
            reference = capture_tensors(config, "train", None, limit=params.train_limit)
        result["ciphertext_only"] = ciphertext_only(ctx, protected, plain, reference)
    if "jigsaw" in chosen:
        result["jigsaw"] = jigsaw(ctx, protected)
    if "known_plaintext" in chosen:
        result["known_plaintext"] = known_plaintext(ctx, protected)
    if "key_extraction" in chosen:
        result["key_extraction"] = key_extraction(ctx, protected)
    if "visual" in chosen:
        result["visual"] = visual_privacy(ctx, protected, plain)
    return result


def summary_rows(results: dict) -> list[tuple[str, dict[str, tuple[float, float] | None]]]:
    """(attack, {run: (value, chance) or None}) for every attack in the report, in report order."""
    runs = results["runs"]
    rows: list[tuple[str, dict]] = []

    def add(name: str, pick) -> None:
        cells = {label: pick(run) for label, run in runs.items()}
        if any(cell is not None for cell in cells.values()):
            rows.append((name, cells))

    def accuracy(name: str):
        return lambda run: (run["accuracy"][name], 1 / run["classes"]) if "accuracy" in run else None

    for name in (
        "keyed model on protected frames",
        "wrong key: model keyed with another key",
        "plain pretrained model on protected frames",
        "plain CNN fine-tuned on protected frames",
        "MLP trained on protected frames",
        "histogram classifier on protected frames",
    ):
        add(f"{name} (accuracy)", accuracy(name))

    def field(section: str, key: str, chance_key: str = "chance"):
        def pick(run):
            part = run.get(section, {})
            return (part[key], part[chance_key]) if key in part else None

        return pick

    add("ciphertext-only layout recovery (positions)", field("ciphertext_only", "positions"))
    add("ciphertext-only: SSIM of the unscrambled frames", field("ciphertext_only", "ssim", "ssim_chance"))
    add(
        "ciphertext-only: plain CNN on the unscrambled frames (accuracy)",
        lambda run: (
            (run["ciphertext_only"]["cnn_accuracy"], 1 / run["classes"])
            if "cnn_accuracy" in run.get("ciphertext_only", {})
            else None
        ),
    )
    add("single-frame jigsaw (positions)", field("jigsaw", "positions"))
    add(
        "known plaintext, next frame (positions)",
        lambda run: (
            (run["known_plaintext"]["recovered_fraction"]["sensor noise"][-1], run["known_plaintext"]["chance"])
            if "known_plaintext" in run
            else None
        ),
    )
    add(
        "key extraction: the keyed network's table vs the other frames' orders (positions)",
        lambda run: (
            (run["key_extraction"]["recovered_fraction"], run["key_extraction"]["chance"])
            if run.get("key_extraction", {}).get("recovered_fraction") is not None
            else None
        ),
    )
    add(
        "visual: SSIM of the protected frame",
        lambda run: (run["visual"]["protected_ssim"], 0.0) if "visual" in run else None,
    )
    return rows


def _write_report(ctx: RunContext, results: dict) -> None:
    runs, rows = results["runs"], summary_rows(results)
    labels = list(runs)
    lines = [
        f"# Privacy evaluation: {results['dataset']}, every attack in every protection mode",
        "",
        "Each cell: the attack's result, and in brackets what chance gives (for accuracy: 1 / classes; for "
        "positions: 1 / positions, or 1 / tiles where the attack places quad or block tiles; for SSIM: the "
        "protected frame itself).",
        "",
        "| attack | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for name, cells in rows:
        values = [
            "n/a" if cells[label] is None else f"{_format(cells[label][0], name)} ({_format(cells[label][1], name)})"
            for label in labels
        ]
        lines.append(f"| {name} | " + " | ".join(values) + " |")
    lines.append("")
    if "mlp_on_plain_frames" in results:
        lines.append(f"The same MLP trained on plain frames: {100 * results['mlp_on_plain_frames']:.2f}%.")
    for label, run in runs.items():
        lines += ["", f"## {label}: {run['readout']}"]
        if "budgets" in run:
            lines.append("Budgets: " + "; ".join(f"{k}: {v}" for k, v in run["budgets"].items()) + ".")
        for section in ("ciphertext_only", "jigsaw", "known_plaintext", "key_extraction", "visual"):
            if section in run:
                lines.append(f"- {section}: {run[section]}")
    ctx.write_results("report.md", lines, results)
    _plot(ctx, rows, labels)


def _format(value: float, name: str) -> str:
    return f"{100 * value:.2f}%" if "accuracy" in name else f"{value:.4f}"


def _plot(ctx: RunContext, rows: list, labels: list[str]) -> None:
    """Each attack's result per mode over its chance level: 1 means no better than chance. Rows
    without a chance level (the protected frame's own SSIM) are left to the table."""
    rows = [(name, cells) for name, cells in rows if any(c is not None and c[1] > 0 for c in cells.values())]
    figure, axis = subplots(figsize=(11, 0.5 * len(rows) + 1.8))
    height = 0.8 / max(len(labels), 1)
    for i, label in enumerate(labels):
        ratios = []
        for _, cells in rows:
            cell = cells[label]
            ratios.append(np.nan if cell is None or cell[1] <= 0 else cell[0] / cell[1])
        axis.barh(np.arange(len(rows)) + i * height, ratios, height, label=label)
    names = [textwrap.fill(name, 42) for name, _ in rows]
    axis.set_yticks(np.arange(len(rows)) + 0.4 - height / 2, names, fontsize=7)
    axis.invert_yaxis()
    axis.set_xscale("log")
    axis.axvline(1, color="gray", linestyle=":", label="chance")
    axis.set_xlabel("result / chance (log scale)")
    axis.set_title("attacks in each protection mode")
    axis.legend(fontsize=7)
    write_figure(figure, ctx.out / "report.png")
