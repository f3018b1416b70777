"""The census of benchmarks/keyed_zoo.py as a test: every torchvision classification and
segmentation model converts and matches its plain model (slow: about 10 minutes on 2 cores)."""

import importlib.util
from pathlib import Path

import pytest

from privcam.privacy import Key

CENSUS = Path(__file__).resolve().parents[2] / "benchmarks" / "keyed_zoo.py"


def load_census():
    spec = importlib.util.spec_from_file_location("keyed_zoo", CENSUS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_family_names_group_the_zoo():
    zoo = load_census()
    assert [zoo.family(n) for n in ("resnet50", "efficientnet_v2_s", "fcn_resnet50", "swin_v2_t", "vit_b_16")] == [
        "resnet",
        "efficientnet_v2",
        "fcn",
        "swin_v2",
        "vit",
    ]


@pytest.mark.slow
def test_every_torchvision_model_keys_exactly():
    zoo = load_census()
    rows = zoo.census(zoo.all_models(), Key.from_hex("ab" * 32), progress=lambda line: None)
    assert len(rows) >= 80
    for row in rows:
        assert row["status"] == "ok", row
        assert row["worst_relative_error"] <= 1e-5 and row["same_top1"], row
