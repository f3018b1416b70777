"""A plain `pip install .` ships only the packages pyproject lists: every package folder must be there."""

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"privcam"}
    for top in ("base", "privacy", "nets", "augment", "sensor", "pipelines", "configs"):
        for init in (REPO / top).rglob("__init__.py"):
            found.add(".".join(["privcam", *init.parent.relative_to(REPO).parts]))
    assert found <= listed, f"add to pyproject packages: {sorted(found - listed)}"
