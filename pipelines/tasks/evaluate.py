"""task: evaluate. Accuracy of a trained model, plain on plain frames or keyed on protected frames."""

from __future__ import annotations

import torch

from ..capture import capture_tensors
from ..catalogue import RunContext
from ..models import check_labels, evaluation_model
from ..training import evaluate


def run(ctx: RunContext) -> dict:
    config = ctx.config
    keyed = config.model.keyed
    captured = capture_tensors(config, ctx.params.split, ctx.key if keyed else None)
    frames, labels = (captured.keyed if keyed else captured.frames), captured.labels
    check_labels(config, labels)
    model = evaluation_model(config, ctx.key if keyed else None, captured)
    accuracy, loss, predicted = evaluate(model, frames, labels)
    per_class = [float((predicted[labels == c] == c).float().mean()) for c in range(config.model.num_classes)]
    confusion = torch.zeros(config.model.num_classes, config.model.num_classes, dtype=torch.int64)
    confusion.index_put_((labels, predicted), torch.ones_like(labels), accumulate=True)
    return {"accuracy": accuracy, "loss": loss, "per_class_accuracy": per_class, "confusion": confusion.tolist()}
