"""Run a validated run file: output folder, key, model, then the task from the task registry."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from ..augment import Readout, check_keyed
from ..augment.batches import BatchAugmentation, create_augmentation
from ..nets import KeyedModel, create_model, list_models, to_keyed
from ..nets.train import is_main_process
from ..privacy import Key
from ..privacy.atomic import atomic_write
from ..sensor import preset_names
from .config import ConfigError, RunConfig, SourceLines, build
from .data import DATA_SOURCES, make_sensor
from .registry import Registry

WEIGHTS_FORMAT = "privcam-weights/1"
log = logging.getLogger("privcam")


@dataclass(frozen=True)
class Task:
    params: type  # a dataclass of the task's own fields under `task:`
    run: Callable[[RunContext], dict]
    summary: str
    # Tasks that train take `augment:`; this says whether their training frames are protected.
    trains_protected: Callable[[RunConfig], bool] | None = None


@dataclass
class RunContext:
    config: RunConfig
    params: Any
    out: Path
    key: Key | None


TASKS: Registry[Task] = Registry("task")


def validate(config: RunConfig) -> Any:
    """Check every name against its registry; returns the task's validated parameters."""
    from . import tasks  # noqa: F401  (tasks register themselves; they import this module)

    checks = [
        (("data", "source"), config.data.source, DATA_SOURCES.names()),
        (("model", "arch"), config.model.arch, list_models()),
        (("sensor", "preset"), config.sensor.preset, [*preset_names(), "none"]),
    ]
    for path, value, allowed in checks:
        if value not in allowed:
            raise ConfigError(f"{config.where(*path)}: {'.'.join(path)} is {value!r}; allowed: {', '.join(allowed)}")
    task_fields = dict(config.task)
    name = task_fields.pop("name", None)
    if name is None:
        raise ConfigError(f"{config.where('task')}: task needs a 'name'; allowed: {', '.join(TASKS.names())}")
    try:
        task = TASKS.get(name)
    except ValueError as err:
        raise ConfigError(f"{config.where('task', 'name')}: {err}") from None
    params = build(task.params, task_fields, config.lines or SourceLines(config.origin), ("task",))
    if config.protected:
        make_sensor(config)  # sensor overrides are validated here, before any work
    if config.augment:
        if task.trains_protected is None:
            raise ConfigError(f"{config.where('augment')}: task {name!r} does not train; augment applies to training")
        build_augmentation(config, protected=task.trains_protected(config))
    return params


def build_augmentation(config: RunConfig, protected: bool, key: Key | None = None) -> BatchAugmentation | None:
    """The `augment:` list for training batches; keyed forms when the frames are `protected` (a `key`
    is needed to apply them, not to validate them)."""
    if not config.augment:
        return None
    augmentations = []
    for i, entry in enumerate(config.augment):
        options = {"name": entry} if isinstance(entry, str) else entry
        if not isinstance(options, dict) or not isinstance(options.get("name"), str):
            raise ConfigError(
                f"{config.where('augment', i)}: an augment entry is a kornia class name or a mapping with 'name' "
                f"and its parameters, e.g. {{name: RandomCrop, size: [28, 28], padding: 2}}; got {entry!r}"
            )
        options = dict(options)
        try:
            aug = create_augmentation(options.pop("name"), **options)
            if protected:
                check_keyed(aug)
        except ValueError as err:
            raise ConfigError(f"{config.where('augment', i)}: {err}") from None
        augmentations.append(aug)
    readout = Readout(key, **keyed_input_settings(config)) if protected and key is not None else None
    if protected and readout is None:
        return None
    return BatchAugmentation(augmentations, readout)


def run(config: RunConfig) -> dict:
    """Validate, then run the task; under torchrun only rank 0 writes the run's files."""
    params = validate(config)
    out = config.output_dir
    out.mkdir(parents=True, exist_ok=True)
    main_process = is_main_process()
    if main_process:
        _log_to(out / "run.log")
        with atomic_write(out / "config.yaml", "w") as f:
            yaml.safe_dump(config.to_dict(), f, sort_keys=False)
    key = load_or_create_key(config)
    torch.manual_seed(config.seed)  # dropout and initialisation: a rerun gives the same numbers
    fingerprint = key.fingerprint if key else "none"
    log.info("run %s: task %s, key %s, output %s", config.name, config.task["name"], fingerprint, out)
    metrics = TASKS.get(config.task["name"]).run(RunContext(config, params, out, key))
    if main_process:
        with atomic_write(out / "metrics.json", "w") as f:
            json.dump(metrics, f, indent=2)
    return metrics


def write_results(out: Path, markdown_name: str, lines: list[str], results: dict) -> None:
    """A task's Markdown summary and its full results as JSON, both written atomically."""
    with atomic_write(out / markdown_name, "w") as f:
        f.write("\n".join(lines) + "\n")
    with atomic_write(out / "results.json", "w") as f:
        json.dump(results, f, indent=2)


def load_or_create_key(config: RunConfig) -> Key | None:
    path = Path(config.key.path)
    if not path.exists():
        if not is_main_process() or int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ConfigError(f"{config.where('key', 'path')}: create the key before torchrun: privcam keygen {path}")
        if not config.key.create:
            raise ConfigError(f"{config.where('key', 'path')}: key file {path} does not exist (privcam keygen {path})")
        path.parent.mkdir(parents=True, exist_ok=True)
        Key.generate().save(path)
        log.info("created a new key at %s (mode 0600)", path)
    return Key.load(path)


def config_digest(config: RunConfig, *sections: str) -> str:
    data = config.to_dict()
    chosen = {s: data[s] for s in sections} if sections else data
    return hashlib.blake2b(json.dumps(chosen, sort_keys=True, default=str).encode(), digest_size=8).hexdigest()


def build_plain_model(config: RunConfig, input_size: tuple[int, int, int]) -> torch.nn.Module:
    """The architecture of `model:` for frames of `input_size`, with `model.weights` loaded when given."""
    model = create_model(config.model.arch, num_classes=config.model.num_classes, in_channels=config.model.in_channels)
    if config.model.weights:
        load_weights(model, Path(config.model.weights))
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_size))
    except RuntimeError as err:
        raise ConfigError(
            f"{config.where('model', 'arch')}: {config.model.arch} does not take frames of size {input_size} "
            f"(set data.size or model.in_channels): {str(err).splitlines()[0]}"
        ) from None
    return model.train(was_training)


def keyed_input_settings(config: RunConfig) -> dict[str, Any]:
    """The readout that protected frames of this run use, as to_keyed arguments."""
    if not config.protected:
        return {"unit": "pixel", "block": 8}
    readout = make_sensor(config).config.readout
    if readout.nonce != "fixed":
        raise ConfigError(f"{config.where('sensor')}: keyed networks on per-frame nonces come with the privacy issue")
    return {"unit": readout.unit, "block": readout.block}


def make_keyed(model: torch.nn.Module, config: RunConfig, key: Key, input_size: tuple[int, int, int]) -> KeyedModel:
    return to_keyed(model, key, input_size, backend=config.model.backend, **keyed_input_settings(config))


def save_weights(model: torch.nn.Module, path: Path, config: RunConfig, extra: dict) -> None:
    """Plain weights, stored as float16 to keep shipped files small; meta says how they were made."""
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    payload = {
        "format": WEIGHTS_FORMAT,
        "arch": config.model.arch,
        "num_classes": config.model.num_classes,
        "in_channels": config.model.in_channels,
        "state_dict": state,
        "meta": extra,
    }
    with atomic_write(path) as f:
        torch.save(payload, f)


def load_weights(model: torch.nn.Module, path: Path) -> dict:
    if not path.exists():
        raise ConfigError(f"weights file {path} does not exist")
    try:
        payload = torch.load(path, weights_only=True)
    except Exception as err:
        raise ConfigError(f"{path} is not a readable weights file: {err}") from None
    if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT:
        raise ConfigError(f"{path} is not a privcam weights file ({WEIGHTS_FORMAT})")
    reference = model.state_dict()
    state = {k: v.to(reference[k].dtype) if k in reference else v for k, v in payload["state_dict"].items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ConfigError(f"{path} does not fit the model ({payload['arch']} weights): {err}") from None
    return payload["meta"]


def _log_to(path: Path) -> None:
    for handler in list(log.handlers):
        if isinstance(handler, logging.FileHandler):
            log.removeHandler(handler)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
