"""Pictures for people: PNG files of images and of matplotlib figures, written atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .atomic import atomic_write


def write_png(path: str | os.PathLike, image: Any) -> Path:
    """An 8- or 16-bit PNG of an image, written atomically.

    Args:
        path: the PNG file.
        image: uint8 or uint16 array (H, W) or RGB (H, W, 3).
    """
    import cv2
    import numpy as np

    path = Path(path)
    if not isinstance(image, np.ndarray) or image.dtype not in (np.uint8, np.uint16) or image.ndim not in (2, 3):
        raise ValueError(f"write_png expects a uint8 or uint16 array (H, W) or (H, W, 3), got {_describe(image)}")
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode {path.name}")
    with atomic_write(path) as f:
        f.write(encoded.tobytes())
    return path


def subplots(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """matplotlib's pyplot.subplots on the file-only Agg backend (no display is ever needed).
    Pass the figure to write_figure, which saves and closes it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def write_figure(figure: Any, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG atomically and close it (pyplot keeps open figures alive)."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    with atomic_write(path) as f:
        figure.savefig(f, format="png", dpi=dpi)
    plt.close(figure)
    return Path(path)


def _describe(value: Any) -> str:
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    return f"{type(value).__name__} of shape {shape} and dtype {dtype}" if shape is not None else type(value).__name__
