"""One Registry of named items (models, tasks, data sources, sensor presets, augmentations) with
"did you mean" lookups, the helper that every "unknown name" message uses, and the registry of a
package's shipped YAML files."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def did_you_mean(name: object, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest of `choices`, or ''."""
    close = difflib.get_close_matches(str(name), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def import_target(target: str) -> Any:
    """The object named by 'package.module:attribute', imported on first use."""
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


class Registry(Generic[T]):
    """Items by name. Register with the decorator `@registry.register(name)`, or lazily with
    `registry.register_lazy(name, "package.module:attribute")` so that listing names (the CLI's
    `info` and `validate`) does not import the module that defines the item."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T | str] = {}
        self._lazy: set[str] = set()

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            self._add(name, item)
            return item

        return add

    def register_lazy(self, name: str, target: str) -> None:
        self._add(name, target)
        self._lazy.add(name)

    def _add(self, name: str, item: T | str) -> None:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = item

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def check(self, name: str) -> str:
        """`name` when it is registered; otherwise a ValueError naming the allowed names."""
        if not isinstance(name, str):
            raise ValueError(f"a {self.kind} is named by text, got {name!r}; allowed: {', '.join(self.names())}")
        if name not in self._items:
            raise ValueError(
                f"unknown {self.kind} {name!r}{did_you_mean(name, self._items)}; allowed: {', '.join(self.names())}"
            )
        return name

    def get(self, name: str) -> T:
        self.check(name)
        if name in self._lazy:
            self._items[name] = import_target(self._items[name])
            self._lazy.discard(name)
        return self._items[name]


def shipped_files(kind: str, package: str, folder: str = "") -> Registry[Path]:
    """The YAML files installed with privcam in `package` (under `folder`), by name without the
    suffix: shipped run files and sensor presets.

    Args:
        kind: what the files are, for messages ("sensor preset").
        package: the package that holds them as package data ("privcam.configs").
        folder: a folder inside that package ("sensors"), or "" for the package's own folder.
    """
    registry: Registry[Path] = Registry(kind)
    location = resources.files(package)
    for part in filter(None, folder.split("/")):
        location = location / part
    for item in sorted(location.iterdir(), key=lambda item: item.name):
        if item.name.endswith(".yaml"):
            registry.register(item.name.removesuffix(".yaml"))(Path(str(item)))
    return registry
