"""MP4 files written frame by frame under a temporary name, then renamed: an interrupted run never
leaves a half-written video under the final name."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


class VideoWriter:
    """An MP4 (mp4v) of RGB uint8 frames (H, W, 3), all of one size.

    Use it as a context manager: the file appears under `path` when the block ends without error,
    and the temporary file is removed otherwise.

    Example:
        >>> with VideoWriter("out.mp4", fps=25) as video:  # doctest: +SKIP
        ...     video.write(frame)
    """

    def __init__(self, path: str | os.PathLike, fps: float) -> None:
        self.path = Path(path)
        self.fps = float(fps)
        self.frames = 0
        self._tmp = self.path.with_name(f".{self.path.stem}.tmp.mp4")
        self._writer: Any = None

    def write(self, frame: Any) -> None:
        import cv2

        if self._writer is None:
            height, width = frame.shape[:2]
            self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (width, height))
            if not self._writer.isOpened():
                raise ValueError(f"OpenCV cannot write the video {self.path}")
        self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if self._writer is not None:
            self._writer.release()
        if exc_type is None and self.frames:
            self._tmp.replace(self.path)
        else:
            self._tmp.unlink(missing_ok=True)
