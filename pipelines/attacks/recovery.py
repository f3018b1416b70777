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


def signature_match(frames: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Ciphertext-only layout recovery with a known scene distribution (no plaintext of the frames).

    frames (N, n): protected frames under one unknown permutation; reference (M, n): plain frames of
    the same kind of scene (a public dataset through the attacker's own camera). Each keyed position
    is matched to the plain position whose value statistics across frames (mean, spread, quantiles,
    how often it is dark) are closest, by a minimum-cost assignment; the match is then refined so that
    the keyed positions' correlations reproduce the reference's (a quadratic assignment solved with
    scipy's FAQ method from that start). Returns perm_hat, perm_hat[j] = the plain position of keyed j.
    n up to a few thousand positions (it holds n x n matrices).
    """
    from scipy.optimize import quadratic_assignment

    if frames.ndim != 2 or reference.ndim != 2 or frames.shape[1] != reference.shape[1]:
        raise ValueError(f"expected frames (N, n) and reference (M, n), got {frames.shape} and {reference.shape}")
    keyed, plain = _signatures(frames), _signatures(reference)
    scale = plain.std(0) + 1e-9
    cost = (((keyed[:, None, :] - plain[None, :, :]) / scale) ** 2).sum(-1)
    _, start = linear_sum_assignment(cost)
    n = frames.shape[1]
    initial = np.zeros((n, n))
    initial[np.arange(n), start] = 1
    result = quadratic_assignment(
        _correlations(frames), _correlations(reference), method="faq", options={"maximize": True, "P0": initial}
    )
    return result.col_ind


def _signatures(values: np.ndarray) -> np.ndarray:
    """(n, 8) statistics of each position across frames."""
    quantiles = np.quantile(values, [0.1, 0.25, 0.5, 0.75, 0.9], axis=0)
    dark = (values < values.min() + 0.05 * (values.max() - values.min())).mean(0)
    return np.vstack([values.mean(0), values.std(0), quantiles, dark]).T


def _correlations(values: np.ndarray) -> np.ndarray:
    centred = values - values.mean(0)
    spread = centred.std(0)
    spread[spread == 0] = 1
    standard = centred / spread
    return standard.T @ standard / len(values)


def assemble_units(units: np.ndarray, period: int = 1) -> list[dict[tuple[int, int], int]]:
    """Ciphertext-only jigsaw: lay out unit-readout tiles from their edges, without any plaintext.

    units (U, N, s, s): the U tiles of N frames under one unknown unit permutation (their inside
    layout is kept by quad and block readouts). period: the colour filter's period in pixels (2 for
    a Bayer mosaic, whose neighbouring columns are other colours; 1 otherwise). Two tiles fit side
    by side when each of the next tile's first `period` columns continues the same-colour column
    `period` pixels before it (extrapolated from two same-colour columns where the tile is wide
    enough), summed over the frames, and the same across the edge the other way. Mutual best fits are
    joined in order of confidence (best over second best) into rigid groups, as tree-based jigsaw
    solvers do; a join that would overlap is skipped.
    Returns the groups, largest first, each {(row, col): tile} in its own coordinates.
    """
    if units.ndim != 4 or units.shape[2] != units.shape[3] or units.shape[2] < period:
        raise ValueError(f"expected tiles (U, N, s, s) with s >= {period}, got {units.shape}")
    count = len(units)
    links = []
    for across, step in ((True, (0, 1)), (False, (1, 0))):
        dissimilarity = _edge_dissimilarity(units, across, period)
        best, best_of = dissimilarity.argmin(1), dissimilarity.argmin(0)
        second = np.partition(dissimilarity, 1, axis=1)[:, 1]
        for a in range(count):
            b = best[a]
            if best_of[b] == a:
                links.append((dissimilarity[a, b] / (second[a] + 1e-12), a, int(b), step))
    links.sort()
    groups = {a: {(0, 0): a} for a in range(count)}
    where = {a: (a, (0, 0)) for a in range(count)}
    for _, a, b, (dy, dx) in links:
        (ga, pa), (gb, pb) = where[a], where[b]
        if ga == gb:
            continue
        shift = (pa[0] + dy - pb[0], pa[1] + dx - pb[1])
        if len(groups[gb]) > len(groups[ga]):
            ga, gb, shift = gb, ga, (-shift[0], -shift[1])
        moved = {(c[0] + shift[0], c[1] + shift[1]): u for c, u in groups[gb].items()}
        if any(c in groups[ga] for c in moved):
            continue
        groups[ga].update(moved)
        for cell, unit in moved.items():
            where[unit] = (ga, cell)
        del groups[gb]
    return sorted(groups.values(), key=len, reverse=True)


def _edge_dissimilarity(units: np.ndarray, across: bool, period: int) -> np.ndarray:
    """D[a, b]: how badly tile b fits to the right of tile a (across) or below it. Each of b's first
    `period` columns is predicted from a's same-colour columns (one column, or the straight line
    through two), and each of a's last `period` columns from b's; the errors are squared and summed."""
    count = len(units)
    tiles = units if across else units.transpose(0, 1, 3, 2)
    size = tiles.shape[-1]
    a_last, b_first = tiles[..., size - period :], tiles[..., :period]
    if size >= 2 * period:  # extrapolate from two same-colour columns on each side
        a_pred = 2 * a_last - tiles[..., size - 2 * period : size - period]
        b_pred = 2 * b_first - tiles[..., period : 2 * period]
    else:
        a_pred, b_pred = a_last, b_first

    def squared(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x, y = x.reshape(count, -1), y.reshape(count, -1)
        return (x**2).sum(1)[:, None] + (y**2).sum(1)[None, :] - 2 * x @ y.T

    dissimilarity = np.maximum(squared(a_pred, b_first) + squared(a_last, b_pred), 0)
    np.fill_diagonal(dissimilarity, np.inf)
    return dissimilarity
