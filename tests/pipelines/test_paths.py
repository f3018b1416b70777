"""Paths in a run file: what a run reads is relative to the run file's folder (to the working folder
when given with --set), what it writes is relative to the working folder; shipped run files are named."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from privcam.pipelines.cli import main
from privcam.pipelines.config import RUN_FILES, load_run_config
from privcam.pipelines.validate import validate

from conftest import write_config


def picture_folder(folder: Path) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    return folder


def test_inputs_are_read_from_the_run_files_folder_and_outputs_go_to_the_working_folder(workdir, capsys, monkeypatch):
    project = workdir / "project"
    picture_folder(project / "pictures")
    path = write_config(
        project / "simulate.yaml",
        name="pics",
        key={"path": "keys/k.key"},
        data={"source": "image_folder", "root": "pictures"},
        sensor={"preset": "generic_cmos"},
        task={"name": "simulate", "video": False},
    )
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_run_config(path).data.root == str(project / "pictures")
    assert main(["run", str(path)]) == 0, capsys.readouterr().err
    assert (elsewhere / "runs" / "pics" / "manifest.json").exists() and (elsewhere / "keys" / "k.key").exists()
    assert not (project / "runs").exists()
    recorded = yaml.safe_load((elsewhere / "runs" / "pics" / "config.yaml").read_text())
    assert recorded["data"]["root"] == str(project / "pictures")  # absolute: the record runs from anywhere
    monkeypatch.chdir(workdir)
    assert main(["validate", str(elsewhere / "runs" / "pics" / "config.yaml")]) == 0, capsys.readouterr().err


def test_set_paths_are_relative_to_the_working_folder_and_tilde_is_home(workdir, monkeypatch):
    picture_folder(workdir / "mine")
    (workdir / "configs").mkdir()
    path = write_config(
        workdir / "configs" / "run.yaml", name="x", data={"source": "image_folder"}, task={"name": "simulate"}
    )
    assert load_run_config(path, ["data.root=mine"]).data.root == str(workdir / "mine")
    monkeypatch.setenv("HOME", str(workdir))
    assert load_run_config(path, ["data.root=~/mine"]).data.root == str(workdir / "mine")
    assert load_run_config(path, [f"data.root={workdir / 'mine'}"]).data.root == str(workdir / "mine")
    webcam = write_config(workdir / "configs" / "cam.yaml", name="w", task={"name": "webcam", "source": "clip.mp4"})
    assert load_run_config(webcam).task["source"] == "clip.mp4"  # task fields are built by validate
    for source, expected in [
        ("clip.mp4", str(workdir / "configs" / "clip.mp4")),
        ("0", "0"),
        ("synthetic", "synthetic"),
    ]:
        write_config(webcam, name="w", task={"name": "webcam", "source": source})
        assert validate(load_run_config(webcam)).source == expected


def test_shipped_run_files_are_named_from_any_folder(workdir, capsys):
    assert {"reproduce_fashion_mnist", "webcam", "simulate_video"} <= set(RUN_FILES.names())
    config = load_run_config("reproduce_fashion_mnist")
    assert Path(config.model.weights).is_file() and Path(config.model.weights).is_absolute()
    assert Path(load_run_config("simulate_video").data.path).is_file()
    assert main(["validate", "attack_video"]) == 0
    assert main(["validate", "configs/webcam.yaml"]) == 2
    assert "no such run file (the shipped one is named 'webcam': privcam run webcam)" in capsys.readouterr().err
    assert main(["validate", "reproduce_fashion_mnst"]) == 2
    assert "(did you mean 'reproduce_fashion_mnist'?)" in capsys.readouterr().err


@pytest.mark.parametrize("name", RUN_FILES.names())
def test_every_shipped_run_file_validates_or_names_what_the_user_must_give(workdir, capsys, name):
    code = main(["validate", name])
    err = capsys.readouterr().err
    if code == 2:  # the run files for the user's own data say which field to set
        assert "--set data.root=PATH" in err or "--set model.weights=PATH" in err, err
        assert name in ("train_cifar10", "reproduce_cifar10", "segment_shapes"), err
    else:
        assert code == 0, err


def test_named_weights_must_exist_for_every_task(workdir, capsys):
    path = write_config(workdir / "cam.yaml", name="w", model={"weights": "gone.pt"}, task={"name": "webcam"})
    assert main(["validate", str(path)]) == 2
    assert f"{path}:3: weights file {workdir / 'gone.pt'} does not exist" in capsys.readouterr().err
