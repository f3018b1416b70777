"""Atomic file writes: a temporary name in the same folder, then a rename, so no reader sees half a file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

TEMPORARY_PATTERNS = (".*.tmp", ".*.tmp.mp4")  # what atomic_write and the video writer leave if killed


def remove_temporaries(folder: str | os.PathLike, owner_mark: str) -> list[Path]:
    """Delete the temporary files a killed writer left under `folder`; returns them. Sub-folders
    holding a file named `owner_mark` belong to another owner (another run) and are left alone.
    Call it only while no writer can be at work there (privcam holds the run folder's lock)."""
    folder, removed = Path(folder), []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not (Path(root) / d / owner_mark).exists()]
        for name in files:
            path = Path(root) / name
            if any(path.match(pattern) for pattern in TEMPORARY_PATTERNS):
                path.unlink()
                removed.append(path)
    return removed


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", permissions: int = 0o644) -> Iterator[IO]:
    """Open a temporary file beside `path`; on success it replaces `path`, on error it is removed.

    Args:
        path: the file to write.
        mode: "wb" or "w".
        permissions: the file's mode bits (0o600 for key files).

    Example:
        >>> with atomic_write("runs/metrics.json", "w") as f:  # doctest: +SKIP
        ...     f.write("{}")
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, permissions)
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def unwritable_reason(folder: str | os.PathLike) -> str | None:
    """Why files cannot be made in `folder` (created with its missing parents), or None if they can:
    checked before a run starts, so it fails at once instead of after hours of work."""
    existing = Path(folder)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None
