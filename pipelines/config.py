"""The run file: one validated YAML document describes a whole run (key, data, sensor, model, task, output).

Validation happens before any work starts. Every error names the file, the line, the field and
what is allowed; `--set a.b=value` overrides any field.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A user error in a run file or an override; the CLI prints it and exits with code 2."""


@dataclass
class KeySection:
    path: str = "runs/keys/privcam.key"
    create: bool = True  # generate a key (mode 0600) when the file does not exist


@dataclass
class DataSection:
    source: str = "fashion_mnist"
    root: str | None = None  # dataset folder (fashion_mnist, cifar10, image_folder)
    path: str | None = None  # a video file
    split: Literal["train", "test"] = "test"
    limit: int | None = None  # use only the first N items
    size: list[int] | None = None  # [H, W]: resize in the scene domain, before capture
    classes: int = 3  # synthetic source: number of classes
    count: int = 64  # synthetic source: number of images


@dataclass
class SensorSection:
    preset: str = "machine_vision_12bit"  # a sensor preset, or "none" to feed scenes directly
    seed: int = 0  # temporal noise
    overrides: dict = field(default_factory=dict)  # SensorConfig fields, e.g. {readout: {nonce: per_frame}}


@dataclass
class ModelSection:
    arch: str = "small_cnn"
    num_classes: int = 10
    in_channels: int = 1
    weights: str | None = None
    keyed: bool = False  # run the model keyed (to_keyed) on protected frames
    backend: Literal["gather", "deform"] = "gather"


@dataclass
class OutputSection:
    dir: str = "runs/{name}"


@dataclass
class RunConfig:
    name: str
    task: dict
    seed: int = 0
    key: KeySection = field(default_factory=KeySection)
    data: DataSection = field(default_factory=DataSection)
    sensor: SensorSection = field(default_factory=SensorSection)
    augment: list = field(default_factory=list)
    model: ModelSection = field(default_factory=ModelSection)
    output: OutputSection = field(default_factory=OutputSection)
    origin: str = field(default="<run file>", metadata={"internal": True})  # the file, for messages
    lines: SourceLines | None = field(default=None, repr=False, compare=False, metadata={"internal": True})

    def where(self, *path: str) -> str:
        """FILE:LINE of a field, for messages about it."""
        return self.origin if self.lines is None else _where(self.lines, path)

    @property
    def output_dir(self) -> Path:
        return Path(self.output.dir.format(name=self.name))

    @property
    def protected(self) -> bool:
        return self.sensor.preset != "none"

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.metadata.get("internal")}
        return {k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for k, v in data.items()}


class SourceLines:
    """Line numbers of every mapping key and value in a YAML document, by field path."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[tuple, int] = {}

    def record(self, node: yaml.Node, path: tuple = ()) -> None:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                self.record(value_node, (*path, key_node.value))
                self.lines[(*path, key_node.value)] = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.record(item, (*path, i))

    def where(self, path: tuple) -> str:
        while path and path not in self.lines:
            path = path[:-1]
        line = self.lines.get(path)
        return f"{self.source}:{line}" if line else self.source


def load_run_config(path: str | Path, overrides: list[str] = ()) -> RunConfig:
    """Read, override and validate a run file. Task-specific fields are validated by the task registry."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such run file") from None
    lines = SourceLines(str(path))
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(err, 'problem', err)}") from None
    if node is None or not isinstance(data, dict):
        raise ConfigError(f"{path}:1: a run file is a mapping with at least 'name' and 'task'")
    lines.record(node)
    if data.get("sensor") == "none":  # shorthand for feeding scenes to the network directly
        data["sensor"] = {"preset": "none"}
    for item in overrides:
        _apply_override(data, item, lines)
    config = build(RunConfig, data, lines, ())
    config.origin, config.lines = str(path), lines
    return config


def _apply_override(data: dict, item: str, lines: SourceLines) -> None:
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


def build(cls: type, data: Any, lines: SourceLines, path: tuple) -> Any:
    """Validate `data` against dataclass `cls` and build it; errors name file, line and field."""
    where = _where(lines, path)
    name = ".".join(path) or "the run file"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: {name} must be a mapping, got {_kind(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{_where(lines, (*path, key))}: unknown field {'.'.join((*path, str(key)))!r}{hint}; "
                f"allowed: {', '.join(fields)}"
            )
    values = {}
    for fname, spec in fields.items():
        if fname not in data:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{where}: {name} needs the field {fname!r}")
            continue
        values[fname] = check_value(hints[fname], data[fname], lines, (*path, fname))
    return cls(**values)


def check_value(hint: Any, value: Any, lines: SourceLines, path: tuple) -> Any:
    """Check one value against a type hint (int, float, bool, str, Literal, X | None, list[int], dict, dataclass)."""
    where, name = _where(lines, path), ".".join(path)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        return check_value(options[0], value, lines, path)
    if origin is Literal:
        if value not in args:
            close = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
            hint_text = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: {name} is {value!r}{hint_text}; allowed: {', '.join(map(str, args))}")
        return value
    if dataclasses.is_dataclass(hint):
        return build(hint, value, lines, path)
    if origin is list or hint is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: {name} must be a list, got {_kind(value)}")
        if args:
            return [check_value(args[0], v, lines, path) for v in value]
        return value
    if hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {name} must be a mapping, got {_kind(value)}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {name} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: {name} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise ConfigError(f"{where}: {name} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {name} must be text, got {value!r}")
        return value
    return value


def _where(lines: SourceLines, path: tuple) -> str:
    if lines.lines.get(path, 0) is None:
        return "--set"
    return lines.where(path)


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__
