"""The run file: one validated YAML document describes a whole run (key, data, sensor, model, task,
output). This module is its schema: every section, each task's own fields, and the data sources.

Validation happens before any work starts. Every error names the file, the line, the field and
what is allowed; `--set a.b=value` overrides any field.

Paths: what a run reads (data.root, data.path, model.weights, a webcam video) is relative to the
run file's folder; what it writes or keeps (output.dir, key.path, webcam snapshots and recordings)
is relative to the working folder. Shipped run files are named without folder or suffix.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..base.registry import Registry, did_you_mean, shipped_files
from ..base.schema import ConfigError, SourceLines, bounds, build, input_path, read_yaml
from ..base.store import FileFormat

# Data sources by name; each is a function (section, split) -> Dataset in sources.py, imported on use.
DATA_SOURCES: Registry[Any] = Registry("data source")
for _name in (
    "fashion_mnist",
    "cifar10",
    "image_folder",
    "skimage_samples",
    "video",
    "synthetic",
    "segmentation_folder",
    "fashion_mnist_segmentation",
):
    DATA_SOURCES.register_lazy(_name, f"privcam.pipelines.sources:{_name}")
# Frames a simulate run captured (ROOT/SPLIT), read instead of capturing scenes again.
DATA_SOURCES.register_lazy("shards", "privcam.pipelines.shards:as_scenes")

# Plain weights made by the pipeline (pipelines/models.py writes and reads them).
WEIGHTS_FILE = FileFormat("weights", 1)


@dataclass
class KeySection:
    path: str = "runs/keys/privcam.key"
    create: bool = True  # generate a key (mode 0600) when the file does not exist


SYNTHETIC_SIZE = (32, 32)  # (H, W) of the synthetic source without data.size


@dataclass
class DataSection:
    source: str = "fashion_mnist"
    root: str | None = field(default=None, metadata=input_path())  # dataset folder (fashion_mnist, cifar10, ...)
    path: str | None = field(default=None, metadata=input_path())  # a video file
    split: Literal["train", "test"] = "test"
    limit: int | None = field(default=None, metadata=bounds(ge=1))  # use only the first N items
    repeat: int = field(default=1, metadata=bounds(ge=1))  # simulate: capture the scenes N times over
    size: list[int] | None = field(
        default=None, metadata=bounds(ge=1, length=2)
    )  # [H, W]: resize in the scene domain, before capture
    classes: int = field(default=3, metadata=bounds(ge=1))  # synthetic source: number of classes
    count: int = field(default=64, metadata=bounds(ge=1))  # synthetic source: number of images


@dataclass
class SensorSection:
    preset: str = "machine_vision_12bit"  # a sensor preset, or "none" to feed scenes directly
    seed: int = field(default=0, metadata=bounds(ge=0))  # temporal noise
    overrides: dict = field(default_factory=dict)  # SensorConfig fields, e.g. {readout: {mode: per_frame}}
    # where each pixel's charge and code are computed: none for the CPU's numba kernels (fastest there),
    # or a torch device ("cuda", "cuda:1", "cpu") for the torch chain there (the same frames up to float rounding)
    device: str | None = None


@dataclass
class ModelSection:
    arch: str = "small_cnn"
    num_classes: int = field(default=10, metadata=bounds(ge=1))
    in_channels: int = field(default=1, metadata=bounds(ge=1))
    weights: str | None = field(default=None, metadata=input_path())
    keyed: bool = False  # run the model keyed (to_keyed) on protected frames
    backend: Literal["gather", "deform"] = "gather"


@dataclass
class OutputSection:
    dir: str = "runs/{name}"


@dataclass
class RunConfig:
    name: str
    task: dict
    seed: int = field(default=0, metadata=bounds(ge=0))
    key: KeySection = field(default_factory=KeySection)
    data: DataSection = field(default_factory=DataSection)
    sensor: SensorSection = field(default_factory=SensorSection)
    augment: list = field(default_factory=list)
    model: ModelSection = field(default_factory=ModelSection)
    output: OutputSection = field(default_factory=OutputSection)
    origin: str = field(default="<run file>", metadata={"internal": True})  # the file, for messages
    lines: SourceLines | None = field(default=None, repr=False, compare=False, metadata={"internal": True})

    def where(self, *path: str | int) -> str:
        """FILE:LINE of a field, for messages about it."""
        return self.origin if self.lines is None else self.lines.where(path)

    @property
    def output_dir(self) -> Path:
        return Path(self.output.dir.format(name=self.name))

    @property
    def protected(self) -> bool:
        return self.sensor.preset != "none"

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.metadata.get("internal")}
        return {k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for k, v in data.items()}

    def digest(self, *sections: str) -> str:
        """A short hash of the named sections (all when none): what identifies a run's results."""
        data = self.to_dict()
        chosen = {s: data[s] for s in sections} if sections else data
        return hashlib.blake2b(json.dumps(chosen, sort_keys=True, default=str).encode(), digest_size=8).hexdigest()


# Each task's own fields under `task:` (besides `name`).

ATTACKS = ("learned", "ciphertext_only", "jigsaw", "known_plaintext", "key_extraction", "visual")
Mode = Literal["paper", "per_frame", "masked"]
Unit = Literal["pixel", "quad", "block"]


@dataclass
class TrainParams:
    epochs: int = field(default=8, metadata=bounds(ge=1))
    batch_size: int = field(default=128, metadata=bounds(ge=1))
    lr: float = field(default=0.1, metadata=bounds(gt=0))
    momentum: float = field(default=0.9, metadata=bounds(ge=0, le=1))
    weight_decay: float = field(default=5e-4, metadata=bounds(ge=0))
    schedule: Literal["onecycle", "cosine", "step"] = "onecycle"
    seed: int = field(default=0, metadata=bounds(ge=0))


@dataclass
class EvaluateParams:
    split: Literal["train", "test"] = "test"


@dataclass
class ReproduceParams:
    modes: list[Mode] = field(default_factory=lambda: ["paper", "per_frame", "masked"])  # a table per mode
    finetune_epochs: int = field(default=2, metadata=bounds(ge=1))
    finetune_lr: float = field(default=0.01, metadata=bounds(gt=0))
    finetune_limit: int | None = field(
        default=None, metadata=bounds(ge=1)
    )  # protected training frames for the fine-tuning row (None: all)
    batch_size: int = field(default=128, metadata=bounds(ge=1))


@dataclass
class AttackParams:
    modes: list[Mode] = field(default_factory=lambda: ["paper", "per_frame", "masked"])  # each attack in each
    units: list[Unit] | None = None  # readout units to try (None: the sensor's own)
    # learned: wrong key, pretrained, fine-tuning, MLP and histogram classifiers (labels and weights)
    attacks: list[Literal[ATTACKS]] = field(default_factory=lambda: list(ATTACKS))
    finetune_epochs: int = field(default=2, metadata=bounds(ge=1))
    finetune_lr: float = field(default=0.01, metadata=bounds(gt=0))
    finetune_limit: int | None = field(default=20000, metadata=bounds(ge=1))
    mlp_epochs: int = field(default=5, metadata=bounds(ge=1))
    train_limit: int | None = field(
        default=20000, metadata=bounds(ge=1)
    )  # training frames of the MLP and histogram attacks
    histogram_bins: int = field(default=32, metadata=bounds(ge=2))
    histogram_epochs: int = field(default=20, metadata=bounds(ge=1))
    kpa_max_frames: int = field(default=8, metadata=bounds(ge=1))
    kpa_trials: int = field(default=5, metadata=bounds(ge=1))
    visual_frames: int = field(
        default=500, metadata=bounds(ge=2)
    )  # key extraction is scored on the frames after the first
    ciphertext_frames: int | None = field(
        default=None, metadata=bounds(ge=2)
    )  # protected test frames the ciphertext-only attack sees
    jigsaw_frames: int = field(
        default=5, metadata=bounds(ge=1)
    )  # frames the single-frame jigsaw is tried on, one at a time
    batch_size: int = field(default=128, metadata=bounds(ge=1))


@dataclass
class SegmentParams(TrainParams):
    train: bool = True  # false: evaluate model.weights, no training
    modes: list[Mode] = field(default_factory=lambda: ["paper", "per_frame", "masked"])  # protection modes
    train_limit: int | None = field(default=None, metadata=bounds(ge=1))  # training scenes (None: all)
    overlays: int = field(default=4, metadata=bounds(ge=0))  # test scenes shown in overlays.png


@dataclass
class SimulateParams:
    format: Literal["shards", "npz"] = "shards"  # WebDataset tar shards, or one .npz per frame
    shard_size: int = field(default=1000, metadata=bounds(ge=1))  # frames per shard: the unit of work and of resuming
    workers: int = field(default=1, metadata=bounds(ge=1))  # capturing processes (per torchrun rank)
    previews: int = field(default=16, metadata=bounds(ge=0))  # 8-bit PNGs of the first N frames as sent
    video: bool = True  # for a video source: protected.mp4, and revealed.mp4 for the key holder


@dataclass
class WebcamParams:
    source: str = field(
        default="synthetic", metadata=input_path(names=lambda v: v == "synthetic" or v.isdigit())
    )  # a camera index ("0"), a video file, or "synthetic"
    width: int = field(default=640, metadata=bounds(ge=32))
    height: int = field(default=480, metadata=bounds(ge=32))
    frames: int | None = field(default=None, metadata=bounds(ge=1))  # stop after N frames
    headless: bool = False
    record: str | None = None  # an MP4 of the window
    snapshots: str = "runs/webcam/snapshots"
    classifier_size: list[int] = field(
        default_factory=lambda: [28, 28], metadata=bounds(ge=4, length=2)
    )  # [H, W], binned capture
    class_names: list[str] | None = None  # the classifier's classes (default: Fashion-MNIST's)


RUN_FILES = shipped_files("shipped run file", "privcam.configs")  # configs/NAME.yaml: privcam run NAME


def find_run_file(name: str | Path) -> Path:
    """A run file: `name` itself when it is a path (it exists, or has a folder or a suffix), else
    the shipped run file of that name, so `privcam run webcam` works from any folder."""
    path = Path(name)
    if path.exists() or path.suffix or len(path.parts) > 1:
        if not path.exists() and path.stem in RUN_FILES:
            raise ConfigError(
                f"{path}: no such run file (the shipped one is named {path.stem!r}: privcam run {path.stem})"
            )
        return path
    if str(name) in RUN_FILES:
        return RUN_FILES.get(str(name))
    raise ConfigError(
        f"{name}: no such run file, nor a shipped run file of that name{did_you_mean(name, RUN_FILES.names())}; "
        f"shipped: {', '.join(RUN_FILES.names())}"
    )


def load_run_config(path: str | Path, overrides: list[str] = ()) -> RunConfig:
    """Read a run file (a path, or the name of a shipped one), apply `--set` overrides and check
    every section's fields and types. Input paths (data.root, data.path, model.weights) come out
    absolute: relative to the run file's folder as written there, to the working folder via --set.

    Names (task, data source, architecture, preset), each task's own fields and the augmentations
    are checked by privcam.pipelines.validate.
    """
    path = find_run_file(path)
    data, lines = read_yaml(path, "run file")
    if data.get("sensor") == "none":  # shorthand for feeding scenes to the network directly
        data["sensor"] = {"preset": "none"}
    for item in overrides:
        _apply_override(data, item, lines)
    config = build(RunConfig, data, lines)
    config.origin, config.lines = str(path), lines
    return config


def _apply_override(data: dict, item: str, lines: SourceLines) -> None:
    import yaml

    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected FIELD=VALUE, e.g. --set task.epochs=2")
    dotted, raw = item.split("=", 1)
    keys = dotted.strip().split(".")
    target = data
    for key in keys[:-1]:
        target = target.setdefault(key, {})
        if not isinstance(target, dict):
            raise ConfigError(f"--set {dotted}: {key!r} is not a section")
    try:
        target[keys[-1]] = yaml.safe_load(raw)
    except yaml.YAMLError:
        target[keys[-1]] = raw
    lines.lines[tuple(keys)] = None  # reported as coming from --set
