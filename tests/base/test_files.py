"""PNG, figure and MP4 files: written whole or not at all."""

import cv2
import numpy as np
import pytest

from privcam.base.images import subplots, write_figure, write_png
from privcam.base.video import VideoWriter


def test_png_and_figure_files(tmp_path):
    image = np.zeros((8, 10, 3), np.uint8)
    image[..., 0] = 200  # red
    write_png(tmp_path / "a.png", image)
    assert cv2.imread(str(tmp_path / "a.png"))[0, 0].tolist() == [0, 0, 200]  # OpenCV reads BGR
    with pytest.raises(ValueError, match=r"uint8 or uint16 array \(H, W\) or \(H, W, 3\), got ndarray .* float64"):
        write_png(tmp_path / "b.png", np.zeros((4, 4)))
    figure, axis = subplots()
    axis.plot([0, 1], [1, 0])
    write_figure(figure, tmp_path / "plot.png")
    assert cv2.imread(str(tmp_path / "plot.png")) is not None


def test_a_video_appears_only_when_it_is_complete(tmp_path):
    frames = [np.full((16, 24, 3), 30 * i, np.uint8) for i in range(4)]
    with VideoWriter(tmp_path / "ok.mp4", fps=10) as video:
        for frame in frames:
            video.write(frame)
    capture, count = cv2.VideoCapture(str(tmp_path / "ok.mp4")), 0
    while capture.read()[0]:
        count += 1
    assert count == 4
    with pytest.raises(RuntimeError, match="stopped"), VideoWriter(tmp_path / "broken.mp4", fps=10) as video:
        video.write(frames[0])
        raise RuntimeError("stopped")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.mp4"]
