"""task: train. A plain model on plain frames, or a keyed model directly on protected frames."""

from __future__ import annotations

import json
from dataclasses import asdict

from ... import __version__
from ...base.atomic import atomic_write
from ..augmentation import build_augmentation
from ..capture import capture_tensors
from ..catalogue import RunContext
from ..models import build_plain_model, check_labels, make_keyed, save_weights
from ..training import evaluate, fit, is_main_process


def run(ctx: RunContext) -> dict:
    config, settings = ctx.config, ctx.params
    keyed = config.model.keyed
    key = ctx.key if keyed else None
    train = capture_tensors(config, "train", key)
    test = capture_tensors(config, "test", key)
    if train.labels is None:
        raise ValueError(f"data source {config.data.source!r} has no labels to train on")
    check_labels(config, train.labels)
    check_labels(config, test.labels)
    model = build_plain_model(config, train.input_size)
    if keyed:
        model = make_keyed(model, config, key, train)
    meta = {
        "run": config.digest("data", "sensor", "model", "seed"),
        "train_frames": train.digest,
        "test_frames": test.digest,
        "key_fingerprint": None if key is None else key.fingerprint,
        "keyed_frames": keyed,
        "privcam": __version__,
    }
    augment = build_augmentation(config, protected=keyed, key=key)
    test_set = (test.keyed if keyed else test.frames, test.labels)
    train_set = (train.keyed if keyed else train.frames, train.labels)
    history = fit(
        model,
        train_set,
        test_set,
        settings,
        ctx.out,
        meta,
        record=config.to_dict(),
        augment=augment,
        refuse_other_runs=True,
    )
    accuracy, loss, _ = evaluate(model, *test_set)
    if is_main_process():
        if keyed:
            model.save(ctx.out / "weights.keyed.pt")
        else:
            save_weights(model, ctx.out / "weights.pt", config, {**meta, "test_accuracy": accuracy})
        with atomic_write(ctx.out / "history.json", "w") as f:
            f.write(json.dumps([asdict(h) for h in history], indent=2))
    return {"test_accuracy": accuracy, "test_loss": loss, "epochs": len(history), "keyed": keyed, **meta}
