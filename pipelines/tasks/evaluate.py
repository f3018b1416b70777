"""task: evaluate. Accuracy of a trained model, plain on plain frames or keyed on protected frames."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ...nets.train import evaluate
from ..data import capture_tensors
from ..runner import TASKS, RunContext, Task, build_plain_model, make_keyed


@dataclass
class EvaluateParams:
    split: Literal["train", "test"] = "test"


def run_evaluate(ctx: RunContext) -> dict:
    config = ctx.config
    if not config.model.weights:
        raise ValueError(f"{config.where('model')}: evaluate needs model.weights")
    keyed = config.model.keyed
    frames, labels = capture_tensors(config, ctx.params.split, ctx.key if keyed else None)
    model = build_plain_model(config, tuple(frames.shape[1:]))
    if keyed:
        model = make_keyed(model, config, ctx.key, tuple(frames.shape[1:]))
    accuracy, loss, predicted = evaluate(model, frames, labels)
    per_class = [float((predicted[labels == c] == c).float().mean()) for c in range(config.model.num_classes)]
    confusion = torch.zeros(config.model.num_classes, config.model.num_classes, dtype=torch.int64)
    confusion.index_put_((labels, predicted), torch.ones_like(labels), accumulate=True)
    return {"accuracy": accuracy, "loss": loss, "per_class_accuracy": per_class, "confusion": confusion.tolist()}


TASKS.register("evaluate")(Task(EvaluateParams, run_evaluate, "measure a trained model's accuracy"))
