"""Validated settings: build a dataclass from YAML data, checking every field against its type hint.

Run files (pipelines) and sensor presets (sensor) both go through `build`; every error names the
file, the line when it is known, the field, and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from .registry import did_you_mean


class ConfigError(ValueError):
    """A user error in a run file, a preset or an override; the CLI prints it and exits with code 2.
    One error may list several problems, a line each, in the file's order (ConfigError.joined)."""

    @classmethod
    def joined(cls, errors: list[ConfigError]) -> ConfigError:
        """One error listing the problems of `errors`, sorted by line (overrides and whole-file
        problems last), each once."""
        problems = dict.fromkeys(line for err in errors for line in str(err).splitlines())
        return cls("\n".join(sorted(problems, key=_line_number)))


def _line_number(problem: str) -> tuple[int, int]:
    match = re.search(r":(\d+): ", problem)
    return (0, int(match.group(1))) if match else (1, 0)


def bounds(
    ge: float | None = None, gt: float | None = None, le: float | None = None, length: int | None = None
) -> dict[str, dict]:
    """Field metadata that `build` checks: ge/gt/le for a number (or for every item of a list of
    numbers), length for a list. Floats must be finite in any case.

    Example:
        >>> lr: float = field(default=0.1, metadata=bounds(gt=0))  # doctest: +SKIP
    """
    declared = (("ge", ge), ("gt", gt), ("le", le), ("length", length))
    return {"bounds": {name: value for name, value in declared if value is not None}}


def input_path(names: Callable[[str], bool] = lambda value: False) -> dict[str, Callable[[str], bool]]:
    """Field metadata for a file or folder that a run reads. `build` makes it absolute: a relative
    path written in a settings file is relative to that file's folder (so a run file works from any
    working folder and wherever it is installed), one given with `--set` to the working folder, as
    in a shell; `~` is expanded. Values for which `names(value)` holds are names, not paths.

    Example:
        >>> root: str | None = field(default=None, metadata=input_path())  # doctest: +SKIP
    """
    return {"input_path": names}


MAX_YAML_NODES = 100_000  # values in a settings file with every alias expanded; real files have a few hundred


class SourceLines:
    """Line numbers of the mapping keys and values of a YAML document, by field path.

    Args:
        source: the file name used in messages.

    A path recorded with line None came from a command-line override (`--set`).
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[tuple, int | None] = {}

    def record(self, node: Any, path: tuple = ()) -> None:
        """Record the lines of a composed YAML node (yaml.compose) and everything under it."""
        import yaml

        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                self.record(value_node, (*path, key_node.value))
                self.lines[(*path, key_node.value)] = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.record(item, (*path, i))

    def where(self, path: tuple) -> str:
        """FILE:LINE of `path` (or of its closest recorded parent), or '--set' for an override."""
        if self.lines.get(path, 0) is None:
            return "--set"
        while path and path not in self.lines:
            path = path[:-1]
        line = self.lines.get(path)
        return f"{self.source}:{line}" if line else self.source

    def resolve(self, path: tuple, value: str) -> str:
        """`value`, a path given at field `path`, as an absolute path: relative to the file's folder
        when the file gave it, to the working folder when `--set` did."""
        given = Path(value).expanduser()
        base = Path.cwd() if self.lines.get(path, 0) is None else Path(self.source).parent
        return os.path.abspath(base / given)


def read_yaml(path: str | os.PathLike, what: str) -> tuple[dict, SourceLines]:
    """A YAML mapping and the lines of its fields; every problem is a ConfigError naming FILE:LINE.

    Args:
        path: the file.
        what: what the file is, for messages ("run file", "sensor file").
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the {what}: {err}") from None
    try:
        node = yaml.compose(text)
        if node is not None:
            _check_nodes(node, path, what)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(err, 'problem', None) or err}") from None
    except RecursionError:
        raise ConfigError(f"{path}: values nested too deeply for a {what}") from None
    if node is None or not isinstance(data, dict):
        raise ConfigError(f"{path}:1: a {what} is a mapping of fields")
    lines = SourceLines(str(path))
    lines.record(node)
    return data, lines


def _check_nodes(root: Any, path: Path, what: str) -> None:
    """Refuse, before anything is built, duplicate keys, an alias inside itself and aliases that
    expand to more than MAX_YAML_NODES values (a few nested aliases can ask for gigabytes). Each
    shared node is sized once, so the check costs the file's size, not the expansion's."""
    import yaml

    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: Any) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in open_nodes:
            raise ConfigError(f"{path}:{node.start_mark.line + 1}: this anchored value contains an alias to itself")
        open_nodes.add(id(node))
        total = 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else id(key_node)
                line = key_node.start_mark.line + 1
                if key in seen and key != "<<":
                    raise ConfigError(f"{path}:{line}: duplicate key {key!r} (first at line {seen[key]}); give it once")
                seen[key] = line
                total += size(key_node) + size(value_node)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(item) for item in node.value)
        if total > MAX_YAML_NODES:
            raise ConfigError(
                f"{path}:{node.start_mark.line + 1}: aliases expand this {what} to more than {MAX_YAML_NODES:,} values"
            )
        open_nodes.discard(id(node))
        sizes[id(node)] = total
        return total

    size(root)


def build(cls: type, data: Any, lines: SourceLines, path: tuple = ()) -> Any:
    """Validate mapping `data` against dataclass `cls` and build it.

    Unknown fields, missing required fields, values of the wrong type and values outside a field's
    declared bounds (`bounds`) raise one ConfigError listing every problem with file, line and
    field. Paths of fields declared with `input_path` are made absolute. Fields whose metadata says
    {"internal": True} are not settable.
    """
    where = lines.where(path)
    name = ".".join(map(str, path)) or "the file"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: {name} must be a mapping, got {_kind(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    hints = typing.get_type_hints(cls)
    values, errors = {}, []
    for key in data:
        if key not in fields:
            errors.append(
                ConfigError(
                    f"{lines.where((*path, key))}: unknown field {_dotted((*path, key))!r}"
                    f"{did_you_mean(key, fields)}; allowed: {', '.join(fields)}"
                )
            )
    for field_name, spec in fields.items():
        if field_name not in data:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                errors.append(ConfigError(f"{where}: {name} needs the field {field_name!r}"))
            continue
        field_path = (*path, field_name)
        try:
            values[field_name] = check_value(hints[field_name], data[field_name], lines, field_path)
            _check_bounds(values[field_name], spec.metadata.get("bounds", {}), lines, field_path)
            names = spec.metadata.get("input_path")
            if names is not None and isinstance(values[field_name], str) and not names(values[field_name]):
                values[field_name] = lines.resolve(field_path, values[field_name])
        except ConfigError as err:
            errors.append(err)
    if errors:
        raise ConfigError.joined(errors)
    try:
        return cls(**values)
    except ConfigError:
        raise
    except ValueError as err:
        raise ConfigError(f"{where}: {err}") from None


def _check_bounds(value: Any, bounds: dict, lines: SourceLines, path: tuple) -> None:
    where, name = lines.where(path), _dotted(path)
    if value is None:
        return
    if isinstance(value, list | tuple):
        if "length" in bounds and len(value) != bounds["length"]:
            raise ConfigError(f"{where}: {name} must be a list of {bounds['length']} values, got {len(value)}")
        for item in value:
            _check_bounds(item, {k: v for k, v in bounds.items() if k != "length"}, lines, path)
        return
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: {name} must be a finite number, got {value!r}")
    for op, limit, holds in (
        (">=", bounds.get("ge"), lambda v, x: v >= x),
        (">", bounds.get("gt"), lambda v, x: v > x),
        ("<=", bounds.get("le"), lambda v, x: v <= x),
    ):
        if limit is not None and not holds(value, limit):
            raise ConfigError(f"{where}: {name} must be {op} {limit}, got {value!r}")


def check_value(hint: Any, value: Any, lines: SourceLines, path: tuple) -> Any:
    """Check one value against a type hint: int, float, bool, str, Literal, unions with None, list[X],
    tuple[X, ...], dict, or a dataclass (built with `build`)."""
    where, name = lines.where(path), _dotted(path)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for option in options[:-1]:
            try:
                return check_value(option, value, lines, path)
            except ConfigError:
                continue
        return check_value(options[-1], value, lines, path)
    if origin is Literal:
        if value not in args:
            allowed = ", ".join(map(str, args))
            raise ConfigError(f"{where}: {name} is {value!r}{did_you_mean(value, map(str, args))}; allowed: {allowed}")
        return value
    if dataclasses.is_dataclass(hint):
        return build(hint, value, lines, path)
    if origin in (list, tuple) or hint in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: {name} must be a list, got {_kind(value)}")
        items = [check_value(args[0], v, lines, path) for v in value] if args else list(value)
        return tuple(items) if origin is tuple or hint is tuple else items
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


def differing_fields(before: dict, now: dict) -> list[str]:
    """The names whose values differ between two records of a run (missing counts as different):
    what a refused resume names."""
    return sorted(name for name in before.keys() | now.keys() if before.get(name) != now.get(name))


def _dotted(path: tuple) -> str:
    return ".".join(map(str, path))


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__
