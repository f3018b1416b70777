"""Run a validated run file: its output folder, log and key, then the task."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
import yaml

from ..base.atomic import atomic_write
from .catalogue import RunContext
from .config import RunConfig
from .keys import load_or_create_key
from .training import is_main_process
from .validate import task_of, validate

log = logging.getLogger("privcam")


def run(config: RunConfig) -> dict:
    """Validate, then run the task; under torchrun only rank 0 writes the run's files.

    Writes config.yaml (the resolved run file), run.log and metrics.json in the output folder,
    besides what the task writes. Returns the task's metrics.
    """
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
    log.info("run %s: task %s, key %s, output %s", config.name, config.task["name"], key.fingerprint, out)
    metrics = task_of(config).run(RunContext(config, params, out, key))
    if main_process:
        with atomic_write(out / "metrics.json", "w") as f:
            json.dump(metrics, f, indent=2)
    return metrics


def _log_to(path: Path) -> None:
    for handler in list(log.handlers):
        if isinstance(handler, logging.FileHandler):
            log.removeHandler(handler)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
