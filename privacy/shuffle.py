"""Apply a readout permutation to frames: torch (..., H, W) or numpy (H, W[, C])."""

from __future__ import annotations

import warnings
from typing import TypeVar

import numpy as np
import torch

from .schedule import inverse_permutation

Frame = TypeVar("Frame", np.ndarray, torch.Tensor)


def shuffle(x: Frame, perm: np.ndarray | torch.Tensor) -> Frame:
    """Plain order -> keyed order: out.flat[j] = x.flat[perm[j]] over the (H, W) positions.

    torch tensors are (..., H, W) (channels before space, as networks use them);
    numpy arrays are (H, W) or (H, W, C) (images as cameras and OpenCV store them).
    All channels of a position move together.
    """
    return _gather_positions(x, perm, "shuffle")


def unshuffle(x: Frame, perm: np.ndarray | torch.Tensor) -> Frame:
    """Keyed order -> plain order, the inverse of `shuffle` with the same permutation."""
    inverse = inverse_permutation(np.asarray(perm.cpu() if isinstance(perm, torch.Tensor) else perm))
    return _gather_positions(x, inverse, "unshuffle")


def _gather_positions(x: Frame, perm, name: str) -> Frame:
    if isinstance(x, torch.Tensor):
        if x.dim() < 2:
            raise ValueError(f"{name} expects a tensor (..., H, W), got shape {tuple(x.shape)}")
        height, width = x.shape[-2:]
        index = _as_index(perm, x.device)
        _check_length(index.numel(), height, width, name)
        flat = x.reshape(-1, height * width)
        return torch.gather(flat, 1, index.expand(flat.shape[0], -1)).reshape(x.shape)
    if isinstance(x, np.ndarray):
        if x.ndim not in (2, 3):
            raise ValueError(f"{name} expects a numpy array (H, W) or (H, W, C), got shape {x.shape}")
        height, width = x.shape[:2]
        index = np.asarray(perm.cpu() if isinstance(perm, torch.Tensor) else perm)
        _check_length(index.size, height, width, name)
        flat = x.reshape(height * width, -1)
        return np.take(flat, index, axis=0).reshape(x.shape)
    raise TypeError(f"{name} expects a torch.Tensor or numpy.ndarray, got {type(x).__name__}")


def _as_index(perm, device: torch.device) -> torch.Tensor:
    """The permutation as an int64 tensor; cached read-only permutations are shared, not copied."""
    if isinstance(perm, torch.Tensor):
        return perm.to(device=device, dtype=torch.int64)
    array = np.asarray(perm, dtype=np.int64)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array).to(device)


def _check_length(n: int, height: int, width: int, name: str) -> None:
    if n != height * width:
        raise ValueError(
            f"{name}: the permutation has {n} positions but the frame is {height}x{width} = {height * width}; "
            "was it made for another frame size?"
        )
