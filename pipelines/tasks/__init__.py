"""Tasks register themselves in privcam.pipelines.runner.TASKS when imported."""

from .. import webcam
from . import attack, evaluate, reproduce, segment, simulate, train

__all__ = ["attack", "evaluate", "reproduce", "segment", "simulate", "train", "webcam"]
