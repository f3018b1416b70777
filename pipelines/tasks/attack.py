"""task: attack. What the protection is worth: eight attacks and the per-frame nonce mitigation."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import skimage.data
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch import nn

from ...nets.ops.conv import KeyedConv2d
from ...nets.train import TrainSettings, evaluate, fit
from ...privacy import readout_permutation
from ...privacy.atomic import write_figure
from ...privacy.attacks import (
    extract_input_permutation,
    histogram_features,
    known_plaintext_recovery,
    recovered_fraction,
)
from ...sensor import srgb_to_linear
from ..data import capture_tensors, load_dataset, make_sensor
from ..runner import TASKS, RunContext, Task, build_plain_model, make_keyed, write_results
from .reproduce import measure_table_rows

# Textured natural pictures: known plaintexts an attacker able to choose them would pick. Flat ones
# (a clear sky, a garment's black background) leave positions that no number of frames tells apart.
KPA_PICTURES = ("brick", "grass", "gravel", "astronaut", "coffee", "chelsea", "rocket", "cat")


@dataclass
class AttackParams:
    finetune_epochs: int = 2
    finetune_lr: float = 0.01
    finetune_limit: int | None = 20000
    mlp_epochs: int = 5
    train_limit: int | None = 20000  # training frames of the MLP and histogram attacks
    histogram_bins: int = 32
    histogram_epochs: int = 20
    kpa_max_frames: int = 8
    kpa_trials: int = 5
    visual_frames: int = 500
    batch_size: int = 128


def run_attack(ctx: RunContext) -> dict:
    config, params, key = ctx.config, ctx.params, ctx.key
    table = measure_table_rows(
        ctx, params.finetune_epochs, params.finetune_lr, params.finetune_limit, params.batch_size
    )
    train_protected, train_labels = capture_tensors(config, "train", key, limit=params.train_limit)
    train_plain, _ = capture_tensors(config, "train", None, limit=params.train_limit)
    test_protected, test_labels = capture_tensors(config, "test", key)
    test_plain, _ = capture_tensors(config, "test", None)
    classes = config.model.num_classes

    mlp_settings = TrainSettings(epochs=params.mlp_epochs, batch_size=params.batch_size, lr=0.05, schedule="onecycle")
    mlp_protected = _mlp(test_protected[0].numel(), classes)
    fit(
        mlp_protected,
        (train_protected, train_labels),
        (test_protected, test_labels),
        mlp_settings,
        ctx.out / "mlp_protected",
        {"frames": "protected"},
    )
    mlp_plain = _mlp(test_plain[0].numel(), classes)
    fit(
        mlp_plain,
        (train_plain, train_labels),
        (test_plain, test_labels),
        mlp_settings,
        ctx.out / "mlp_plain",
        {"frames": "plain"},
    )

    bins = params.histogram_bins
    hist_train = torch.from_numpy(histogram_features(train_protected.numpy(), bins)).float()
    hist_test = torch.from_numpy(histogram_features(test_protected.numpy(), bins)).float()
    histogram_model = nn.Sequential(nn.Linear(bins, 64), nn.ReLU(), nn.Linear(64, classes))
    hist_settings = TrainSettings(
        epochs=params.histogram_epochs, batch_size=params.batch_size, lr=0.05, schedule="onecycle"
    )
    fit(
        histogram_model,
        (hist_train, train_labels),
        (hist_test, test_labels),
        hist_settings,
        ctx.out / "histogram",
        {"bins": bins},
    )

    accuracy = {
        "plain model on plain frames (reference)": table.accuracy["non-privacy"],
        "1. wrong key: model keyed with another key": table.accuracy["ours without key"],
        "2. plain pretrained model on protected frames": table.accuracy["pretrained"],
        "3. plain CNN fine-tuned on protected frames": table.accuracy["fine-tuning"],
        "4. MLP trained on protected frames": evaluate(mlp_protected, test_protected, test_labels)[0],
        "4. same MLP trained on plain frames": evaluate(mlp_plain, test_plain, test_labels)[0],
        "5. histogram classifier on protected frames": evaluate(histogram_model, hist_test, test_labels)[0],
    }
    results = {
        "dataset": config.data.source,
        "test_images": table.test_images,
        "accuracy": accuracy,
        "budgets": {
            "fine_tuning": f"{params.finetune_epochs} epochs, lr {params.finetune_lr}, {table.finetune_frames} frames",
            "mlp": f"{params.mlp_epochs} epochs, {len(train_labels)} frames, MLP {test_plain[0].numel()}-256-{classes}",
            "histogram": f"{params.histogram_epochs} epochs, {bins} bins, MLP {bins}-64-{classes}",
        },
        "known_plaintext": _known_plaintext(ctx),
        "key_extraction": _key_extraction(ctx, tuple(test_protected.shape[1:])),
        "visual": _visual(ctx, test_protected, test_plain),
        "key_fingerprint": key.fingerprint,
        "params": asdict(params),
    }
    _write_report(ctx, results)
    return results


def _mlp(inputs: int, classes: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(inputs, 256), nn.ReLU(), nn.Linear(256, classes))


def _known_plaintext(ctx: RunContext) -> dict:
    """Recovered fraction of positions from k known (scene, frame) pairs: fixed key without and with
    sensor noise, and per-frame nonces (recovery judged on the next, unknown frame)."""
    config, params, key = ctx.config, ctx.params, ctx.key
    sensor = make_sensor(config)
    height, width = capture_tensors(config, "test", None)[0].shape[-2:]
    n, frames_needed = height * width, params.kpa_max_frames + 1
    pictures = [getattr(skimage.data, name)() for name in KPA_PICTURES]
    pictures = [cv2.cvtColor(p, cv2.COLOR_RGB2GRAY) if p.ndim == 3 else p for p in pictures]
    curves = {"fixed key, noise-free": [], "fixed key, sensor noise": [], "per-frame nonces, sensor noise": []}
    fixed = readout_permutation(key, height, width)
    for trial in range(params.kpa_trials):
        rng = np.random.default_rng([config.seed, trial])
        scenes = []
        for _ in range(frames_needed):
            picture = cv2.resize(
                pictures[rng.integers(len(pictures))], (4 * width, 4 * height), interpolation=cv2.INTER_AREA
            )
            top, left = rng.integers(0, 3 * height), rng.integers(0, 3 * width)
            scenes.append(picture[top : top + height, left : left + width])
        linear = np.stack([srgb_to_linear(s).ravel() for s in scenes])
        noisy = np.stack(
            [
                sensor.capture_image(s, key=key, frame_index=10**8 + trial * 100 + i).to_tensor().numpy().ravel()
                for i, s in enumerate(scenes)
            ]
        )
        nonced = np.stack(
            [
                sensor.capture_image(s, key=key, nonce=trial * 100 + i, frame_index=10**8 + trial * 100 + i)
                .to_tensor()
                .numpy()
                .ravel()
                for i, s in enumerate(scenes)
            ]
        )
        for label, frames in (("fixed key, noise-free", linear[:, fixed]), ("fixed key, sensor noise", noisy)):
            curves[label].append(
                [
                    recovered_fraction(known_plaintext_recovery(linear[:k], frames[:k]), fixed)
                    for k in range(1, frames_needed)
                ]
            )
        nonce_curve = []
        for k in range(1, frames_needed):
            guess = known_plaintext_recovery(linear[:k], nonced[:k])
            nonce_curve.append(
                recovered_fraction(guess, readout_permutation(key, height, width, nonce=trial * 100 + k))
            )
        curves["per-frame nonces, sensor noise"].append(nonce_curve)
    return {
        "frames": list(range(1, frames_needed)),
        "recovered_fraction": {label: np.mean(values, axis=0).round(4).tolist() for label, values in curves.items()},
        "chance": round(1 / n, 5),
        "scenes": f"{params.kpa_trials} trials of random {height}x{width} crops of textured scikit-image pictures",
    }


def _key_extraction(ctx: RunContext, input_size: tuple[int, int, int]) -> dict:
    """The keyed model is the key: its first layer's index table gives the readout order back."""
    model = build_plain_model(ctx.config, input_size).eval()
    keyed = make_keyed(model, ctx.config, ctx.key, input_size)
    first = next(m for m in keyed.modules() if isinstance(m, KeyedConv2d))
    if first.weight.shape[-2:] != (3, 3):
        return {"recovered_fraction": None, "note": "the first layer is not a 3x3 conv; extraction not attempted"}
    guess = extract_input_permutation(first.table.numpy(), input_size[1:])
    return {
        "recovered_fraction": recovered_fraction(guess, keyed.input_permutation),
        "from": "the first conv's index table",
    }


def _visual(ctx: RunContext, protected: torch.Tensor, plain: torch.Tensor) -> dict:
    """PSNR/SSIM of protected and revealed frames against the noise-free scene seen by the sensor."""
    config, count = ctx.config, ctx.params.visual_frames
    sensor_config = make_sensor(config).config
    scenes = load_dataset(config.data, "test").images[:count]
    scale = sensor_config.white_photons * max(sensor_config.qe) * sensor_config.system_gain_dn_per_e
    scale /= sensor_config.max_dn - sensor_config.black_level_dn
    perm = readout_permutation(ctx.key, *protected.shape[-2:])
    scores = {"protected": [], "revealed": []}
    exact = 0
    for i, scene in enumerate(scenes):
        reference = np.clip(srgb_to_linear(scene) * scale, 0, 1).astype(np.float64)
        reference = reference if reference.ndim == 2 else reference.mean(2)
        frame = protected[i].mean(0).numpy().astype(np.float64)
        revealed = np.empty_like(frame.ravel())
        revealed[perm] = frame.ravel()
        revealed = revealed.reshape(frame.shape)
        exact += int(np.array_equal(revealed, plain[i].mean(0).numpy().astype(np.float64)))
        for label, image in (("protected", frame), ("revealed", revealed)):
            clipped = np.clip(image, 0, 1)
            scores[label].append(
                (
                    peak_signal_noise_ratio(reference, clipped, data_range=1.0),
                    structural_similarity(reference, clipped, data_range=1.0),
                )
            )
    summary = {
        f"{label}_{metric}": float(np.mean([s[j] for s in values]))
        for label, values in scores.items()
        for j, metric in enumerate(("psnr_db", "ssim"))
    }
    summary["revealed_equals_plain_capture"] = exact / len(scenes)
    summary["frames"] = len(scenes)
    return summary


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
        f"Scenes: {kpa['scenes']}. With nonces, the permutation recovered from the known frames "
        "is scored on the next frame.",
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
    write_results(ctx.out, "report.md", lines, results)
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
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


TASKS.register("attack")(Task(AttackParams, run_attack, "privacy evaluation: attacks, metrics, nonce mitigation"))
