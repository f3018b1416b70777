"""The privcam command: run, validate, keygen, characterize, info, webcam, make-shapes.

Heavy modules (torch, kornia, OpenCV) are imported by the commands that use them, so that
`privcam --help`, `privcam info` and `privcam validate` start at once.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
from importlib import metadata
from pathlib import Path
from types import FrameType

USER_ERROR_EXIT = 2


def main(argv: list[str] | None = None) -> int:
    global _INTERRUPTED
    parser = argparse.ArgumentParser(prog="privcam", description="privcam: a simulated privacy-preserving camera")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in [("run", "run a YAML run file"), ("validate", "check a run file without running it")]:
        command = commands.add_parser(name, help=help_text)
        command.add_argument("config", help="a run file, or the name of a shipped one (privcam info lists them)")
        command.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE")
    keygen = commands.add_parser("keygen", help="write a new key file (mode 0600)")
    keygen.add_argument("path", type=Path)
    keygen.add_argument("--force", action="store_true", help="replace an existing key file")
    characterize = commands.add_parser("characterize", help="EMVA 1288 characterisation of a sensor")
    characterize.add_argument(
        "--sensor", required=True, help="a sensor preset (privcam info lists them) or a sensor YAML file"
    )
    characterize.add_argument("--out", type=Path)
    info = commands.add_parser("info", help="versions, presets, architectures, tasks, data sources and augmentations")
    info.add_argument("--devices", action="store_true", help="also import torch and report its threads and CUDA")
    shapes = commands.add_parser("make-shapes", help="generate the multi-object segmentation dataset")
    shapes.add_argument("out", type=Path)
    shapes.add_argument("--train", type=int, default=2000)
    shapes.add_argument("--test", type=int, default=400)
    shapes.add_argument("--size", type=int, default=64)
    shapes.add_argument("--seed", type=int, default=0)
    webcam = commands.add_parser("webcam", help="live demo: scene, protected frame, reveal and keyed prediction")
    webcam.add_argument("--config", default="webcam", help="a run file, or the name of a shipped one (default webcam)")
    webcam.add_argument("--source", help="camera index (0), video file, or synthetic")
    webcam.add_argument("--headless", action="store_true", help="no window: record an MP4 and print fps")
    webcam.add_argument("--frames", type=int, help="stop after N frames")
    webcam.add_argument("--record", type=Path, help="also record the window to this MP4")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` and schedulers end a run as Ctrl-C does: cleanly
    if hasattr(signal, "SIGALRM"):
        signal.signal(signal.SIGALRM, _interrupt)  # an interruption deferred past an import
    try:
        return COMMANDS[args.command](args)
    except (Exception, KeyboardInterrupt) as err:
        # after SIGTERM, any error is the interruption (a library may have wrapped the KeyboardInterrupt)
        interrupted = _TERMINATED or isinstance(err, KeyboardInterrupt)
        if not (interrupted or isinstance(err, ValueError | OSError)):
            raise
        _INTERRUPTED = interrupted
        message = "interrupted" if interrupted else str(err)
        if not interrupted and isinstance(err, OSError) and err.strerror:  # a full disk, a read-only folder
            message = f"{err.strerror}: {err.filename}" if err.filename else err.strerror
        print(f"privcam {args.command}: error: {message}", file=sys.stderr)
        return USER_ERROR_EXIT


_TERMINATED = False  # set by SIGTERM
_INTERRUPTED = False  # set when main ends a command as interrupted (SIGTERM or Ctrl-C)


# A KeyboardInterrupt raised inside an import or a numba compilation can leave a half-built
# library behind (llvmlite freeing a module twice: SIGSEGV) or be lost altogether (runs that went on
# after SIGTERM landed in an import); there the interruption waits for them to finish.
_DEFER_RETRY_S = 0.05
_DEFERRING_PACKAGES = ("numba", "llvmlite")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (and its retries by SIGALRM): raise KeyboardInterrupt, as Ctrl-C does, unless the
    main thread is importing or compiling; then ask again in _DEFER_RETRY_S."""
    global _TERMINATED
    if signum != signal.SIGTERM and not _TERMINATED:
        return  # an alarm, but no interruption waiting
    _TERMINATED = True
    if hasattr(signal, "setitimer") and _importing_or_compiling(frame):
        signal.setitimer(signal.ITIMER_REAL, _DEFER_RETRY_S)
        return
    raise KeyboardInterrupt


def _importing_or_compiling(frame: FrameType | None) -> bool:
    """Whether the command that main runs is inside an import or numba (frames above main: not
    the command's own)."""
    while frame is not None and frame.f_code is not main.__code__:
        package = frame.f_globals.get("__name__", "").partition(".")[0]
        if frame.f_code.co_filename.startswith("<frozen importlib") or package in _DEFERRING_PACKAGES:
            return True
        frame = frame.f_back
    return False


def _run(args) -> int:
    from .config import load_run_config
    from .runner import run
    from .training import is_main_process

    config = load_run_config(args.config, args.overrides)
    metrics = run(config)
    if is_main_process():  # under torchrun, rank 0 speaks for the run
        print(json.dumps(_headline(metrics), indent=2))
        print(f"output in {config.output_dir}")
    return 0


def _validate(args) -> int:
    from .config import load_run_config
    from .validate import validate

    config = load_run_config(args.config, args.overrides)
    validate(config)
    print(f"{args.config}: valid ({config.task['name']} task, output {config.output_dir})")
    return 0


def _keygen(args) -> int:
    from ..privacy import Key

    if args.path.is_file() and not args.force:
        raise ValueError(f"{args.path} exists; use --force to replace it (the old key is then lost)")
    key = Key.generate()
    key.save(args.path, overwrite=args.force)
    print(f"wrote {args.path} (mode 0600), fingerprint {key.fingerprint}")
    return 0


def _characterize(args) -> int:
    from ..sensor.characterize import main as characterize_main

    return characterize_main(["--sensor", args.sensor, *(["--out", str(args.out)] if args.out else [])])


def _webcam(args) -> int:
    from .config import load_run_config
    from .runner import run

    overrides = [] if args.frames is None else [f"task.frames={args.frames}"]
    if args.source:
        overrides.append(f"task.source={json.dumps(args.source)}")  # quoted: a camera index stays text
    if args.headless:
        overrides.append("task.headless=true")
    if args.record:
        overrides.append(f"task.record={json.dumps(str(args.record))}")
    run(load_run_config(args.config, overrides))
    return 0


def _make_shapes(args) -> int:
    from .shapes import make_shapes_dataset

    if args.size < 16 or args.train < 1 or args.test < 1:
        raise ValueError("make-shapes needs --size >= 16 and at least one train and one test scene")
    make_shapes_dataset(args.out, args.train, args.test, args.size, args.seed)
    print(f"wrote {args.train} training and {args.test} test scenes with masks to {args.out}")
    return 0


def _info(args) -> int:
    from .. import __version__
    from ..augment.forms import KEYED_FORMS, POINTWISE_SAFE
    from ..nets.zoo import MODELS
    from ..sensor.config import PRESETS
    from .catalogue import TASKS
    from .config import DATA_SOURCES, RUN_FILES

    versions = ", ".join(f"{name} {_version(name)}" for name in ("torch", "torchvision", "kornia", "opencv-python"))
    lines = [
        f"privcam {__version__}",
        f"python {platform.python_version()}, {versions}",
        f"run files (privcam run NAME): {', '.join(RUN_FILES.names())}",
        f"  in {RUN_FILES.get(RUN_FILES.names()[0]).parent}",
        f"sensor presets: {', '.join(PRESETS.names())}",
        f"architectures: {', '.join(MODELS.names())}",
        f"tasks: {', '.join(f'{n} ({TASKS.get(n).summary})' for n in TASKS.names())}",
        f"data sources: {', '.join(DATA_SOURCES.names())}",
        f"keyed augmentations: {', '.join(KEYED_FORMS.names())}",
        f"pointwise augmentations (applied to protected frames as they are): {', '.join(sorted(POINTWISE_SAFE))}",
    ]
    if args.devices:
        import torch

        lines.append(f"torch threads {torch.get_num_threads()}, cuda available: {torch.cuda.is_available()}")
    print("\n".join(lines))
    return 0


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _headline(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not isinstance(v, list | dict)} or metrics


COMMANDS = {
    "run": _run,
    "validate": _validate,
    "keygen": _keygen,
    "characterize": _characterize,
    "info": _info,
    "webcam": _webcam,
    "make-shapes": _make_shapes,
}


def entry() -> None:
    """The `privcam` command (and `python -m privcam.pipelines.cli`): exits with main's status. An
    interrupted command has cleaned up as its exception unwound, and leaves without the
    interpreter's shutdown: under `python -m`, a KeyboardInterrupt that landed inside code run by
    exec() (as dataclasses and numba run theirs) makes CPython 3.11 end the process by SIGINT even
    once handled, and a native thread stopped mid-call can abort the shutdown (SIGABRT)."""
    code = main()
    if _INTERRUPTED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
