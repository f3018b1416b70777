"""What `simulate` writes, read back: the frames of a finished simulate folder, in frame order.

A folder holds identity.json (what its frames depend on), parts/NNNNNN.json (one record per shard:
its frame span, its files and the frames' manifest rows), and either WebDataset tar shards
(shards/NNNNNN.tar; per frame NNNNNN.npy, NNNNNN.json and, with labels, NNNNNN.cls) or one .npz per
frame (frames/NNNNNN.npz). stats.json marks the folder finished.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from ..sensor import Frame

IDENTITY_FILE = "identity.json"
SHARDS, FRAMES, PARTS = "shards", "frames", "parts"


class ShardError(ValueError):
    """A simulate folder that is unfinished, or whose files are not what it says it holds."""


def simulated_frames(folder: str | Path) -> Iterator[tuple[Frame, int | None]]:
    """(frame, label or None) for every frame of a simulate folder, in frame order, one at a time.

    Args:
        folder: the output folder of a finished `privcam run` of task simulate.

    Example:
        >>> revealed = [f.reveal(key) for f, _ in simulated_frames("runs/simulate_fashion_mnist")]  # doctest: +SKIP
    """
    folder = Path(folder)
    identity = _read_json(folder / IDENTITY_FILE, folder)
    parts = sorted((folder / PARTS).glob("*.json"))
    frames = identity.get("frames") if isinstance(identity, dict) else None
    spans = [_read_json(part, folder) for part in parts]
    if not isinstance(frames, int) or sum(span["frames"][1] - span["frames"][0] for span in spans) != frames:
        raise ShardError(f"{folder} is not a finished simulate folder: its shards do not hold all {frames} frames")
    if identity["format"] == "npz":
        for record in spans:
            for name, row in zip(record["files"], record["rows"], strict=True):
                yield Frame.load(folder / name), row["label"]
        return
    import webdataset

    urls = [str(folder / name) for record in spans for name in record["files"]]
    samples = webdataset.WebDataset(urls, shardshuffle=False, nodesplitter=None, workersplitter=None)
    for sample in samples:
        origin = f"{sample['__url__']}:{sample['__key__']}"
        label = sample.get("cls")
        yield Frame.from_sample(sample, origin), None if label is None else int(label)


def as_scenes(section: object, split: str) -> None:
    """The 'shards' data source has no scenes: capture_tensors reads its frames directly."""
    raise ShardError(
        "data source 'shards' holds captured frames, not scenes; tasks train and evaluate read them "
        "with model.keyed: true"
    )


def _read_json(path: Path, folder: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ShardError(f"{folder} is not a finished simulate folder: {path.name} cannot be read ({err})") from None
