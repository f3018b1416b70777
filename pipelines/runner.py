"""Run a validated run file: its output folder, log and key, then the task."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import torch
import yaml

from ..base.atomic import atomic_write, remove_temporaries
from ..base.schema import ConfigError
from .catalogue import RunContext
from .config import RunConfig
from .keys import load_or_create_key
from .training import is_main_process
from .validate import task_of, validate

log = logging.getLogger("privcam")
LOCK_FILE = ".privcam.lock"


def run(config: RunConfig) -> dict:
    """Validate, then run the task; under torchrun only rank 0 writes the run's files.

    The output folder is locked for the run: a second privcam run on it is refused at once.
    config.yaml (the resolved run file) and metrics.json are written together when the task has
    finished, so a run that fails leaves a finished run's pair as it was; run.log is appended to.
    Returns the task's metrics.
    """
    params = validate(config)
    key = load_or_create_key(config)
    out = config.output_dir
    out.mkdir(parents=True, exist_ok=True)
    main_process = is_main_process()
    with _lock(out) if main_process else contextlib.nullcontext():
        if main_process:
            _log_to(out / "run.log")
            for path in remove_temporaries(out, LOCK_FILE):
                log.info("removed %s, left by a run that was killed", path)
        torch.manual_seed(config.seed)  # dropout and initialisation: a rerun gives the same numbers
        log.info("run %s: task %s, key %s, output %s", config.name, config.task["name"], key.fingerprint, out)
        metrics = task_of(config).run(RunContext(config, params, out, key))
        if main_process:
            with atomic_write(out / "config.yaml", "w") as f:
                yaml.safe_dump(config.to_dict(), f, sort_keys=False)
            with atomic_write(out / "metrics.json", "w") as f:
                json.dump(metrics, f, indent=2)
    return metrics


@contextlib.contextmanager
def _lock(out: Path) -> Iterator[None]:
    """Hold out/.privcam.lock (an OS lock, released if the process dies) for the run."""
    from filelock import FileLock, Timeout

    lock = FileLock(out / LOCK_FILE, mode=0o600)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ConfigError(
            f"output folder {out} is in use by another privcam run; wait for it to end or set output.dir"
        ) from None
    try:
        yield
    finally:
        lock.release()


def _log_to(path: Path) -> None:
    for handler in list(log.handlers):
        if isinstance(handler, logging.FileHandler):
            log.removeHandler(handler)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
