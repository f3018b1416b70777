"""Tasks register themselves in privcam.pipelines.runner.TASKS when imported."""

from .. import webcam
from . import evaluate, reproduce, segment, simulate, train

__all__ = ["evaluate", "reproduce", "segment", "simulate", "train", "webcam"]
