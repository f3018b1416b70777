"""Attacks on keyed readout that need no network: known-plaintext recovery, key extraction from a
keyed model's index table, and the per-frame histogram that no permutation hides."""

from __future__ import annotations

from collections import deque

import numpy as np
from scipy.optimize import linear_sum_assignment


def known_plaintext_recovery(scenes: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Estimate a readout permutation from k pairs of (plain scene, protected frame).

    scenes and frames are (k, n) values at the n plain and n keyed positions. Each frame is
    standardised, and keyed positions are matched to plain positions by the minimum-cost assignment
    of their k-value profiles. Returns perm_hat with perm_hat[j] = the plain position of keyed j.
    """
    if scenes.shape != frames.shape or scenes.ndim != 2:
        raise ValueError(f"expected scenes and frames of the same shape (k, n), got {scenes.shape} and {frames.shape}")

    def standardise(values: np.ndarray) -> np.ndarray:
        values = values.astype(np.float64)
        return (values - values.mean(1, keepdims=True)) / (values.std(1, keepdims=True) + 1e-12)

    plain, keyed = standardise(scenes).T, standardise(frames).T  # (n, k)
    cost = (keyed**2).sum(1)[:, None] + (plain**2).sum(1)[None, :] - 2 * keyed @ plain.T
    _, columns = linear_sum_assignment(cost)
    return columns


def recovered_fraction(perm_hat: np.ndarray, perm: np.ndarray) -> float:
    """The fraction of positions an estimated permutation gets right."""
    return float(np.mean(np.asarray(perm_hat) == np.asarray(perm)))


def histogram_features(frames: np.ndarray, bins: int = 32) -> np.ndarray:
    """Per-frame histograms (N, bins) of values in [0, 1]: identical for every readout order."""
    flat = np.clip(frames.reshape(len(frames), -1), 0, 1)
    index = np.minimum((flat * bins).astype(np.int64), bins - 1)
    counts = np.zeros((len(frames), bins))
    np.add.at(counts, (np.repeat(np.arange(len(frames)), index.shape[1]), index.ravel()), 1)
    return counts / index.shape[1]


def extract_input_permutation(table: np.ndarray, in_hw: tuple[int, int]) -> np.ndarray:
    """Read a readout permutation back from the index table of a keyed 3x3, stride-1, 'same' conv.

    Row j lists the keyed input positions of a 3x3 plain neighbourhood in tap order, so the
    table is a grid graph with labelled edges; walking it gives every keyed position's plain
    coordinates, and the taps that read padding (index n) pin the borders. Returns perm_hat.
    """
    n = in_hw[0] * in_hw[1]
    if table.shape != (n, 9):
        raise ValueError(f"expected the (H*W, 9) table of a 3x3 stride-1 'same' conv, got {table.shape}")
    offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    neighbours = {int(row[4]): row for row in table}
    coords = {int(table[0, 4]): (0, 0)}
    queue = deque(coords)
    while queue:
        centre = queue.popleft()
        y, x = coords[centre]
        for (dy, dx), position in zip(offsets, neighbours[centre], strict=True):
            position = int(position)
            if position != n and position not in coords:
                coords[position] = (y + dy, x + dx)
                queue.append(position)
    if len(coords) != n:
        raise ValueError("the table does not connect every position; is it a first-layer 3x3 conv table?")
    ys = np.array([coords[j][0] for j in range(n)])
    xs = np.array([coords[j][1] for j in range(n)])
    return (ys - ys.min()) * in_hw[1] + (xs - xs.min())
