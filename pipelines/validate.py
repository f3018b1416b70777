"""Check a loaded run file before any work: names against their registries, the task's own fields,
what the task needs, the sensor overrides and the augmentations.

Only the augmentation check imports kornia (and so torch); everything else is quick.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..base.schema import ConfigError, build
from ..nets.zoo import MODELS
from ..sensor.config import PRESETS, SensorConfig, load_preset
from .catalogue import TASKS, Task
from .config import DATA_SOURCES, RunConfig


def validate(config: RunConfig) -> Any:
    """Check everything that can be checked without data; returns the task's validated fields."""
    for path, value, registry in [
        (("data", "source"), config.data.source, DATA_SOURCES),
        (("model", "arch"), config.model.arch, MODELS),
    ]:
        _check_name(config, path, value, registry.names())
    if config.protected:
        _check_name(config, ("sensor", "preset"), config.sensor.preset, [*PRESETS.names(), "none"])
    task = task_of(config)
    task_fields = {k: v for k, v in config.task.items() if k != "name"}
    params = build(task.params, task_fields, config.lines, ("task",))
    _check_needs(config, task, params)
    if config.protected:
        sensor_config(config)
    if config.augment:
        if task.trains is None:
            raise ConfigError(
                f"{config.where('augment')}: task {config.task['name']!r} does not train; augment applies to training"
            )
        from .augmentation import build_augmentation

        build_augmentation(config, protected=task.trains(config))
    return params


def task_of(config: RunConfig) -> Task:
    name = config.task.get("name")
    if name is None:
        raise ConfigError(f"{config.where('task')}: task needs a 'name'; allowed: {', '.join(TASKS.names())}")
    try:
        return TASKS.get(name)
    except ValueError as err:
        raise ConfigError(f"{config.where('task', 'name')}: {err}") from None


def sensor_config(config: RunConfig) -> SensorConfig:
    """The run's sensor: its preset with `sensor.overrides` applied."""
    try:
        preset = load_preset(config.sensor.preset)
        return preset.replace(**config.sensor.overrides) if config.sensor.overrides else preset
    except ValueError as err:
        raise ConfigError(f"{config.where('sensor', 'overrides')}: {err}") from None


def _check_name(config: RunConfig, path: tuple[str, str], value: str, allowed: list[str]) -> None:
    if value not in allowed:
        raise ConfigError(f"{config.where(*path)}: {'.'.join(path)} is {value!r}; allowed: {', '.join(allowed)}")


def _check_needs(config: RunConfig, task: Task, params: Any) -> None:
    needs = task.needs(params)
    name = config.task["name"]
    if "weights" in needs:
        if not config.model.weights:
            raise ConfigError(f"{config.where('model')}: task {name!r} needs model.weights (a trained plain model)")
        if not Path(config.model.weights).is_file():
            raise ConfigError(f"{config.where('model', 'weights')}: weights file {config.model.weights} does not exist")
    if "sensor" in needs and not config.protected:
        raise ConfigError(f"{config.where('sensor', 'preset')}: task {name!r} needs a sensor preset, not 'none'")
