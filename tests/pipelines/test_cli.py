import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from privcam.pipelines.cli import main

from conftest import synthetic_run, write_config


def test_validate_names_file_line_field_and_allowed_values(workdir, capsys):
    path = workdir / "run.yaml"
    path.write_text("name: x\ntask:\n  name: train\ndata:\n  source: synthetic\n  splt: test\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:6: unknown field 'data.splt' (did you mean 'split'?); allowed:" in err
    assert "Traceback" not in err

    path.write_text("name: x\ntask:\n  name: trian\n")
    assert main(["validate", str(path)]) == 2
    assert (
        f"{path}:3: unknown task 'trian' (did you mean 'train'?); allowed: attack, evaluate, reproduce"
        in capsys.readouterr().err
    )

    path.write_text("name: x\ntask: {name: train, epochs: two}\n")
    assert main(["validate", str(path)]) == 2
    assert "task.epochs must be an integer, got 'two'" in capsys.readouterr().err

    path.write_text("name: x\ntask: {name: train}\nmodel: {backend: fast}\n")
    assert main(["validate", str(path)]) == 2
    assert f"{path}:3: model.backend is 'fast'; allowed: gather, deform" in capsys.readouterr().err

    path.write_text("name: x\ntask: {name: train}\nsensor: {preset: phone}\n")
    assert main(["validate", str(path)]) == 2
    assert "sensor.preset is 'phone'; allowed: generic_cmos" in capsys.readouterr().err

    path.write_text("name: x\ntask: {name: train}\nsensor: {device: tpu}\n")
    assert main(["validate", str(path)]) == 2
    assert f"{path}:3: sensor.device: unknown torch device 'tpu'" in capsys.readouterr().err

    path.write_text(
        "name: x\ntask: {name: train}\naugment:\n  - RandomHorizontalFlip\n  - {name: RandomCropp, size: [8, 8]}\n"
    )
    assert main(["validate", str(path)]) == 2
    assert (
        f"{path}:5: unknown kornia augmentation 'RandomCropp' (did you mean 'RandomCrop'?)" in capsys.readouterr().err
    )

    path.write_text("name: x\ntask: {name: train}\naugment:\n  - {name: RandomCrop, sise: 8}\n")
    assert main(["validate", str(path)]) == 2
    assert f"{path}:4: RandomCrop(sise=8): " in capsys.readouterr().err

    path.write_text("name: x\ntask: {name: train}\nmodel: {keyed: true}\naugment: [RandomErasing]\n")
    assert main(["validate", str(path)]) == 2
    assert f"{path}:4: RandomErasing moves pixels and has no keyed form" in capsys.readouterr().err

    path.write_text("name: x\ntask: {name: simulate}\naugment: [RandomHorizontalFlip]\n")
    assert main(["validate", str(path)]) == 2
    assert "task 'simulate' does not train; augment applies to training" in capsys.readouterr().err

    path.write_text("name: x\ntask: {name: evaluate}\n")
    assert main(["validate", str(path)]) == 2
    assert f"{path}:1: task 'evaluate' needs model.weights, a trained plain model" in capsys.readouterr().err

    path.write_text("name: x\ntask: {name: evaluate}\nmodel:\n  weights: missing.pt\n")
    assert main(["validate", str(path)]) == 2
    assert f"{path}:4: weights file {path.parent / 'missing.pt'} does not exist" in capsys.readouterr().err

    path.write_text("name: x\ntask: {name: simulate}\nsensor: none\n")
    assert main(["validate", str(path)]) == 2
    assert "task 'simulate' needs a sensor preset, not 'none'" in capsys.readouterr().err

    path.write_text("name: x\ntask: {name: train}\nsensor:\n  overrides: {readout: {mode: fixed}}\n")
    assert main(["validate", str(path)]) == 2
    assert "readout.mode is 'fixed'; allowed: paper, per_frame" in capsys.readouterr().err

    path.write_text("name: x\ntask: [unclosed\n")
    assert main(["validate", str(path)]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_sensor_none_shorthand(workdir):
    from privcam.pipelines.config import load_run_config

    path = write_config(workdir / "run.yaml", **synthetic_run({"name": "train"}, sensor="none"))
    config = load_run_config(path)
    assert config.sensor.preset == "none" and not config.protected


def test_set_overrides_any_field(workdir, capsys):
    path = write_config(workdir / "run.yaml", **synthetic_run({"name": "train", "epochs": 1}))
    assert main(["validate", str(path), "--set", "task.epochs=3", "--set", "model.backend=deform"]) == 0
    assert main(["validate", str(path), "--set", "task.epochs=x"]) == 2
    assert "--set: task.epochs must be an integer" in capsys.readouterr().err
    assert main(["validate", str(path), "--set", "nonsense"]) == 2


def test_keygen_and_info(workdir, capsys):
    assert main(["keygen", "keys/a.key"]) == 0
    key_file = workdir / "keys" / "a.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().strip() not in capsys.readouterr().out
    assert main(["keygen", "keys/a.key"]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "phone_imx363" in out and "small_cnn" in out and "reproduce" in out and "fashion_mnist" in out
    assert "keyed augmentations: RandomAffine" in out and "RandomEqualize" in out


def test_run_writes_its_folder(workdir, capsys):
    path = write_config(workdir / "run.yaml", **synthetic_run({"name": "train", "epochs": 1, "batch_size": 16}))
    assert main(["run", str(path)]) == 0
    out = workdir / "runs" / "tiny"
    for name in ("config.yaml", "metrics.json", "run.log", "checkpoint.pt", "weights.pt", "training.png"):
        assert (out / name).exists(), name
    assert yaml.safe_load((out / "config.yaml").read_text())["task"]["epochs"] == 1
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 1
    key_file = workdir / "keys" / "test.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().strip() not in (out / "run.log").read_text()


def test_help_info_and_validate_import_no_heavy_module(workdir):
    """The quick commands start at once because they import neither torch, kornia nor OpenCV
    (benchmarks/cli_startup.py times them)."""
    path = write_config(workdir / "run.yaml", **synthetic_run({"name": "train", "epochs": 1}))
    script = (
        "import sys\n"
        "from privcam.pipelines.cli import main\n"
        f"assert main(['info']) == 0 and main(['validate', {str(path)!r}]) == 0\n"
        "heavy = sorted({'torch', 'kornia', 'cv2', 'numba', 'torchvision'} & set(sys.modules))\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "valid (train task" in result.stdout


def test_a_failed_run_leaves_the_finished_runs_files_alone(workdir, monkeypatch, capsys):
    path = write_config(workdir / "run.yaml", **synthetic_run({"name": "train", "epochs": 1, "batch_size": 16}))
    assert main(["run", str(path)]) == 0
    out = workdir / "runs" / "tiny"
    before = {name: (out / name).read_bytes() for name in ("config.yaml", "metrics.json")}

    class Failing:
        def run(self, ctx):
            raise ValueError("the task failed half-way")

    monkeypatch.setattr("privcam.pipelines.runner.task_of", lambda config: Failing())
    again = write_config(workdir / "again.yaml", **synthetic_run({"name": "train", "epochs": 7, "batch_size": 16}))
    assert main(["run", str(again)]) == 2
    assert "the task failed half-way" in capsys.readouterr().err
    assert {name: (out / name).read_bytes() for name in before} == before


def test_a_second_run_on_a_folder_in_use_is_refused(workdir, capsys):
    from filelock import FileLock

    from privcam.pipelines.runner import LOCK_FILE

    path = write_config(workdir / "run.yaml", **synthetic_run({"name": "train", "epochs": 1, "batch_size": 16}))
    (workdir / "runs" / "tiny").mkdir(parents=True)
    with FileLock(workdir / "runs" / "tiny" / LOCK_FILE):  # another run holds the folder
        assert main(["run", str(path)]) == 2
    assert "is in use by another privcam run" in capsys.readouterr().err
    assert not (workdir / "runs" / "tiny" / "metrics.json").exists()
    assert main(["run", str(path)]) == 0  # free again


def test_sigterm_ends_a_run_like_ctrl_c(workdir):
    path = write_config(
        workdir / "run.yaml", **synthetic_run({"name": "train", "epochs": 500, "batch_size": 16}, name="long")
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "privcam.pipelines.cli", "run", str(path)], stderr=subprocess.PIPE, text=True
    )
    checkpoint = workdir / "runs" / "long" / "checkpoint.pt"
    for _ in range(600):  # until training is under way (imports take seconds)
        if checkpoint.exists() or process.poll() is not None:
            break
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 2 and "interrupted" in err, (process.returncode, err[-3000:])
    assert not list((workdir / "runs" / "long").glob("*.tmp*"))


def test_an_interrupted_command_exits_2_even_from_code_run_by_exec(tmp_path):
    """Under `python -m`, CPython 3.11 ends a process by SIGINT, even after the KeyboardInterrupt was
    handled, when it was raised inside exec()'d code: the entry point leaves with main's status."""
    (tmp_path / "interrupted_in_exec.py").write_text(
        "import sys\n"
        "from privcam.pipelines import cli\n"
        "SOURCE = 'import os, signal, time\\nos.kill(os.getpid(), signal.SIGTERM)\\nwhile True: time.sleep(0.01)'\n"
        "cli.COMMANDS['info'] = lambda args: exec(SOURCE)\n"
        "cli.entry() if sys.argv.pop(1) == 'entry' else sys.exit(cli.main())\n"
    )
    for how, code in (("entry", 2), ("main", -signal.SIGINT)):  # main alone shows the trap
        result = subprocess.run(
            [sys.executable, "-m", "interrupted_in_exec", how, "info"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == code and "privcam info: error: interrupted" in result.stderr, (how, result)


def test_sigterm_during_an_import_waits_for_the_import(tmp_path):
    """SIGTERM landing in an import (or a numba compilation) is raised once the import has finished:
    a KeyboardInterrupt inside one can leave a library half-built or be lost."""
    (tmp_path / "slow_import.py").write_text(
        "import os, pathlib, signal, time\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "for _ in range(30):\n"
        "    time.sleep(0.01)\n"
        "pathlib.Path('imported').touch()\n"
    )
    (tmp_path / "interrupted_in_import.py").write_text(
        "import time\n"
        "from privcam.pipelines import cli\n"
        "def command(args):\n"
        "    import slow_import\n"
        "    time.sleep(30)\n"
        "cli.COMMANDS['info'] = command\n"
        "cli.entry()\n"
    )
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "interrupted_in_import", "info"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "privcam info: error: interrupted" in result.stderr, result
    assert (tmp_path / "imported").exists() and time.monotonic() - started < 25


def assert_validate_reports_in_order(path, capsys, lines: list[str]) -> None:
    assert main(["validate", str(path)]) == 2
    text = capsys.readouterr().err
    positions = [text.find(line) for line in lines]
    assert -1 not in positions and positions == sorted(positions), text


def test_validate_reports_every_error_at_once_in_file_order(workdir, capsys):
    path = workdir / "run.yaml"
    path.write_text(
        "name: x\n"  # 1
        "task:\n"  # 2
        "  name: train\n"  # 3
        "  batch_size: 0\n"  # 4
        "  epochs: -1\n"  # 5
        "  lr: .inf\n"  # 6
        "data:\n"  # 7
        "  source: synthetic\n"  # 8
        "  classes: 0\n"  # 9
        "  size: [28]\n"  # 10
        "  limit: -1\n"  # 11
        "model:\n"  # 12
        "  num_classes: 0\n"  # 13
        "output:\n"  # 14
        "  dir: 'runs/{nam}'\n"  # 15
    )
    expected = [
        f"{path}:9: data.classes must be >= 1, got 0",
        f"{path}:10: data.size must be a list of 2 values, got 1",
        f"{path}:11: data.limit must be >= 1, got -1",
        f"{path}:13: model.num_classes must be >= 1, got 0",
    ]
    assert_validate_reports_in_order(path, capsys, expected)
    # the task's own fields and output.dir are checked once the file's sections are built
    path.write_text(
        path.read_text().replace("  classes: 0\n  size: [28]\n  limit: -1\n", "").replace("_classes: 0", "_classes: 3")
    )
    expected = [
        f"{path}:4: task.batch_size must be >= 1, got 0",
        f"{path}:5: task.epochs must be >= 1, got -1",
        f"{path}:6: task.lr must be a finite number, got inf",
        f"{path}:12: output.dir 'runs/{{nam}}' may use only {{name}}",
    ]
    assert_validate_reports_in_order(path, capsys, expected)


def test_validate_checks_named_files_and_the_output_folder(workdir, capsys):
    path = workdir / "run.yaml"
    (workdir / "a_file").write_text("")
    path.write_text(
        "name: x\ntask: {name: simulate}\ndata:\n  source: video\n  path: missing.mp4\noutput:\n  dir: a_file/run\n"
    )
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:5: video file {workdir / 'missing.mp4'} does not exist" in err
    assert f"{path}:7: output folder a_file/run: a_file is a file, not a folder" in err
    path.write_text("name: x\ntask: {name: train}\ndata: {source: image_folder, root: nowhere}\n")
    assert main(["validate", str(path)]) == 2
    assert f"{path}:3: data.root {workdir / 'nowhere'} is not a folder" in capsys.readouterr().err
    (workdir / "shapes" / "train" / "images").mkdir(parents=True)
    (workdir / "shapes" / "train" / "masks").mkdir()
    path.write_text("name: x\ntask: {name: segment}\ndata: {source: segmentation_folder, root: shapes}\n")
    assert main(["validate", str(path)]) == 2
    assert (
        f"{path}:3: {workdir / 'shapes' / 'test'} needs images/ and masks/, the test split" in capsys.readouterr().err
    )


def test_keygen_and_demo_key_mistakes_are_clear_errors(workdir, capsys):
    from privcam.pipelines.tasks.demo import main as demo_main

    (workdir / "folder").mkdir()
    assert main(["keygen", str(workdir / "folder"), "--force"]) == 2
    assert "is a folder; a key file goes there" in capsys.readouterr().err
    (workdir / "loose.key").write_text("00" * 32 + "\n")
    os.chmod(workdir / "loose.key", 0o644)
    for key_file, message in [("missing.key", "does not exist"), ("loose.key", "chmod 600")]:
        with pytest.raises(SystemExit) as info:
            demo_main(["--key", str(workdir / key_file), "--out", str(workdir / "demo")])
        assert info.value.code == 2 and message in capsys.readouterr().err


def test_a_run_removes_what_a_killed_run_left_half_written(workdir, capsys):
    path = write_config(workdir / "run.yaml", **synthetic_run({"name": "train", "epochs": 1, "batch_size": 16}))
    out = workdir / "runs" / "tiny"
    (out / "sub").mkdir(parents=True)
    (out / "other").mkdir()
    leftovers = [out / ".metrics.json.abc123.tmp", out / "sub" / ".clip.tmp.mp4"]
    kept = [out / "other" / ".f.x.tmp", out / "notes.tmp.txt"]
    (out / "other" / ".privcam.lock").write_text("")  # another run's folder inside this one
    for file in leftovers + kept:
        file.write_text("half")
    assert main(["run", str(path)]) == 0
    assert not any(f.exists() for f in leftovers) and all(f.exists() for f in kept)
    assert "left by a run that was killed" in (out / "run.log").read_text()


def test_a_model_with_fewer_outputs_than_the_data_has_classes_is_refused(workdir, capsys):
    path = workdir / "run.yaml"
    path.write_text("name: x\ntask: {name: train}\ndata: {source: fashion_mnist}\nmodel:\n  num_classes: 3\n")
    assert main(["validate", str(path)]) == 2
    assert (
        f"{path}:5: model.num_classes is 3, but data source 'fashion_mnist' has 10 classes" in capsys.readouterr().err
    )
    folder = workdir / "pictures"
    for cls in "abcd":  # four classes, found only when the files are read
        (folder / cls).mkdir(parents=True)
        cv2.imwrite(str(folder / cls / "0.png"), np.zeros((8, 8), np.uint8))
    path.write_text(
        "name: x\ntask: {name: evaluate}\nsensor: none\n"
        f"data: {{source: image_folder, root: {folder}, size: [28, 28]}}\n"
        f"model:\n  num_classes: 3\n  weights: {workdir / 'w.pt'}\n"
    )
    from privcam.nets import create_model
    from privcam.pipelines.config import load_run_config
    from privcam.pipelines.models import save_weights

    save_weights(create_model("small_cnn", num_classes=3, in_channels=1), workdir / "w.pt", load_run_config(path), {})
    assert main(["run", str(path)]) == 2
    assert (
        f"{path}:6: model.num_classes is 3, but data source 'image_folder' has class index 3" in capsys.readouterr().err
    )


def test_a_frame_size_the_architecture_cannot_take_is_refused(workdir, capsys):
    path = workdir / "run.yaml"
    path.write_text("name: x\ntask: {name: train}\ndata:\n  source: synthetic\n")
    assert main(["validate", str(path)]) == 2
    assert f"{path}:3: small_cnn takes 28x28 frames, the data gives 32x32" in capsys.readouterr().err
    path.write_text("name: x\ntask: {name: train}\ndata:\n  source: synthetic\n  size: [28, 28]\n")
    assert main(["validate", str(path)]) == 0


def test_a_full_disk_is_a_clear_error_and_leaves_no_half_files(workdir, capsys, monkeypatch):
    import errno

    path = write_config(workdir / "run.yaml", **synthetic_run({"name": "train", "epochs": 1, "batch_size": 16}))

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "error: No space left on device" in err and "Traceback" not in err
    assert not [p for p in workdir.rglob("*.tmp*") if p.is_file()]
    assert not (workdir / "runs/tiny/metrics.json").exists()


def test_a_model_that_cannot_read_the_sensors_frames_is_refused(workdir, capsys):
    path = workdir / "run.yaml"
    path.write_text(
        "name: x\ntask: {name: train}\ndata: {source: synthetic, size: [28, 28]}\n"
        "sensor: {preset: generic_cmos}\nmodel:\n  in_channels: 1\n"
    )
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:6: model.in_channels is 1, but sensor 'generic_cmos' sends frames of 3 channels" in err


def test_frames_that_do_not_fit_the_sensors_array_are_refused_by_validate(workdir, capsys):
    path = workdir / "run.yaml"
    path.write_text(
        "name: x\ntask: {name: train}\ndata: {source: synthetic, size: [28, 28]}\n"
        "sensor:\n  preset: generic_cmos\n  overrides: {array_hw: [64, 64], roi_offset: [50, 0]}\n"
    )
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:6: a 28x28 frame with binning 1 reads photosite rows 50..78" in err
    assert "outside the sensor's array of 64x64 photosites" in err


def test_weights_made_for_another_model_are_refused_by_validate(workdir, capsys):
    weights = Path(__file__).resolve().parents[2] / "weights" / "fashion_mnist_vit_tiny.pt"
    path = workdir / "run.yaml"
    path.write_text(
        "name: x\ntask: {name: evaluate}\ndata: {source: synthetic, size: [28, 28]}\n"
        f"sensor: {{preset: machine_vision_12bit}}\nmodel:\n  weights: {weights}\n  in_channels: 1\n"
    )
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:6: {weights} holds weights for model.arch 'vit_tiny', but model.arch is 'small_cnn'" in err


@pytest.mark.parametrize(
    ("task", "model", "message"),
    [
        ("segment", {"arch": "small_cnn"}, "needs a segmentation architecture"),
        ("train", {"arch": "unet_small"}, "needs a classifier, not 'unet_small'"),
        ("segment", {"arch": "unet_small", "in_channels": 3}, "model.in_channels is 3, but sensor"),
    ],
)
def test_validate_refuses_a_model_the_task_cannot_use(workdir, capsys, task, model, message):
    path = write_config(workdir / "run.yaml", **synthetic_run({"name": task}, model=model))
    assert main(["validate", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_an_error_a_library_raises_from_the_interruption_still_reads_interrupted(monkeypatch, capsys):
    """SIGTERM raises KeyboardInterrupt wherever the run is; code that wraps it in its own error
    (as a library may) still ends the run as interrupted, exit 2, not with a traceback."""
    from privcam.pipelines import cli

    def wrapping_command(args):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except KeyboardInterrupt as err:
            raise RuntimeError("wrapped by a library") from err

    monkeypatch.setitem(cli.COMMANDS, "info", wrapping_command)
    monkeypatch.setattr(cli, "_TERMINATED", False)
    assert main(["info"]) == 2
    assert "privcam info: error: interrupted" in capsys.readouterr().err
    monkeypatch.setattr(cli, "_TERMINATED", False)
    monkeypatch.setitem(cli.COMMANDS, "info", lambda args: (_ for _ in ()).throw(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):  # without SIGTERM, a bug keeps its traceback
        main(["info"])
