"""Attacks by networks: the plain model on protected frames, fine-tuning it on them, a model keyed
with another key (the rows of the paper's Table 1), an MLP and a histogram classifier trained on
protected frames."""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass

import torch
from torch import nn

from ...base.schema import ConfigError
from ...privacy import Key
from ..capture import Captured, capture_tensors
from ..catalogue import RunContext
from ..config import TrainParams
from ..models import build_plain_model, make_keyed
from ..training import evaluate, fit
from .recovery import histogram_features


def wrong_key(seed: int) -> Key:
    """Another key, fixed by the run seed so that results with it can be reproduced."""
    return Key(hashlib.blake2b(f"privcam-reproduce-wrong-key/{seed}".encode(), digest_size=32).digest())


@dataclass
class TableRows:
    """The five accuracies of the paper's Table 1, and how they were obtained."""

    accuracy: dict[str, float]
    agreement: float  # keyed vs plain predictions
    test_images: int
    finetune_frames: int


def measure_table_rows(
    ctx: RunContext, finetune_epochs: int, finetune_lr: float, finetune_limit: int | None, batch_size: int
) -> TableRows:
    """Plain, plain on protected, fine-tuned on protected, keyed, and keyed with another key."""
    config, key = ctx.config, ctx.key
    if not config.model.weights:
        raise ConfigError(f"{config.where('model')}: {config.task['name']} needs model.weights (a plain trained model)")
    plain = capture_tensors(config, "test", None)
    protected = capture_tensors(config, "test", key)
    labels = plain.labels
    model = build_plain_model(config, protected.input_size).eval()

    accuracy = {}
    accuracy["non-privacy"], _, plain_predictions = evaluate(model, plain.frames, labels)
    accuracy["pretrained"], _, _ = evaluate(model, protected.frames, labels)
    keyed = make_keyed(model, config, key, protected)
    accuracy["ours with key"], _, keyed_predictions = evaluate(keyed, protected.keyed, labels)
    # Another key's holder reads the frames as they come, in his own network's order and mask.
    stranger = make_keyed(model, config, wrong_key(config.seed), protected)
    accuracy["ours without key"], _, _ = evaluate(stranger, protected.frames, labels)

    train = capture_tensors(config, "train", key, limit=finetune_limit)
    finetuned = copy.deepcopy(model)
    settings = TrainParams(epochs=finetune_epochs, batch_size=batch_size, lr=finetune_lr, schedule="cosine")
    meta = {"finetune_on": "protected", "frames": len(train.frames), "key_fingerprint": key.fingerprint}
    fit(finetuned, (train.frames, train.labels), (protected.frames, labels), settings, ctx.out / "finetune", meta)
    accuracy["fine-tuning"], _, _ = evaluate(finetuned, protected.frames, labels)
    agreement = float((keyed_predictions == plain_predictions).float().mean())
    return TableRows(accuracy, agreement, len(labels), len(train.frames))


def mlp_accuracy(ctx: RunContext, train: Captured, test: Captured, epochs: int, batch_size: int, name: str) -> float:
    """Test accuracy of an MLP (pixels-256-classes) trained on `train`: a learner that ignores locality."""
    classes = ctx.config.model.num_classes
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(test.frames[0].numel(), 256), nn.ReLU(), nn.Linear(256, classes))
    settings = TrainParams(epochs=epochs, batch_size=batch_size, lr=0.05, schedule="onecycle")
    test_set = (test.frames, test.labels)
    fit(mlp, (train.frames, train.labels), test_set, settings, ctx.out / name, {"frames": name})
    return evaluate(mlp, *test_set)[0]


def histogram_accuracy(
    ctx: RunContext, train: Captured, test: Captured, bins: int, epochs: int, batch_size: int
) -> float:
    """Test accuracy of a classifier that sees only each frame's histogram, which no permutation hides."""
    classes = ctx.config.model.num_classes
    train_features = torch.from_numpy(histogram_features(train.frames.numpy(), bins)).float()
    test_features = torch.from_numpy(histogram_features(test.frames.numpy(), bins)).float()
    model = nn.Sequential(nn.Linear(bins, 64), nn.ReLU(), nn.Linear(64, classes))
    settings = TrainParams(epochs=epochs, batch_size=batch_size, lr=0.05, schedule="onecycle")
    test_set = (test_features, test.labels)
    fit(model, (train_features, train.labels), test_set, settings, ctx.out / "histogram", {"bins": bins})
    return evaluate(model, *test_set)[0]
