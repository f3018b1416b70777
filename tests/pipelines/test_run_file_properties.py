"""Property: a mutated run file is either accepted by `validate` and then runs, or refused by both
`validate` and `run` with exit 2, FILE:LINE and no traceback. Mutations: wrong types, values out of
range, missing and extra fields, aliases and duplicate keys, on a tiny training run."""

import contextlib
import copy
import itertools
import re

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privcam.pipelines.cli import main

from conftest import synthetic_run

BASE = synthetic_run({"name": "train", "epochs": 1, "batch_size": 16, "lr": 0.05})
ODD_VALUES = [-1, 0, 1, 3, 2.5, -0.5, float("inf"), "x", "", None, True, [], [1], [28, 28], {}, {"a": 1}]


FIXED = {("data", "source")}  # stays synthetic: the default source is all of Fashion-MNIST, minutes a run


def leaves(data: dict, path=()) -> list[tuple]:
    found = []
    for name, value in data.items():
        if isinstance(value, dict) and value:
            found += leaves(value, (*path, name))
        elif (*path, name) not in FIXED:
            found.append((*path, name))
    return found


def sections(data: dict, path=()) -> list[tuple]:
    return [path] + [p for name, v in data.items() if isinstance(v, dict) for p in sections(v, (*path, name))]


@st.composite
def mutated_run_files(draw) -> str:
    data = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(0, 2))):
        kind = draw(st.sampled_from(["value", "delete", "extra"]))
        if kind == "extra":
            target = data
            for name in draw(st.sampled_from(sections(data))):
                target = target[name]
            target[draw(st.sampled_from(["extra", "epochs", "lmit", "size"]))] = draw(st.sampled_from(ODD_VALUES))
            continue
        path = draw(st.sampled_from(leaves(data)))
        target = data
        for name in path[:-1]:
            target = target[name]
        if kind == "delete":
            target.pop(path[-1])
        else:
            target[path[-1]] = draw(st.sampled_from([target[path[-1]], *ODD_VALUES]))
    text = yaml.safe_dump(data, sort_keys=False)
    trick = draw(st.sampled_from(["none", "duplicate", "alias", "self-alias"]))
    if trick == "duplicate":
        lines = text.splitlines()
        text = "\n".join([*lines, draw(st.sampled_from(lines))]) + "\n"
    elif trick == "alias" and "  seed: 0\n" in text and "\nseed: 0\n" in text:
        text = text.replace("\nseed: 0\n", "\nseed: &seed 0\n", 1).replace("  seed: 0\n", "  seed: *seed\n", 1)
    elif trick == "self-alias":
        text += "loop: &loop [*loop]\n"
    return text


EXAMPLES = itertools.count()


def check(workdir, capsys, text: str) -> None:
    """`text` validated and run, each example in its own working folder (a training folder is one run)."""
    folder = workdir / f"example{next(EXAMPLES)}"
    folder.mkdir()
    path = folder / "run.yaml"
    path.write_text(text)
    with contextlib.chdir(folder):
        code = main(["validate", str(path)])
        err = capsys.readouterr().err
        assert code in (0, 2) and "Traceback" not in err, err
        ran = main(["run", str(path)])
    run_err = capsys.readouterr().err
    if code == 0:
        assert ran == 0, run_err
    else:
        assert ran == 2, run_err
        assert re.search(rf"{re.escape(str(path))}(:\d+)?: ", err), err  # names the file (and line)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=mutated_run_files())
def test_mutated_run_files_are_accepted_and_run_or_refused_clearly(workdir, capsys, text):
    check(workdir, capsys, text)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=mutated_run_files())
def test_mutated_run_files_longer_run(workdir, capsys, text):
    check(workdir, capsys, text)
