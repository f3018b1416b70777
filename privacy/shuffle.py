"""Apply a readout permutation to frames: torch (..., H, W) or numpy (H, W[, C])."""

from __future__ import annotations

import warnings
from typing import TypeVar

import numpy as np
import torch

from .schedule import inverse_permutation

Frames = TypeVar("Frames", np.ndarray, torch.Tensor)


def shuffle(x: Frames, perm: np.ndarray | torch.Tensor) -> Frames:
    """Plain order -> keyed order: out.flat[j] = x.flat[perm[j]] over the (H, W) positions.

    All channels of a position move together.

    Args:
        x: torch tensor (..., H, W) (channels before space, as networks use them), or numpy array
            (H, W) or (H, W, C) (images as cameras and OpenCV store them).
        perm: (H*W,) permutation, e.g. Readout.permutation(key, H, W).

    Returns:
        x's type and shape, in keyed order.

    Example:
        >>> protected = shuffle(frames, Readout().permutation(key, 32, 32))  # doctest: +SKIP
    """
    return _gather_positions(x, perm, "shuffle")


def unshuffle(x: Frames, perm: np.ndarray | torch.Tensor) -> Frames:
    """Keyed order -> plain order, the inverse of `shuffle` with the same permutation.

    Args:
        x: as for shuffle, in keyed order.
        perm: (H*W,) the permutation the frames were shuffled with.

    Returns:
        x's type and shape, in plain order. It inverts `perm` on every call;
        shuffle(x, readout.inverse(key, H, W)) uses the cached inverse instead.
    """
    inverse = inverse_permutation(np.asarray(perm.cpu() if isinstance(perm, torch.Tensor) else perm))
    return _gather_positions(x, inverse, "unshuffle")


def index_tensor(perm: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """A permutation as an int64 tensor on `device`; cached read-only permutations are shared, not copied."""
    if isinstance(perm, torch.Tensor):
        return perm.to(device=device, dtype=torch.int64)
    array = np.asarray(perm, dtype=np.int64)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array).to(device)


def key_table(index: np.ndarray, inverse_in: np.ndarray, perm_out: np.ndarray) -> np.ndarray:
    """An index table over plain positions read in keyed order: keyed[j, t] = inverse_in[index[perm_out[j], t]].

    Args:
        index: (L_out, taps) plain input positions of each plain output position; -1 reads zero.
        inverse_in: (L_in,) inverse readout of the input (keyed position of each plain one).
        perm_out: (L_out,) permutation of the output.

    Returns:
        (L_out, taps) keyed input positions of each keyed output position; taps that read zero
        point at L_in, one past the input.
    """
    rows = index[perm_out]
    keyed = inverse_in[rows]
    keyed[rows < 0] = inverse_in.size
    return keyed


def _gather_positions(x: Frames, perm, name: str) -> Frames:
    if isinstance(x, torch.Tensor):
        if x.dim() < 2:
            raise ValueError(f"{name} expects a tensor (..., H, W), got shape {tuple(x.shape)}")
        height, width = x.shape[-2:]
        index = index_tensor(perm, x.device)
        _check_length(index.numel(), height, width, name)
        flat = x.reshape(-1, height * width)
        return torch.gather(flat, 1, index.expand(flat.shape[0], -1)).reshape(x.shape)
    if isinstance(x, np.ndarray):
        if x.ndim not in (2, 3):
            raise ValueError(f"{name} expects a numpy array (H, W) or (H, W, C), got shape {x.shape}")
        height, width = x.shape[:2]
        index = np.asarray(perm.cpu() if isinstance(perm, torch.Tensor) else perm)
        _check_length(index.size, height, width, name)
        flat = torch.from_numpy(np.ascontiguousarray(x).reshape(height * width, -1))
        # torch's row gather, on the array's memory: 1.7x numpy's take for a 1080p RGB frame
        return flat.index_select(0, index_tensor(index)).numpy().reshape(x.shape)
    raise TypeError(f"{name} expects a torch.Tensor or numpy.ndarray, got {type(x).__name__}")


def _check_length(n: int, height: int, width: int, name: str) -> None:
    if n != height * width:
        raise ValueError(
            f"{name}: the permutation has {n} positions but the frame is {height}x{width} = {height * width}; "
            "was it made for another frame size?"
        )
