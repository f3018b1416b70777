"""task: train. A plain model on plain frames, or a keyed model directly on protected frames."""

from __future__ import annotations

import json
from dataclasses import asdict

from ...nets.train import TrainSettings, evaluate, fit, is_main_process
from ...privacy.atomic import atomic_write
from ..data import capture_tensors
from ..runner import (
    TASKS,
    RunContext,
    Task,
    build_augmentation,
    build_plain_model,
    config_digest,
    make_keyed,
    save_weights,
)


def run_train(ctx: RunContext) -> dict:
    config, settings = ctx.config, ctx.params
    keyed = config.model.keyed
    key = ctx.key if keyed else None
    train = capture_tensors(config, "train", key)
    test = capture_tensors(config, "test", key)
    if train[1] is None:
        raise ValueError(f"data source {config.data.source!r} has no labels to train on")
    model = build_plain_model(config, tuple(train[0].shape[1:]))
    if keyed:
        model = make_keyed(model, config, key, tuple(train[0].shape[1:]))
    meta = {
        "run": config_digest(config, "data", "sensor", "model", "seed"),
        "key_fingerprint": None if key is None else key.fingerprint,
        "keyed_frames": keyed,
    }
    augment = build_augmentation(config, protected=keyed, key=key)
    history = fit(model, train, test, settings, ctx.out, meta, record=config.to_dict(), augment=augment)
    accuracy, loss, _ = evaluate(model, *test)
    if is_main_process():
        if keyed:
            model.save(ctx.out / "weights.keyed.pt")
        else:
            save_weights(model, ctx.out / "weights.pt", config, {**meta, "test_accuracy": accuracy})
        with atomic_write(ctx.out / "history.json", "w") as f:
            f.write(json.dumps([asdict(h) for h in history], indent=2))
    return {"test_accuracy": accuracy, "test_loss": loss, "epochs": len(history), "keyed": keyed, **meta}


TASKS.register("train")(
    Task(
        TrainSettings,
        run_train,
        "train a model (plain, or keyed on protected frames)",
        lambda config: config.model.keyed,
    )
)
