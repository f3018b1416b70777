"""The tasks a run file can name, in one Registry. Each task's module (privcam.pipelines.tasks.NAME)
is imported only when the task runs, so listing and validating tasks stays quick."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..base.atomic import atomic_write
from ..base.registry import Registry, import_target
from .config import (
    AttackParams,
    EvaluateParams,
    ReproduceParams,
    RunConfig,
    SegmentParams,
    SimulateParams,
    TrainParams,
    WebcamParams,
)

if TYPE_CHECKING:
    from ..privacy import Key

NEEDS = ("weights", "sensor")  # what a task may require of the run file


@dataclass(frozen=True)
class Task:
    """A task: its fields under `task:`, what it needs, and where its `run(ctx) -> metrics` lives.

    Args:
        params: the dataclass of the task's own fields.
        module: its module under privcam.pipelines.tasks, which defines run(ctx: RunContext) -> dict.
        summary: one line for `privcam info`.
        needs: params -> the subset of NEEDS it requires ("weights": model.weights, "sensor": a
            sensor preset), checked by `validate` before any work.
        trains: whether the task trains (so `augment:` applies), and on protected frames:
            config -> bool; None for tasks that do not train.
    """

    params: type
    module: str
    summary: str
    needs: Callable[[Any], set[str]] = lambda params: set()
    trains: Callable[[RunConfig], bool] | None = None

    def run(self, ctx: RunContext) -> dict:
        """Import the task's module and run it."""
        return import_target(f"privcam.pipelines.tasks.{self.module}:run")(ctx)


@dataclass
class RunContext:
    """What a task's run(ctx) gets: the run file, its validated task fields, the run folder and the key."""

    config: RunConfig
    params: Any
    out: Path
    key: Key | None

    def in_mode(self, mode: str, unit: str | None = None) -> RunContext:
        """This run with its sensor's readout in protection mode `mode` (and `unit`), writing
        under its own folder: tasks that compare modes run each through this."""
        overrides = dict(self.config.sensor.overrides)
        readout = {**overrides.get("readout", {}), "mode": mode} | ({} if unit is None else {"unit": unit})
        sensor = dataclasses.replace(self.config.sensor, overrides={**overrides, "readout": readout})
        name = mode if unit is None else f"{mode}-{unit}"
        return dataclasses.replace(self, config=dataclasses.replace(self.config, sensor=sensor), out=self.out / name)

    def write_results(self, markdown_name: str, lines: list[str], results: dict) -> None:
        """The task's Markdown summary and its full results as results.json, both written atomically."""
        with atomic_write(self.out / markdown_name, "w") as f:
            f.write("\n".join(lines) + "\n")
        with atomic_write(self.out / "results.json", "w") as f:
            json.dump(results, f, indent=2)


TASKS: Registry[Task] = Registry("task")
TASKS.register("train")(
    Task(
        TrainParams,
        "train",
        "train a model (plain, or keyed on protected frames)",
        trains=lambda config: config.model.keyed,
    )
)
TASKS.register("evaluate")(
    Task(EvaluateParams, "evaluate", "measure a trained model's accuracy", lambda p: {"weights"})
)
TASKS.register("reproduce")(Task(ReproduceParams, "reproduce", "the paper's Table 1: five rows", lambda p: {"weights"}))
TASKS.register("attack")(
    Task(
        AttackParams,
        "attack",
        "privacy evaluation: every attack in every protection mode",
        lambda p: {"sensor"} | ({"weights"} if {"learned", "key_extraction"} & set(p.attacks) else set()),
    )
)
TASKS.register("segment")(
    Task(
        SegmentParams,
        "segment",
        "train and evaluate keyed semantic segmentation",
        lambda p: set() if p.train else {"weights"},
        trains=lambda config: False,
    )
)
TASKS.register("simulate")(
    Task(SimulateParams, "simulate", "capture data through the sensor, keep protected frames", lambda p: {"sensor"})
)
TASKS.register("webcam")(
    Task(WebcamParams, "webcam", "live camera demo: scene, protected, revealed, prediction", lambda p: {"sensor"})
)
