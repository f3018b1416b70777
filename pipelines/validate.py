"""Check a loaded run file before any work: names against their registries, the task's own fields,
what the task needs, the sensor overrides and the augmentations.

Only the augmentation check imports kornia (and so torch); everything else is quick.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..base.atomic import unwritable_reason
from ..base.schema import ConfigError, build
from ..base.store import FileFormatError, read_header
from ..nets.zoo import DENSE_MODELS, FIXED_INPUT_SIZES, MODELS
from ..privacy import Key, KeyFileError
from ..sensor.array import Region
from ..sensor.config import PRESETS, SensorConfig, load_preset
from .catalogue import TASKS, Task
from .config import DATA_SOURCES, SYNTHETIC_SIZE, WEIGHTS_FILE, EvaluateParams, RunConfig

# What the run file fixes about the sources' data, for the classification tasks' checks: class
# counts, and (H, W) without data.size. Other sources are checked on their data at run time.
KNOWN_CLASSES = {"fashion_mnist": lambda data: 10, "cifar10": lambda data: 10, "synthetic": lambda data: data.classes}
SOURCE_SIZES = {"fashion_mnist": (28, 28), "cifar10": (32, 32), "synthetic": SYNTHETIC_SIZE}
CLASSIFYING_TASKS = ("train", "evaluate", "reproduce", "attack")
# The sources that read a folder the user names, and what that folder holds.
ROOT_SOURCES = {
    "cifar10": "a CIFAR-10 folder (cifar-10-batches-py)",
    "image_folder": "a folder of images (one sub-folder per class, or the files directly)",
    "segmentation_folder": "a segmentation folder (make one with `privcam make-shapes OUT`)",
    "shards": "a folder with a finished simulate run per split (ROOT/train, ROOT/test)",
}
# What each split folder (ROOT/train, ROOT/test) of these sources holds.
SPLIT_LAYOUTS = {"segmentation_folder": ("images/", "masks/"), "shards": ("identity.json",)}
SHARD_TASKS = ("train", "evaluate")  # the tasks that read captured frames (data.source shards)


def validate(config: RunConfig) -> Any:
    """Check everything that can be checked without data; returns the task's validated fields.

    Every problem found is reported at once, in the file's order (one ConfigError, a line each).
    """
    errors: list[ConfigError] = []

    def check(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except ConfigError as err:
            errors.append(err)
            return None

    for path, value, registry in [
        (("data", "source"), config.data.source, DATA_SOURCES),
        (("model", "arch"), config.model.arch, MODELS),
    ]:
        check(lambda path=path, value=value, registry=registry: _check_name(config, path, value, registry.names()))
    if config.protected:
        check(lambda: _check_name(config, ("sensor", "preset"), config.sensor.preset, [*PRESETS.names(), "none"]))
    check(lambda: _check_files(config))
    check(lambda: _check_data_use(config))
    check(lambda: _check_weights(config))
    check(lambda: _check_key(config))
    check(lambda: _check_output(config))
    task = check(lambda: task_of(config))
    params = None
    if task is not None:
        task_fields = {k: v for k, v in config.task.items() if k != "name"}
        params = check(lambda: build(task.params, task_fields, config.lines, ("task",)))
        if params is not None:
            check(lambda: _check_needs(config, task, params))
        check(lambda: _check_classes(config))
        check(lambda: _check_input_size(config))
        check(lambda: _check_channels(config))
        check(lambda: _check_arch_kind(config))
    if config.protected and config.sensor.preset in PRESETS.names():
        check(lambda: sensor_config(config))
        check(lambda: _check_sensor_region(config))
    if config.protected and config.sensor.device is not None:
        check(lambda: _check_sensor_device(config))
    if config.augment and task is not None:
        check(lambda: _check_augment(config, task))
    if errors:
        raise ConfigError.joined(errors)
    return params


def _check_sensor_device(config: RunConfig) -> None:
    """sensor.device names a torch device this machine has (imports torch, only when it is set)."""
    from ..sensor.sensor import checked_device

    try:
        checked_device(config.sensor.device)
    except ValueError as err:
        raise ConfigError(f"{config.where('sensor', 'device')}: sensor.device: {err}") from None


def _check_augment(config: RunConfig, task: Task) -> None:
    if task.trains is None:
        raise ConfigError(
            f"{config.where('augment')}: task {config.task['name']!r} does not train; augment applies to training"
        )
    from .augmentation import build_augmentation

    build_augmentation(config, protected=task.trains(config))


def _check_files(config: RunConfig) -> None:
    """The data the run file names is there: data.root for the folder sources, data.path for a video."""
    data = config.data
    if data.root is None and data.source in ROOT_SOURCES:
        raise ConfigError(
            f"{config.where('data')}: data source {data.source!r} needs data.root, {ROOT_SOURCES[data.source]}: "
            "add root: PATH under data:, or --set data.root=PATH"
        )
    if data.root is not None and not Path(data.root).is_dir():
        raise ConfigError(f"{config.where('data', 'root')}: data.root {data.root} is not a folder")
    for split in _splits_read(config) if data.source in SPLIT_LAYOUTS else ():
        folder = Path(data.root) / split
        if not all((folder / name).exists() for name in SPLIT_LAYOUTS[data.source]):
            raise ConfigError(
                f"{config.where('data', 'root')}: {folder} needs {' and '.join(SPLIT_LAYOUTS[data.source])}, "
                f"the {split} split of {ROOT_SOURCES[data.source]}"
            )
    if data.source == "video":
        if data.path is None:
            raise ConfigError(f"{config.where('data')}: the video source needs data.path, a video file")
        if not Path(data.path).is_file():
            raise ConfigError(f"{config.where('data', 'path')}: video file {data.path} does not exist")


def _splits_read(config: RunConfig) -> tuple[str, ...]:
    """The data splits a run reads: task.split for evaluate, training and test data for the other
    tasks that train or score, else data.split."""
    name = config.task.get("name")
    if name == "evaluate":
        return (config.task.get("split", EvaluateParams.split),)
    if name in (*CLASSIFYING_TASKS, "segment"):
        return ("train", "test")
    return (config.data.split,)


def _check_data_use(config: RunConfig) -> None:
    """data.repeat is for simulate; captured frames (data.source shards) feed keyed networks only."""
    data, name = config.data, config.task.get("name")
    if data.repeat > 1 and name != "simulate":
        raise ConfigError(
            f"{config.where('data', 'repeat')}: data.repeat captures the scenes several times over; "
            f"it applies to task simulate, not {name!r}"
        )
    if data.source == "shards" and (name not in SHARD_TASKS or not config.model.keyed):
        raise ConfigError(
            f"{config.where('data', 'source')}: data source 'shards' holds protected frames captured by simulate, "
            f"read by a keyed network (tasks {' and '.join(SHARD_TASKS)} with model.keyed: true); this run has "
            f"task {name!r} with model.keyed: {str(config.model.keyed).lower()}"
        )


def _check_weights(config: RunConfig) -> None:
    """model.weights, when named (whether or not the task needs it), is a weights file made for
    the run's model: its architecture, classes and channels, read from the file's header without
    torch. A keyed run may name a saved keyed network instead."""
    weights = config.model.weights
    if weights is None:
        return
    where = config.where("model", "weights")
    if not Path(weights).is_file():
        raise ConfigError(f"{where}: weights file {weights} does not exist")
    try:
        payload = read_header(weights)
    except FileFormatError as err:
        raise ConfigError(f"{where}: {err}") from None
    if payload.get("format") != WEIGHTS_FILE.tag:
        if config.model.keyed:
            return  # a saved keyed network (weights.keyed.pt): checked when it is rebuilt with the key
        raise ConfigError(f"{where}: {weights} is not a {WEIGHTS_FILE.tag} file (found {payload.get('format')!r})")
    for name in ("arch", "num_classes", "in_channels"):
        made_for, given = payload.get(name), getattr(config.model, name)
        if made_for != given:
            raise ConfigError(
                f"{where}: {weights} holds weights for model.{name} {made_for!r}, but model.{name} is {given!r} "
                f"(set model.{name}: {made_for}, or name other weights)"
            )


def _check_classes(config: RunConfig) -> None:
    """model.num_classes covers the data's classes (others are checked on the labels, at run time)."""
    source = config.data.source
    if config.task.get("name") not in CLASSIFYING_TASKS or source not in KNOWN_CLASSES:
        return
    classes = KNOWN_CLASSES[source](config.data)
    if config.model.num_classes < classes:
        raise ConfigError(
            f"{config.where('model', 'num_classes')}: model.num_classes is {config.model.num_classes}, "
            f"but data source {source!r} has {classes} classes"
        )


def _check_input_size(config: RunConfig) -> None:
    """An architecture that takes one frame size gets it, where the run file fixes the size."""
    fixed = FIXED_INPUT_SIZES.get(config.model.arch)
    if fixed is None or config.task.get("name") not in CLASSIFYING_TASKS:
        return
    size = tuple(config.data.size) if config.data.size else SOURCE_SIZES.get(config.data.source)
    if size is not None and size != fixed:
        where = config.where("data", "size") if config.data.size else config.where("data")
        raise ConfigError(
            f"{where}: {config.model.arch} takes {fixed[0]}x{fixed[1]} frames, the data gives {size[0]}x{size[1]} "
            f"(set data.size: [{fixed[0]}, {fixed[1]}])"
        )


def _check_sensor_region(config: RunConfig) -> None:
    """Frames of a known size fit the sensor's array (array_hw, roi_offset, binning)."""
    size = tuple(config.data.size) if config.data.size else SOURCE_SIZES.get(config.data.source)
    try:
        sensor = sensor_config(config)
    except ConfigError:
        return  # reported by the sensor check
    if size is None:
        return
    try:
        Region.of_frame(size, sensor.array_hw, sensor.roi_offset, sensor.binning)
    except ValueError as err:
        where = config.where("sensor", "overrides") if config.sensor.overrides else config.where("sensor", "preset")
        raise ConfigError(f"{where}: {err}") from None


def _check_channels(config: RunConfig) -> None:
    """model.in_channels is what the sensor sends: its `channels` (1 for mono and Bayer mosaics, 3 for RGB)."""
    if not config.protected or config.task.get("name") not in ("train", "evaluate", "reproduce", "segment"):
        return  # the attack task runs its model only in the attacks that need one
    try:
        sensor = sensor_config(config)
    except ConfigError:
        return  # reported by the sensor check
    channels = sensor.channels
    if config.model.in_channels != channels:
        raise ConfigError(
            f"{config.where('model', 'in_channels')}: model.in_channels is {config.model.in_channels}, but sensor "
            f"{config.sensor.preset!r} sends frames of {channels} channel{'s' if channels > 1 else ''}"
        )


def _check_arch_kind(config: RunConfig) -> None:
    """Task segment needs an architecture that predicts a class per pixel; the classifying tasks one
    that predicts a class per frame."""
    name, arch = config.task.get("name"), config.model.arch
    dense = arch in DENSE_MODELS
    if (name == "segment" and not dense) or (name in CLASSIFYING_TASKS and dense):
        wanted = (
            f"a segmentation architecture ({', '.join(sorted(DENSE_MODELS))})" if name == "segment" else "a classifier"
        )
        raise ConfigError(f"{config.where('model', 'arch')}: task {name!r} needs {wanted}, not {arch!r}")


def _check_key(config: RunConfig) -> None:
    """key.path is a key file privcam may read, or a place where `key.create` may make one."""
    path = Path(config.key.path)
    where = config.where("key", "path")
    if path.exists() or path.is_symlink():
        try:
            Key.load(path)
        except KeyFileError as err:
            raise ConfigError(f"{where}: {err}") from None
        return
    if not config.key.create:
        raise ConfigError(f"{where}: key file {path} does not exist (privcam keygen {path})")
    reason = unwritable_reason(path.parent)
    if reason is not None:
        raise ConfigError(f"{where}: cannot create the key file {path}: {reason}")


def _check_output(config: RunConfig) -> None:
    """output.dir names only {name}, and the folder can be made and written."""
    try:
        out = config.output_dir
    except (KeyError, IndexError, ValueError) as err:
        raise ConfigError(
            f"{config.where('output', 'dir')}: output.dir {config.output.dir!r} may use only {{name}} ({err})"
        ) from None
    reason = unwritable_reason(out)
    if reason is not None:
        raise ConfigError(f"{config.where('output', 'dir')}: output folder {out}: {reason}")


def task_of(config: RunConfig) -> Task:
    name = config.task.get("name")
    if name is None:
        raise ConfigError(f"{config.where('task')}: task needs a 'name'; allowed: {', '.join(TASKS.names())}")
    if not isinstance(name, str):
        raise ConfigError(f"{config.where('task', 'name')}: task.name must be text, got {name!r}")
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
    if "weights" in needs and not config.model.weights:
        raise ConfigError(
            f"{config.where('model')}: task {name!r} needs model.weights, a trained plain model: "
            f"add weights: PATH under model:, or --set model.weights=PATH"
        )
    if "sensor" in needs and not config.protected:
        raise ConfigError(f"{config.where('sensor', 'preset')}: task {name!r} needs a sensor preset, not 'none'")
