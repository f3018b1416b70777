"""Fused CPU kernels for the keyed taps (numba): no expanded tap tables in memory.

Each kernel computes what taps.py's torch code computes from the expanded SampleTaps (the
reference they are tested against), but per chunk of output positions: find their scene
positions, their taps, the taps' keyed positions through the inverse readout (or its 2x2
neighbour table), then sum one channel plane at a time. Outputs are in keyed order j; rows_of[j],
cols_of[j] are the scene row and column of output position j. The index tables come from
tables.py, as narrow as they can be: at 224x224 the random reads are the cost, and narrow tables
keep them in cache. Work is split into chunks of outputs so that a single frame still uses every
core.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..base.threads import on_torch_threads

CHUNK = 2048


@njit(inline="always")
def _chunks(n_out):
    return (n_out + CHUNK - 1) // CHUNK


@njit(inline="always")
def _task(task, chunks, n_out):
    """Task `task` of batch * chunks: its sample and its range of outputs."""
    b = task // chunks
    start = (task - b * chunks) * CHUNK
    return b, start, min(start + CHUNK, n_out)


@njit(inline="always")
def _warm(x, b, start, warmed):
    """Read sample b's channel planes in order, once per sample (at its first chunk): its taps
    then read them at random from cache, not from memory, after other work has evicted them (a
    resized crop at 224x224 took 4.1 ms with this and 5.3 ms without). The sum goes to `warmed`
    only so that the reads are kept."""
    if start == 0:
        total = 0.0
        for ch in range(x.shape[1]):
            plane = x[b, ch]
            for q in range(0, plane.shape[0], 64 // plane.itemsize):  # one read per 64-byte line
                total += plane[q]
        warmed[b] = total


@on_torch_threads
@njit(parallel=True, cache=True)
def separable(x, inv, rows_of, cols_of, row_index, row_weight, col_index, col_weight, width, fill, out):
    """x (B, C, N_in) keyed; row_index/weight (B, H_out, T_r), col_index/weight (B, W_out, T_c)."""
    batch, channels, _ = x.shape
    n_out = rows_of.shape[0]
    chunks = _chunks(n_out)
    for task in prange(batch * chunks):
        b, start, stop = _task(task, chunks, n_out)
        for j in range(start, stop):
            r = rows_of[j]
            c = cols_of[j]
            for ch in range(channels):
                out[b, ch, j] = 0.0
            for a in range(row_index.shape[2]):
                wy = row_weight[b, r, a]
                if wy == 0.0:
                    continue
                yy = row_index[b, r, a]
                for e in range(col_index.shape[2]):
                    w = wy * col_weight[b, c, e]
                    if w == 0.0:
                        continue
                    xx = col_index[b, c, e]
                    if yy < 0 or xx < 0:
                        for ch in range(channels):
                            out[b, ch, j] += w * fill[ch]
                    else:
                        k = inv[yy * width + xx]
                        for ch in range(channels):
                            out[b, ch, j] += w * x[b, ch, k]


@on_torch_threads
@njit(parallel=True, cache=True)
def separable_gather(x, inv, rows_of, cols_of, row_index, col_index, width, fill, out, warmed):
    """separable() for one tap of weight 1 per axis (flips, crops): row_index (B, H_out), col_index (B, W_out)."""
    batch, channels, n_in = x.shape
    n_out = rows_of.shape[0]
    chunks = _chunks(n_out)
    for task in prange(batch * chunks):
        b, start, stop = _task(task, chunks, n_out)
        taps = np.empty(CHUNK, inv.dtype)  # as narrow as the table; N_in reads the fill
        for j in range(start, stop):
            yy = row_index[b, rows_of[j]]
            xx = col_index[b, cols_of[j]]
            taps[j - start] = n_in if yy < 0 or xx < 0 else inv[yy * width + xx]
        _warm(x, b, start, warmed)
        for ch in range(channels):
            plane = x[b, ch]
            target = out[b, ch]
            for j in range(start, stop):
                k = taps[j - start]
                target[j] = fill[ch] if k == n_in else plane[k]


@on_torch_threads
@njit(parallel=True, cache=True)
def separable_bilinear(x, neighbours, rows_of, cols_of, row_code, row_weight, col_code, col_weight, out, warmed):
    """separable() for bilinear resizing: two taps per axis on the same or the next row (column),
    never off the frame. neighbours is tables.neighbour_table; row_code[b, r] + col_code[b, c] is
    4 * (scene position of the top-left tap) + 2 * (lower tap is the next row) + (right tap is the
    next column), as run.bilinear_codes makes them.

    Per chunk of outputs: first their four keyed taps (one table read), then one channel plane at
    a time, so the taps stay in cache and each plane's random reads do too."""
    batch, channels, _ = x.shape
    n_out = rows_of.shape[0]
    chunks = _chunks(n_out)
    for task in prange(batch * chunks):
        b, start, stop = _task(task, chunks, n_out)
        k = np.empty((CHUNK, 4), neighbours.dtype)  # as narrow as the table: 10% faster at 224x224
        w = np.empty((CHUNK, 4), x.dtype)
        for j in range(start, stop):
            i = j - start
            r = rows_of[j]
            c = cols_of[j]
            code = row_code[b, r] + col_code[b, c]
            at = code >> 2
            if code & 3 == 3:  # the usual 2x2 square
                k[i, 0] = neighbours[at, 0]
                k[i, 1] = neighbours[at, 1]
                k[i, 2] = neighbours[at, 2]
                k[i, 3] = neighbours[at, 3]
            else:  # a window's last row or column: its taps coincide
                down = code & 2
                right = neighbours[at, 1] if code & 1 else neighbours[at, 0]
                k[i, 0] = neighbours[at, 0]
                k[i, 1] = right
                k[i, 2] = neighbours[at, 2] if down else neighbours[at, 0]
                k[i, 3] = (neighbours[at, 3] if code & 1 else neighbours[at, 2]) if down else right
            wy0, wy1 = row_weight[b, r, 0], row_weight[b, r, 1]
            wx0, wx1 = col_weight[b, c, 0], col_weight[b, c, 1]
            w[i, 0] = wy0 * wx0
            w[i, 1] = wy0 * wx1
            w[i, 2] = wy1 * wx0
            w[i, 3] = wy1 * wx1
        _warm(x, b, start, warmed)
        for ch in range(channels):
            plane = x[b, ch]
            target = out[b, ch]
            for j in range(start, stop):
                i = j - start
                target[j] = (
                    w[i, 0] * plane[k[i, 0]]
                    + w[i, 1] * plane[k[i, 1]]
                    + w[i, 2] * plane[k[i, 2]]
                    + w[i, 3] * plane[k[i, 3]]
                )


@njit(cache=True)
def _reflect(coord, size, align_corners):
    if align_corners:
        low, high = 0.0, size - 1.0
    else:
        low, high = -0.5, size - 0.5
    span = high - low
    if span <= 0:
        return 0.0
    distance = abs(coord - low)
    flips = math.floor(distance / span)
    extra = distance - flips * span
    value = low + extra if flips % 2 == 0 else high - extra
    return min(max(value, 0.0), size - 1.0)


@on_torch_threads
@njit(parallel=True, cache=True)
def warp(x, neighbours, rows_of, cols_of, inverse, height, width, padding, align_corners, fill, chosen, out, warmed):
    """Bilinear sampling at inverse[b] @ (u, v, 1); padding codes as taps.PADDING_CODES.

    Per chunk of outputs, taps first, then one channel plane at a time (as separable_bilinear);
    off-frame taps are N_in and read the fill colour in 'fill' padding, zero otherwise. Taps whose
    2x2 square lies on the frame are one read of `neighbours` (tables.neighbour_table)."""
    batch, channels, n_in = x.shape
    n_out = rows_of.shape[0]
    chunks = _chunks(n_out)
    for task in prange(batch * chunks):
        b, start, stop = _task(task, chunks, n_out)
        m = inverse[b]
        k = np.empty((CHUNK, 4), neighbours.dtype)
        w = np.zeros((CHUNK, 4), x.dtype)
        for j in range(start, stop):
            i = j - start
            if not chosen[b]:  # left as it is: read its own position
                k[i, :] = j
                w[i, 0] = 1.0
                continue
            u = float(cols_of[j])
            v = float(rows_of[j])
            denom = m[2, 0] * u + m[2, 1] * v + m[2, 2]
            sx = (m[0, 0] * u + m[0, 1] * v + m[0, 2]) / denom
            sy = (m[1, 0] * u + m[1, 1] * v + m[1, 2]) / denom
            if padding == 1:
                sx = min(max(sx, 0.0), width - 1.0)
                sy = min(max(sy, 0.0), height - 1.0)
            elif padding == 2:
                sx = _reflect(sx, width, align_corners)
                sy = _reflect(sy, height, align_corners)
            x0 = math.floor(sx)
            y0 = math.floor(sy)
            fx = sx - x0
            fy = sy - y0
            inside = 0 <= x0 < width - 1 and 0 <= y0 < height - 1
            for t in range(4):
                yy = y0 + t // 2
                xx = x0 + t % 2
                w[i, t] = (fy if t // 2 else 1.0 - fy) * (fx if t % 2 else 1.0 - fx)
                if inside:
                    k[i, t] = neighbours[int(y0) * width + int(x0), t]
                elif 0 <= xx < width and 0 <= yy < height:
                    k[i, t] = neighbours[int(yy) * width + int(xx), 0]
                else:
                    k[i, t] = n_in
        _warm(x, b, start, warmed)
        for ch in range(channels):
            plane = x[b, ch]
            target = out[b, ch]
            colour = fill[ch] if padding == 3 else 0.0
            for j in range(start, stop):
                i = j - start
                acc = 0.0
                for t in range(4):
                    acc += w[i, t] * (plane[k[i, t]] if k[i, t] < n_in else colour)
                target[j] = acc


@on_torch_threads
@njit(parallel=True, cache=True)
def shared(x, keyed, weight, out, warmed):
    """out[b, c, j] = sum_k weight[b|0, j|0, k] * x[b, c, keyed[j, k]]; keyed N_in reads zero, and
    taps a sample weighs 0 everywhere are not read.

    Per chunk of outputs, one channel plane at a time (as separable_bilinear): the chunk's rows of
    the table are read from memory once per sample, not once per channel."""
    batch, channels, n_in = x.shape
    n_out, taps = keyed.shape
    per_sample = weight.shape[0] > 1
    per_position = weight.shape[1] > 1
    chunks = _chunks(n_out)
    for task in prange(batch * chunks):
        b, start, stop = _task(task, chunks, n_out)
        w = weight[b] if per_sample else weight[0]
        # Taps this sample weighs: a motion blur's 5x5 kernel is a line of about 5.
        used = np.empty(taps, np.int64)
        n_used = 0
        for k in range(taps):
            if per_position or w[0, k] != 0.0:
                used[n_used] = k
                n_used += 1
        _warm(x, b, start, warmed)
        for ch in range(channels):
            plane = x[b, ch]
            target = out[b, ch]
            if n_used == taps:  # a loop of its own: 30% faster than through `used`
                for j in range(start, stop):
                    wj = w[j] if per_position else w[0]
                    acc = 0.0
                    for k in range(taps):
                        i = keyed[j, k]
                        if i < n_in:
                            acc += wj[k] * plane[i]
                    target[j] = acc
            else:
                for j in range(start, stop):
                    wj = w[0]
                    acc = 0.0
                    for u in range(n_used):
                        i = keyed[j, used[u]]
                        if i < n_in:
                            acc += wj[used[u]] * plane[i]
                    target[j] = acc
