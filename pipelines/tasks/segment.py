"""task: segment. Train a U-Net on plain frames, then measure it plain, keyed with the key, and keyed
with another key, on protected frames; the keyed output is a class-score map in keyed order that
only the key holder can place."""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ...base.images import write_png
from ...privacy import shuffle, unshuffle
from ..attacks.learned import wrong_key
from ..augmentation import build_augmentation
from ..capture import capture_tensors
from ..catalogue import RunContext
from ..models import build_plain_model, make_keyed, save_weights
from ..sources import load_dataset, load_masks
from ..training import evaluate, fit, is_main_process

PALETTE = np.array([[0, 0, 0], [230, 60, 60], [60, 200, 90], [70, 120, 240], [240, 200, 40]], np.uint8)


def segmentation_metrics(predicted: torch.Tensor, target: torch.Tensor, classes: int) -> dict[str, float]:
    """Mean IoU over the classes present in target or prediction, and pixel accuracy."""
    ious = []
    for c in range(classes):
        union = ((predicted == c) | (target == c)).sum()
        if union > 0:
            ious.append(float(((predicted == c) & (target == c)).sum()) / float(union))
    return {"miou": float(np.mean(ious)), "pixel_accuracy": float((predicted == target).float().mean())}


def run(ctx: RunContext) -> dict:
    config, params = ctx.config, ctx.params
    classes = config.model.num_classes
    test_plain = capture_tensors(config, "test", None).frames
    test_masks = load_masks(config, "test")
    model = build_plain_model(config, test_plain.shape[1:])
    if params.train:
        train = (
            capture_tensors(config, "train", None, limit=params.train_limit).frames,
            load_masks(config, "train", params.train_limit),
        )
        meta = {
            "run": config.digest("data", "sensor", "model", "seed"),
            "key_fingerprint": None,
            "keyed_frames": False,
        }
        augment = build_augmentation(config, protected=False)
        fit(model, train, (test_plain, test_masks), params, ctx.out, meta, record=config.to_dict(), augment=augment)
        if is_main_process():
            save_weights(model, ctx.out / "weights.pt", config, meta)
    model.eval()
    _, _, plain = evaluate(model, test_plain, test_masks)
    majority = int(torch.bincount(test_masks.flatten(), minlength=classes).argmax())
    # The best prediction that ignores the frame (a fixed map): each pixel's most frequent class.
    pixel_majority = F.one_hot(test_masks, classes).sum(0).argmax(-1)
    rows = {"plain model, plain frames": segmentation_metrics(plain, test_masks, classes)}
    agreement, views = {}, {}
    for mode in params.modes:
        revealed, stranger, protected = _keyed_maps(ctx.in_mode(mode), model, test_masks)
        # Chance level for the other key: its predictions scored against other scenes' masks. This keeps
        # the network's own spatial habits (e.g. background near borders) but no link to the scene.
        chance = torch.roll(stranger, 1, 0)
        rows[f"keyed model, {mode} frames, revealed with the key"] = segmentation_metrics(revealed, test_masks, classes)
        rows[f"model keyed with another key, same {mode} frames"] = segmentation_metrics(stranger, test_masks, classes)
        rows[f"chance ({mode}): the other key's predictions against other scenes"] = segmentation_metrics(
            chance, test_masks, classes
        )
        agreement[mode] = float((revealed == plain).float().mean())
        views[mode] = (protected, revealed, stranger)
    rows["constant prediction (majority class)"] = segmentation_metrics(
        torch.full_like(test_masks, majority), test_masks, classes
    )
    rows["constant map (each pixel's majority class)"] = segmentation_metrics(
        pixel_majority.expand_as(test_masks), test_masks, classes
    )
    results = {
        "dataset": config.data.source,
        "arch": config.model.arch,
        "test_scenes": len(test_masks),
        "rows": rows,
        "keyed_vs_plain_pixel_agreement": agreement,
        "key_fingerprint": ctx.key.fingerprint,
    }
    if is_main_process():
        shown = params.modes[-1]
        _write_outputs(ctx, results, test_plain, *views[shown], params.overlays, shown)
    return results


def _keyed_maps(ctx: RunContext, model: torch.nn.Module, masks: torch.Tensor) -> tuple:
    """The protected test frames of ctx's mode, the keyed model's maps revealed with the key, and
    another key's (placed with that key's own output order)."""
    config, key = ctx.config, ctx.key
    protected = capture_tensors(config, "test", key)
    keyed = make_keyed(model, config, key, protected)
    _, _, keyed_out = evaluate(keyed, protected.keyed, shuffle(masks, keyed.output_permutation))
    # Another key's holder reads the frames as they come, in his own network's order and mask.
    stranger = make_keyed(model, config, wrong_key(config.seed), protected)
    _, _, stranger_out = evaluate(stranger, protected.frames, shuffle(masks, stranger.output_permutation))
    revealed = unshuffle(keyed_out, keyed.output_permutation)
    return revealed, unshuffle(stranger_out, stranger.output_permutation), protected.frames


def _write_outputs(ctx: RunContext, results: dict, plain, protected, revealed, stranger, count: int, mode: str) -> None:
    lines = ["| setting | mIoU | pixel accuracy |", "|---|---|---|"]
    lines += [f"| {name} | {m['miou']:.4f} | {m['pixel_accuracy']:.4f} |" for name, m in results["rows"].items()]
    agreement = ", ".join(f"{100 * v:.3f}% ({m})" for m, v in results["keyed_vs_plain_pixel_agreement"].items())
    lines.append(f"\nKeyed and plain predictions agree on {agreement} of pixels. overlays.png shows the {mode} frames.")
    ctx.write_results("table.md", lines, results)
    dataset = load_dataset(ctx.config.data, "test")
    rows = []
    for i in range(min(count, len(dataset.images))):
        scene = dataset.images[i] if dataset.images[i].ndim == 3 else np.repeat(dataset.images[i][..., None], 3, axis=2)
        view = _to_uint8(protected[i])
        rows.append(np.hstack([scene, view, _overlay(scene, revealed[i]), _overlay(scene, stranger[i])]))
    picture = np.vstack(rows)
    scale = max(1, 256 // picture.shape[1] * 4)
    picture = cv2.resize(picture, (picture.shape[1] * scale, picture.shape[0] * scale), interpolation=cv2.INTER_NEAREST)
    header = np.full((22, picture.shape[1], 3), 255, np.uint8)
    tile = picture.shape[1] // 4
    for column, title in enumerate(["scene", "protected frame", "keyed output, key", "keyed output, wrong key"]):
        cv2.putText(header, title, (4 + column * tile, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    write_png(ctx.out / "overlays.png", np.vstack([header, picture]))


def _to_uint8(frame: torch.Tensor) -> np.ndarray:
    image = (frame.clamp(0, 1) * 255).byte().permute(1, 2, 0).numpy()
    return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image


def _overlay(scene: np.ndarray, mask: torch.Tensor) -> np.ndarray:
    colours = PALETTE[mask.numpy() % len(PALETTE)]
    blended = (0.45 * scene + 0.55 * colours).astype(np.uint8)
    return np.where(mask.numpy()[..., None] > 0, blended, (0.6 * scene).astype(np.uint8))
