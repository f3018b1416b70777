"""A simple ISP for previews and reveals: the raw frame rendered so that it looks like the scene.

black level -> white balance and exposure (the scene's white, `white_photons`, becomes 1 in each
colour) -> lens shading correction (frames in physical order) -> OpenCV demosaicing (Bayer) ->
sRGB encoding -> 8 bits. Every step reads the frame's metadata, so a frame saved to disk renders
the same way.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

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
    linear = data.astype(np.float32) - metadata["black_level_dn"]
    white = np.asarray(_white_dn(metadata), np.float32)
    colours = 3 if cfa != "none" else (1 if data.ndim == 2 else data.shape[2])
    if white.shape != (colours,) or not (white > 0).all():
        raise ValueError(
            f"frame metadata: white_dn must be {colours} positive values, got {metadata.get('white_dn')!r}"
        )
    if cfa != "none":
        linear /= white[cfa_channel_map(cfa, *data.shape[:2])]
    else:
        linear = linear.reshape(*data.shape[:2], -1) / white
    corner = metadata.get("lens_shading_corner", 1.0)
    if physical_order and corner < 1 and "region" in metadata:
        region = Region(*metadata["region"])
        if region.frame_hw != data.shape[:2] or not 1 <= region.binning <= MAX_BINNING:
            raise ValueError(
                f"frame metadata: region {metadata['region']} does not fit a {data.shape[:2]} frame "
                f"binned 1 to {MAX_BINNING} times"
            )
        shading = _shading(tuple(metadata["array_hw"]), tuple(metadata["region"]), corner)
        linear = linear / (shading if cfa == "none" else shading[..., 0])
    codes = (np.clip(linear, 0, 1) * _STEPS + 0.5).astype(np.uint16)
    if cfa != "none":
        codes = cv2.cvtColor(codes, BAYER_TO_RGB[cfa])
    elif codes.shape[2] == 1:
        codes = np.repeat(codes, 3, axis=2)
    return np.take(_SRGB_LUT, codes)


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
