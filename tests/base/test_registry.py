"""One Registry with did-you-mean, eager and lazy entries."""

import sys

import pytest

from privcam.base.registry import Registry, did_you_mean


def test_lookup_suggests_the_closest_name():
    registry = Registry("colour")
    registry.register("red")("R")
    registry.register("green")("G")
    assert registry.get("red") == "R" and registry.names() == ["green", "red"] and "green" in registry
    with pytest.raises(ValueError, match=r"unknown colour 'gren' \(did you mean 'green'\?\); allowed: green, red"):
        registry.get("gren")
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("red")("again")
    assert did_you_mean("blu", ["blue"]) == " (did you mean 'blue'?)" and did_you_mean("x", ["blue"]) == ""


def test_lazy_entries_import_their_module_on_first_use():
    sys.modules.pop("json.tool", None)
    registry = Registry("tool")
    registry.register_lazy("json", "json.tool:main")
    assert registry.names() == ["json"] and "json.tool" not in sys.modules
    assert callable(registry.get("json")) and "json.tool" in sys.modules
