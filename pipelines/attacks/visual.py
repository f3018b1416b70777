"""Visual privacy: how much of the scene a person sees in a frame (PSNR and SSIM)."""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def psnr(reference: np.ndarray, image: np.ndarray, data_range: float) -> float:
    """Peak signal-to-noise ratio in dB of `image` against `reference` (same shape), values in [0, data_range]."""
    return float(peak_signal_noise_ratio(reference, image, data_range=data_range))


def ssim(reference: np.ndarray, image: np.ndarray, data_range: float) -> float:
    """Structural similarity of two grey images (H, W), values in [0, data_range]."""
    return float(structural_similarity(reference, image, data_range=data_range))
