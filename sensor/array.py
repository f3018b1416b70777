"""One physical array per sensor: fixed patterns defined over the whole array, tile by tile.

Each fixed pattern (PRNU, DSNU, column offsets, dark current non-uniformity, defects) is a field
of standard normal (defects: uniform) values over the
sensor's whole photosite array, drawn from its serial tile by tile: tile (ty, tx) of pattern p
comes from the generator seeded with (serial, p, ty, tx), whatever region asked for it. A capture
reads a region of the array (an offset and a size, in photosites), so two captures of overlapping
regions see the same values on the overlap, and a frame of any size is a crop of one sensor.
Binning reads b x b photosites per pixel; `Region.bin` sums or averages their values.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# Side of a pattern tile in photosites: a 1080p region draws 40 tiles, a 28x28 one a single tile.
TILE = 256
# Pattern ids in the tile seeds; a new pattern gets a new id, never an old one.
PATTERN_IDS = {"prnu": 0, "dsnu": 1, "columns": 2, "dcnu": 3, "defects": 4}
_CHANNEL = {"r": 0, "g": 1, "b": 2}


@dataclass(frozen=True)
class Region:
    """The photosites a capture reads: rows top..top+height, columns left..left+width of the
    array, binned b x b into a (height/b, width/b) frame."""

    top: int
    left: int
    height: int
    width: int
    binning: int = 1

    @classmethod
    def of_frame(
        cls, frame_hw: tuple[int, int], array_hw: tuple[int, int], offset: tuple[int, int] | None, binning: int
    ) -> Region:
        """The region a (H, W) frame reads: (H*b, W*b) photosites at `offset` (row, column), or
        centred on the array (on even rows and columns) when offset is None.

        Raises:
            ValueError: the region does not lie inside the array.
        """
        height, width = frame_hw[0] * binning, frame_hw[1] * binning
        if offset is None:
            offset = (((array_hw[0] - height) // 2) // 2 * 2, ((array_hw[1] - width) // 2) // 2 * 2)
        top, left = offset
        if top < 0 or left < 0 or top + height > array_hw[0] or left + width > array_hw[1]:
            raise ValueError(
                f"a {frame_hw[0]}x{frame_hw[1]} frame with binning {binning} reads photosite rows "
                f"{top}..{top + height} and columns {left}..{left + width}, outside the sensor's array of "
                f"{array_hw[0]}x{array_hw[1]} photosites (array_hw; roi_offset, binning): choose a smaller frame, "
                "another roi_offset or binning"
            )
        return cls(top, left, height, width, binning)

    @property
    def frame_hw(self) -> tuple[int, int]:
        return self.height // self.binning, self.width // self.binning

    def bin(self, values: np.ndarray, reduce: str) -> np.ndarray:
        """(height, width, C) photosite values -> (height/b, width/b, C): "sum" or "mean" of each block."""
        if self.binning == 1:
            return values
        b = self.binning
        blocks = values.reshape(values.shape[0] // b, b, values.shape[1] // b, b, values.shape[2])
        return blocks.sum((1, 3)) if reduce == "sum" else blocks.mean((1, 3))


def pattern_field(serial: int, pattern: str, region: Region, channels: int) -> np.ndarray:
    """(height, width, channels) float32 values of `pattern` over the region's photosites:
    standard normals, or uniform in [0, 1) for "defects"."""
    return _field(serial, pattern, region, channels, TILE)


def column_field(serial: int, pattern: str, region: Region, channels: int) -> np.ndarray:
    """(1, width, channels) float32 standard normals of a per-column pattern over the region's columns."""
    return _field(serial, pattern, Region(0, region.left, 1, region.width), channels, 1)


def _field(serial: int, pattern: str, region: Region, channels: int, tile_rows: int) -> np.ndarray:
    """The region cut out of the tiles (tile_rows x TILE photosites each) that it overlaps."""
    out = np.empty((region.height, region.width, channels), dtype=np.float32)
    bottom, right = region.top + region.height, region.left + region.width
    for ty in range(region.top // tile_rows, (bottom - 1) // tile_rows + 1):
        for tx in range(region.left // TILE, (right - 1) // TILE + 1):
            tile = _tile(serial, pattern, ty, tx, (tile_rows, TILE, channels))
            row0, row1 = max(region.top, ty * tile_rows), min(bottom, (ty + 1) * tile_rows)
            col0, col1 = max(region.left, tx * TILE), min(right, (tx + 1) * TILE)
            out[row0 - region.top : row1 - region.top, col0 - region.left : col1 - region.left] = tile[
                row0 - ty * tile_rows : row1 - ty * tile_rows, col0 - tx * TILE : col1 - tx * TILE
            ]
    return out


@lru_cache(maxsize=8)
def cfa_channel_map(cfa: str, height: int, width: int) -> np.ndarray:
    """(height, width) int64 colour (0 R, 1 G, 2 B) of each photosite under a Bayer pattern such as
    "rggb", for a region that starts on the pattern's phase (an even offset)."""
    pattern = np.array([_CHANNEL[ch] for ch in cfa], dtype=np.int64).reshape(2, 2)
    return np.tile(pattern, (height // 2, width // 2))


def shading_field(array_hw: tuple[int, int], region: Region, corner: float) -> np.ndarray:
    """(height, width, 1) float32 relative illumination of the region's photosites by the cos^4 law,
    1 at the array's centre and `corner` at its corners: cos^4(theta) = (1 + k r^2)^-2, r the
    distance from the centre over the half diagonal, k = corner^-1/2 - 1."""
    half_h, half_w = array_hw[0] / 2, array_hw[1] / 2
    rows = np.arange(region.top, region.top + region.height) + 0.5 - half_h
    cols = np.arange(region.left, region.left + region.width) + 0.5 - half_w
    r2 = (rows[:, None] ** 2 + cols[None, :] ** 2) / (half_h**2 + half_w**2)
    return (1.0 / (1.0 + (corner**-0.5 - 1.0) * r2) ** 2).astype(np.float32)[..., None]


def _tile(serial: int, pattern: str, ty: int, tx: int, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng([serial, PATTERN_IDS[pattern], ty, tx])
    return rng.random(shape, dtype=np.float32) if pattern == "defects" else rng.standard_normal(shape, dtype=np.float32)
