import cv2
import numpy as np

from privcam.pipelines.cli import main

from conftest import write_config

REPO_WEIGHTS = __import__("pathlib").Path(__file__).resolve().parents[2] / "weights" / "fashion_mnist_small_cnn.pt"


def webcam_config(workdir):
    return write_config(
        workdir / "webcam.yaml",
        name="webcam",
        key={"path": "keys/cam.key"},
        sensor={"preset": "generic_cmos"},
        model={"arch": "small_cnn", "num_classes": 10, "in_channels": 1, "weights": str(REPO_WEIGHTS)},
        task={"name": "webcam", "width": 160, "height": 120},
        output={"dir": "runs/webcam"},
    )


def test_headless_run_on_a_video_file(workdir, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    clip = workdir / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10, (200, 150))
    for i in range(12):
        frame = np.full((150, 200, 3), 40, np.uint8)
        cv2.rectangle(frame, (20 + 10 * i, 40), (60 + 10 * i, 100), (230, 230, 230), -1)
        writer.write(frame)
    writer.release()
    record = workdir / "out.mp4"
    args = ["webcam", "--config", str(webcam_config(workdir)), "--source", str(clip), "--record", str(record)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "12 frames, median" in printed and "fps" in printed
    capture = cv2.VideoCapture(str(record))
    count, size = 0, None
    while True:
        ok, image = capture.read()
        if not ok:
            break
        count, size = count + 1, image.shape
    assert count == 12 and size == (264, 1280, 3)
    assert not list(workdir.glob("*.tmp.mp4"))


def test_missing_camera_falls_back_to_the_synthetic_source(workdir, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    assert main(["webcam", "--config", str(webcam_config(workdir)), "--source", "7", "--frames", "5"]) == 0
    printed = capsys.readouterr().out
    assert "no camera 7; using the synthetic source" in printed and "no display" in printed and "5 frames" in printed
    assert (workdir / "runs/webcam/webcam.mp4").exists()


def test_careless_webcam_arguments_are_clear_errors(workdir, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    config = str(webcam_config(workdir))
    (workdir / "a_file").write_text("")
    for args, message in [
        (["--frames", "0"], "task.frames must be >= 1, got 0"),
        (["--source", "missing.mp4", "--frames", "2"], f"'{workdir / 'missing.mp4'}': no such video file"),
        (["--record", "a_file/out.mp4", "--frames", "2"], "a_file is a file, not a folder"),
    ]:
        assert main(["webcam", "--config", config, *args]) == 2, args
        assert message in capsys.readouterr().err, args
    assert not (workdir / "runs/webcam/webcam.mp4").exists()
