"""Property: a mutated run file is either accepted by `validate` and then runs, or refused by both
`validate` and `run` with exit 2, FILE:LINE and no traceback. Mutations: wrong types, values out of
range, missing and extra fields, aliases and duplicate keys, on every shipped run file (made to run
on tiny data) and on a tiny synthetic training run."""

import contextlib
import copy
import itertools
import re

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privcam.pipelines.cli import main
from privcam.pipelines.config import ATTACKS, RUN_FILES
from privcam.pipelines.shapes import make_shapes_dataset

from conftest import synthetic_run, write_tiny_cifar

SYNTHETIC = synthetic_run({"name": "train", "epochs": 1, "batch_size": 16, "lr": 0.05})
ODD_VALUES = [-1, 0, 1, 3, 2.5, -0.5, float("inf"), "x", "", None, True, [], [1], [28, 28], {}, {"a": 1}]
# Kept as they are: what keeps a run tiny (all of Fashion-MNIST, a webcam without end, or the
# ciphertext-only attack's assignment over every position would take minutes an example).
FIXED = {("data", "source"), ("data", "limit"), ("task", "frames"), ("task", "attacks")}
TINY_TASK = {
    "train": {"epochs": 1},
    "segment": {"epochs": 1},
    "reproduce": {"finetune_epochs": 1},
    # one protection mode: test_tasks runs the attacks in every mode
    "attack": {
        "finetune_epochs": 1,
        "mlp_epochs": 1,
        "histogram_epochs": 1,
        "visual_frames": 8,
        "kpa_trials": 1,
        "modes": ["masked"],
    },
    "webcam": {"frames": 2, "headless": True},
}
INPUT_PATHS = (("data", "path"), ("model", "weights"))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> dict:
    """The folders that the shipped run files for the user's own data are pointed at."""
    folder = tmp_path_factory.mktemp("tiny_data")
    make_shapes_dataset(folder / "shapes", 8, 4, 32, 0)
    return {"cifar10": write_tiny_cifar(folder / "cifar") / "cifar-10-batches-py", "shapes": folder / "shapes"}


def tiny_run_file(name: str, tiny_data: dict) -> dict:
    """Shipped run file `name` on at most 16 items and one epoch, its inputs named by absolute path
    (the mutated copy is written elsewhere); the CIFAR-10 and shapes files get tiny folders of that
    format, and reproduce_cifar10 the weights of a tiny train_cifar10 run."""
    if name == "synthetic":
        return copy.deepcopy(SYNTHETIC)
    data = yaml.safe_load(RUN_FILES.get(name).read_text())
    data["data"] = {**data.get("data", {}), "limit": 16}
    for section, field in INPUT_PATHS:
        if data.get(section, {}).get(field):
            data[section][field] = str(RUN_FILES.get(name).parent / data[section][field])
    source = data["data"].get("source")
    if source == "cifar10":
        data["data"]["root"] = str(tiny_data["cifar10"])
        if data["task"]["name"] == "reproduce":
            data["model"]["weights"] = str(tiny_data["cifar10"].parent / "runs" / "train_cifar10" / "weights.pt")
    if source == "segmentation_folder":
        data["data"]["root"] = str(tiny_data["shapes"])
    data["task"].update(TINY_TASK.get(data["task"]["name"], {}))
    if data["task"]["name"] == "attack":
        data["task"]["attacks"] = [a for a in data["task"].get("attacks", ATTACKS) if a != "ciphertext_only"]
    return data


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
def mutated(draw, base: dict) -> str:
    """`base` as YAML text with up to two fields changed, deleted or added, and maybe a YAML trick."""
    data = copy.deepcopy(base)
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
BASES = ["synthetic", *RUN_FILES.names()]


def base_run_file(name: str, tiny_data: dict, capsys) -> dict:
    """`tiny_run_file(name)`, after the tiny train_cifar10 run that reproduce_cifar10 reads."""
    weights = tiny_data["cifar10"].parent / "runs" / "train_cifar10" / "weights.pt"
    if name == "reproduce_cifar10" and not weights.exists():
        with contextlib.chdir(tiny_data["cifar10"].parent):
            path = tiny_data["cifar10"].parent / "train.yaml"
            path.write_text(yaml.safe_dump(tiny_run_file("train_cifar10", tiny_data)))
            assert main(["run", str(path)]) == 0, capsys.readouterr().err
    return tiny_run_file(name, tiny_data)


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


@pytest.mark.parametrize("name", BASES)
def test_each_shipped_run_file_is_valid_and_runs_on_tiny_data(workdir, capsys, tiny_data, name):
    """Unmutated, every base is accepted and runs: the property's "accepted" branch is reachable."""
    text = yaml.safe_dump(base_run_file(name, tiny_data, capsys), sort_keys=False)
    check(workdir, capsys, text)
    assert main(["validate", str(next(workdir.glob("example*/run.yaml")))]) == 0


def mutated_example(data, tiny_data, capsys) -> str:
    name = data.draw(st.sampled_from(BASES), label="run file")
    return data.draw(mutated(base_run_file(name, tiny_data, capsys)), label="text")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_run_files_are_accepted_and_run_or_refused_clearly(workdir, capsys, tiny_data, data):
    check(workdir, capsys, mutated_example(data, tiny_data, capsys))


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_run_files_longer_run(workdir, capsys, tiny_data, data):
    check(workdir, capsys, mutated_example(data, tiny_data, capsys))
