"""A simple ISP for previews and reveals: the raw frame rendered so that it looks like the scene.

black level -> white balance and exposure (the scene's white, `white_photons`, becomes 1 in each
colour) -> lens shading correction (frames in physical order) -> 16-bit linear codes (one parallel
pass) -> OpenCV demosaicing (Bayer) -> sRGB encoding by a 16-bit lookup table -> 8 bits. Every step
reads the frame's metadata, so a frame saved to disk renders the same way.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
from numba import njit, prange

from ..base.threads import on_torch_threads
from .array import Region, cfa_channel_map, shading_field

BAYER_TO_RGB = {
    "rggb": cv2.COLOR_BayerRGGB2RGB,
    "bggr": cv2.COLOR_BayerBGGR2RGB,
    "grbg": cv2.COLOR_BayerGRBG2RGB,
    "gbrg": cv2.COLOR_BayerGBRG2RGB,
}
# The largest binning a saved frame's metadata may claim: the shading map covers binning^2 photosites
# per pixel, so a crafted value could otherwise ask for any amount of memory.
MAX_BINNING = 16
# Linear values go through 16 bits to one lookup table for the sRGB curve.
_STEPS = 2**16 - 1
_NO_SHADING = np.empty(0, np.float32)


def render_rgb8(data: np.ndarray, metadata: dict, physical_order: bool) -> np.ndarray:
    """(H, W) or (H, W, C) raw codes -> (H, W, 3) uint8 sRGB.

    Args:
        data: the frame's codes, uint16.
        metadata: the frame's metadata (black level, bit depth, cfa, white level per colour,
            lens shading, region of the array).
        physical_order: the frame is in the sensor's own order (not a protected readout): only
            then is lens shading corrected, since the map is a function of the position.
    """
    cfa = metadata["cfa"]
    height, width = data.shape[:2]
    white = np.asarray(_white_dn(metadata), np.float32)
    colours = 3 if cfa != "none" else (1 if data.ndim == 2 else data.shape[2])
    if white.shape != (colours,) or not (white > 0).all():
        raise ValueError(
            f"frame metadata: white_dn must be {colours} positive values, got {metadata.get('white_dn')!r}"
        )
    white = white[cfa_channel_map(cfa, height, width)].reshape(-1, 1) if cfa != "none" else white[None]
    shading = _NO_SHADING
    corner = metadata.get("lens_shading_corner", 1.0)
    if physical_order and corner < 1 and "region" in metadata:
        region = Region(*metadata["region"])
        if region.frame_hw != data.shape[:2] or not 1 <= region.binning <= MAX_BINNING:
            raise ValueError(
                f"frame metadata: region {metadata['region']} does not fit a {data.shape[:2]} frame "
                f"binned 1 to {MAX_BINNING} times"
            )
        shading = _shading(tuple(metadata["array_hw"]), tuple(metadata["region"]), corner).reshape(-1)
    flat = np.ascontiguousarray(data, dtype=np.uint16).reshape(height * width, -1)
    codes = np.empty(flat.shape, np.uint16)
    _linear_codes(flat, np.float32(metadata["black_level_dn"]), white, shading, codes)
    if cfa != "none":
        codes = cv2.cvtColor(codes.reshape(height, width), BAYER_TO_RGB[cfa]).reshape(height * width, 3)
    rgb = np.empty((height * width, 3), np.uint8)
    _lookup(codes, _SRGB_LUT, rgb)
    return rgb.reshape(height, width, 3)


@on_torch_threads
@njit(parallel=True, cache=True)
def _linear_codes(data, black, white, shading, out):
    """out = round(clip((data - black) / white / shading, 0, 1) * _STEPS), float32 throughout.
    data and out (P, C); white (P, 1) (a colour per Bayer photosite) or (1, C); shading (P,) or empty."""
    row_step = 1 if white.shape[0] > 1 else 0  # white's row is the pixel's, or row 0 for all
    column_step = 1 - row_step
    shaded = shading.shape[0] > 0
    steps, half, one, zero = np.float32(_STEPS), np.float32(0.5), np.float32(1.0), np.float32(0.0)
    for p in prange(data.shape[0]):
        for c in range(data.shape[1]):
            value = (np.float32(data[p, c]) - black) / white[p * row_step, c * column_step]
            if shaded:
                value = value / shading[p]
            value = min(max(value, zero), one)
            out[p, c] = np.uint16(value * steps + half)


@on_torch_threads
@njit(parallel=True, cache=True)
def _lookup(codes, lut, out):
    """out (P, 3) = lut[codes], codes (P, 3) or (P, 1) (grey, repeated in each colour)."""
    grey = codes.shape[1] == 1
    for p in prange(codes.shape[0]):
        for c in range(3):
            out[p, c] = lut[codes[p, 0 if grey else c]]


def _white_dn(metadata: dict) -> list[float]:
    """DN above black of the scene's white in each colour; frames saved before white levels were
    recorded use the ADC's full range, balanced by the QE."""
    if "white_dn" in metadata:
        return metadata["white_dn"]
    top = 2 ** metadata["bit_depth"] - 1 - metadata["black_level_dn"]
    qe = metadata.get("qe") or [1.0]
    return [top * q / max(qe) for q in qe]


@lru_cache(maxsize=8)
def _shading(array_hw: tuple[int, int], region: tuple[int, ...], corner: float) -> np.ndarray:
    cut = Region(*region)
    return cut.bin(shading_field(array_hw, cut, corner), "mean")


def _srgb_lut() -> np.ndarray:
    linear = np.arange(_STEPS + 1, dtype=np.float64) / _STEPS
    encoded = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return (encoded * 255 + 0.5).astype(np.uint8)


_SRGB_LUT = _srgb_lut()
