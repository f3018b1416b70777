"""Keyed shifted-window attention (Swin v1 and v2), Swin's patch merging and MaxViT's block and
grid attention, as fixed gathers.

torchvision's `shifted_window_attention` pads a channels-last map to whole windows, rolls it by
the shift, cuts it into windows and runs attention in each, with a relative position bias over the
window's slots and, when shifted, a mask between slots that came from different regions. Each step
before the attention only moves positions, and so does each step after it: on a keyed map both
are one gather each, with tables fixed per key and shape. Windows come in an order drawn from the
key, slots in the window's own order (as a convolution's taps are in the kernel's order), so the
bias is used as it is and the mask is reordered once, at conversion.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.maxvit import PartitionAttentionLayer
from torchvision.models.swin_transformer import shifted_window_attention

from ...privacy import inverse_permutation
from .tokens import from_tokens, to_tokens

_SIGNATURE = inspect.signature(shifted_window_attention)


def effective_shift(in_hw: tuple[int, int], window: tuple[int, int], shift: tuple[int, int]) -> tuple[int, ...]:
    """torchvision's rule: no shift along an axis that one window covers (after padding)."""
    padded = [math.ceil(n / w) * w for n, w in zip(in_hw, window, strict=True)]
    return tuple(0 if w >= p else s for w, p, s in zip(window, padded, shift, strict=True))


def _keyed_rows(in_hw: tuple[int, int], perm, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The keyed row of each plain position (rows, cols); H*W (the zero row) outside the map."""
    height, width = in_hw
    inverse = inverse_permutation(perm).astype(np.int64)
    inside = (rows < height) & (cols < width)
    return np.where(inside, inverse[np.minimum(rows, height - 1) * width + np.minimum(cols, width - 1)], height * width)


def window_tables(in_hw, window, shift, perm, window_order) -> tuple[np.ndarray, np.ndarray]:
    """(gather, scatter): gather (nW*N,) keyed rows (H*W: the zero row, for padding) of window
    window_order[w], slot s at w*N + s; scatter (H*W,) the windows' row of each keyed position."""
    (height, width), (wh, ww), (sh, sw) = in_hw, window, shift
    pad_h, pad_w = math.ceil(height / wh) * wh, math.ceil(width / ww) * ww
    across = pad_w // ww
    plain_window = np.asarray(window_order, dtype=np.int64)[:, None]
    slot = np.arange(wh * ww)[None, :]
    rolled_r = (plain_window // across) * wh + slot // ww
    rolled_c = (plain_window % across) * ww + slot % ww
    gather = _keyed_rows(in_hw, perm, (rolled_r + sh) % pad_h, (rolled_c + sw) % pad_w)
    position = np.asarray(perm, dtype=np.int64)
    rolled_r, rolled_c = (position // width - sh) % pad_h, (position % width - sw) % pad_w
    plain = (rolled_r // wh) * across + rolled_c // ww
    scatter = (
        inverse_permutation(window_order).astype(np.int64)[plain] * (wh * ww) + (rolled_r % wh) * ww + rolled_c % ww
    )
    return gather.reshape(-1), scatter


def shift_mask(in_hw, window, shift, window_order) -> np.ndarray:
    """(nW, N, N) float32: -100 between slots from different regions of the rolled map, as
    torchvision builds it, with windows in `window_order`."""
    (height, width), (wh, ww), (sh, sw) = in_hw, window, shift
    pad_h, pad_w = math.ceil(height / wh) * wh, math.ceil(width / ww) * ww
    regions = np.zeros((pad_h, pad_w))
    count = 0
    for rows in ((0, -wh), (-wh, -sh), (-sh, None)):
        for cols in ((0, -ww), (-ww, -sw), (-sw, None)):
            regions[rows[0] : rows[1], cols[0] : cols[1]] = count
            count += 1
    regions = regions.reshape(pad_h // wh, wh, pad_w // ww, ww).transpose(0, 2, 1, 3).reshape(-1, wh * ww)
    regions = regions[np.asarray(window_order)]
    return np.where(regions[:, None, :] != regions[:, :, None], -100.0, 0.0).astype(np.float32)


def window_attention(
    windows: torch.Tensor,
    qkv_weight: torch.Tensor,
    proj_weight: torch.Tensor,
    relative_position_bias: torch.Tensor,
    num_heads: int,
    mask: torch.Tensor | None,
    attention_dropout: float = 0.0,
    dropout: float = 0.0,
    qkv_bias: torch.Tensor | None = None,
    proj_bias: torch.Tensor | None = None,
    logit_scale: torch.Tensor | None = None,
    training: bool = True,
) -> torch.Tensor:
    """Attention within each window, as torchvision computes it. windows (B, nW, N, C); mask
    (nW, N, N) or None -> (B, nW, N, C)."""
    batch, count, slots, channels = windows.shape
    x = windows.reshape(batch * count, slots, channels)
    if logit_scale is not None and qkv_bias is not None:
        qkv_bias = qkv_bias.clone()
        length = qkv_bias.numel() // 3
        qkv_bias[length : 2 * length].zero_()
    qkv = F.linear(x, qkv_weight, qkv_bias)
    qkv = qkv.reshape(x.size(0), slots, 3, num_heads, channels // num_heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    if logit_scale is not None:
        attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        attn = attn * torch.clamp(logit_scale, max=math.log(100.0)).exp()
    else:
        attn = (q * (channels // num_heads) ** -0.5).matmul(k.transpose(-2, -1))
    attn = attn + relative_position_bias
    if mask is not None:
        attn = attn.view(batch, count, num_heads, slots, slots) + mask.unsqueeze(1).unsqueeze(0)
        attn = attn.view(-1, num_heads, slots, slots)
    attn = F.dropout(F.softmax(attn, dim=-1), p=attention_dropout, training=training)
    x = attn.matmul(v).transpose(1, 2).reshape(x.size(0), slots, channels)
    x = F.dropout(F.linear(x, proj_weight, proj_bias), p=dropout, training=training)
    return x.view(batch, count, slots, channels)


class KeyedWindowAttention(nn.Module):
    """torchvision's shifted_window_attention on a keyed channels-last map (B, H, W, C), same
    arguments; the output is in the input's keyed order.

    Example:
        >>> op = KeyedWindowAttention((8, 8), [4, 4], [2, 2], perm, window_order)  # doctest: +SKIP
        >>> y = op(x, qkv_weight, proj_weight, bias, [4, 4], 2, shift_size=[2, 2])  # doctest: +SKIP
    """

    def __init__(self, in_hw, window_size, shift_size, perm, window_order) -> None:
        super().__init__()
        self.in_hw, self.window = tuple(in_hw), tuple(window_size)
        self.shift = effective_shift(self.in_hw, self.window, tuple(shift_size))
        gather, scatter = window_tables(self.in_hw, self.window, self.shift, perm, window_order)
        self.register_buffer("gather", torch.from_numpy(gather), persistent=False)
        self.register_buffer("scatter", torch.from_numpy(scatter), persistent=False)
        mask = (
            torch.from_numpy(shift_mask(self.in_hw, self.window, self.shift, window_order)) if any(self.shift) else None
        )
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Called as torchvision's shifted_window_attention is; window_size and shift_size were
        fixed at conversion."""
        call = _SIGNATURE.bind(*args, **kwargs)
        call.apply_defaults()
        given = call.arguments
        x = given["input"]
        batch, height, width, channels = x.shape
        tokens = F.pad(x.reshape(batch, height * width, channels), (0, 0, 0, 1))
        windows = tokens.index_select(1, self.gather).view(batch, -1, self.window[0] * self.window[1], channels)
        mask = None if self.mask is None else self.mask.to(windows.dtype)
        names = ("qkv_weight", "proj_weight", "relative_position_bias", "num_heads")
        options = ("attention_dropout", "dropout", "qkv_bias", "proj_bias", "logit_scale", "training")
        out = window_attention(windows, *(given[n] for n in names), mask, *(given[n] for n in options))
        return out.reshape(batch, -1, channels).index_select(1, self.scatter).view(batch, height, width, channels)

    def extra_repr(self) -> str:
        return f"in_hw={self.in_hw}, window={self.window}, shift={self.shift}"


def patch_merging_index(in_hw: tuple[int, int], perm_in, perm_out) -> np.ndarray:
    """(4 * H_out*W_out,): for block k = i + 2j (torchvision's x0..x3) and keyed output position q
    (plain (h, w)), the keyed input row of the plain (2h + i, 2w + j); H*W (the zero row) in the padding."""
    out_w = (in_hw[1] + 1) // 2
    h, w = np.divmod(np.asarray(perm_out, dtype=np.int64), out_w)
    i, j = np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1])
    return _keyed_rows(in_hw, perm_in, 2 * h[None, :] + i[:, None], 2 * w[None, :] + j[:, None]).reshape(-1)


class KeyedPatchMerging(nn.Module):
    """torchvision's _patch_merging_pad on a keyed channels-last map: (B, H, W, C) keyed ->
    (B, ceil(H/2), ceil(W/2), 4C) keyed, the four 2x2 neighbours side by side in channels."""

    def __init__(self, in_hw: tuple[int, int], perm_in, perm_out) -> None:
        super().__init__()
        self.out_hw = ((in_hw[0] + 1) // 2, (in_hw[1] + 1) // 2)
        self.register_buffer("index", torch.from_numpy(patch_merging_index(in_hw, perm_in, perm_out)), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, channels = x.shape
        tokens = F.pad(x.reshape(batch, height * width, channels), (0, 0, 0, 1))
        blocks = tokens.index_select(1, self.index).view(batch, 4, -1, channels)
        return blocks.permute(0, 2, 1, 3).reshape(batch, *self.out_hw, 4 * channels)

    def extra_repr(self) -> str:
        return f"out_hw={self.out_hw}"


def partition_tables(positions: np.ndarray, perm, window_order) -> tuple[np.ndarray, np.ndarray]:
    """(gather, scatter) for partitions given as `positions` (G, N), the plain position of each
    partition's slots: gather (G*N,) keyed rows of partition window_order[g], slot s at g*N + s;
    scatter (H*W,) the partitions' row of each keyed position."""
    count, slots = positions.shape
    window_order = np.asarray(window_order, dtype=np.int64)
    gather = inverse_permutation(perm).astype(np.int64)[positions[window_order]]
    row_of_plain = np.empty(count * slots, dtype=np.int64)
    row_of_plain[positions[window_order].reshape(-1)] = np.arange(count * slots)
    return gather.reshape(-1), row_of_plain[np.asarray(perm, dtype=np.int64)]


def partition_positions(layer: PartitionAttentionLayer, in_hw: tuple[int, int]) -> np.ndarray:
    """(G, N) plain positions of a MaxViT layer's partitions (after its grid swap), read off the
    layer's own partition ops applied to a map of position numbers."""
    height, width = in_hw
    numbers = torch.arange(height * width).view(1, 1, height, width)
    return layer.partition_swap(layer.partition_op(numbers, layer.p))[0, ..., 0].numpy()


class KeyedPartitionAttention(nn.Module):
    """torchvision's MaxViT PartitionAttentionLayer (block or grid attention) on a keyed map
    (B, C, H, W) -> (B, C, H, W) in the same keyed order.

    The layer cuts the map into G partitions of N slots, runs attention (with a relative position
    bias over the slots) and an MLP in each, and puts the map back together. Here one gather makes
    the partitions, in an order drawn from the key, each with its slots in the layer's own order
    (so the bias is used as it is), and one gather puts the keyed map back.

    Example:
        >>> op = KeyedPartitionAttention(layer, (56, 56), perm, window_order)  # doctest: +SKIP
        >>> y = op(x_keyed)  # == shuffle(layer(x), perm)  # doctest: +SKIP
    """

    def __init__(self, layer: PartitionAttentionLayer, in_hw: tuple[int, int], perm, window_order) -> None:
        super().__init__()
        self.in_hw = tuple(in_hw)
        self.attn_layer, self.mlp_layer = layer.attn_layer, layer.mlp_layer
        self.stochastic_dropout = layer.stochastic_dropout
        positions = partition_positions(layer, self.in_hw)
        self.partitions = positions.shape
        gather, scatter = partition_tables(positions, perm, window_order)
        self.register_buffer("gather", torch.from_numpy(gather), persistent=False)
        self.register_buffer("scatter", torch.from_numpy(scatter), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = to_tokens(x)
        batch, _, channels = tokens.shape
        windows = tokens.index_select(1, self.gather).view(batch, *self.partitions, channels)
        windows = windows + self.stochastic_dropout(self.attn_layer(windows))
        windows = windows + self.stochastic_dropout(self.mlp_layer(windows))
        return from_tokens(windows.reshape(batch, -1, channels).index_select(1, self.scatter), self.in_hw)

    def extra_repr(self) -> str:
        return f"in_hw={self.in_hw}, partitions={self.partitions[0]} of {self.partitions[1]} slots"
