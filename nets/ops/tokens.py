"""Keyed feature maps as tokens: a (B, C, H, W) map in keyed order is (B, H*W, C) in channels-last memory."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from ...base.threads import on_torch_threads

# Gathered taps are processed in chunks of about this size on CPU: a chunk is written by the
# gather and read back by the GEMM while it is still in the cores' caches (1 MiB of L2 each here),
# and one reused buffer costs no fresh pages, where one large buffer would on every call
# (benchmarks/keyed_training.py and keyed_inference.py measured 2-8 MiB; 3 MiB was as fast as
# any for both).
CPU_CHUNK_BYTES = 3 * 2**20
# Dtypes the keyed ops' numba kernels handle on the CPU (gathers, max pooling, depthwise convolution).
NUMBA_DTYPES = (torch.float32, torch.float64)

Reduce = Callable[[torch.Tensor, int, int], torch.Tensor]


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C); a view when x is channels-last."""
    batch, channels, height, width = x.shape
    return x.permute(0, 2, 3, 1).reshape(batch, height * width, channels)


def from_tokens(tokens: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """(B, H*W, C) -> (B, C, H, W) with channels-last strides (no copy)."""
    batch, _, channels = tokens.shape
    return tokens.reshape(batch, out_hw[0], out_hw[1], channels).permute(0, 3, 1, 2)


def gathered(tokens: torch.Tensor, table: torch.Tensor, zero_row: bool) -> Iterator[tuple[torch.Tensor, int, int]]:
    """The rows table[j, t] of each sample, chunk by chunk: (cols (N, taps, C), start, stop) for
    output rows start..stop of the flattened batch. tokens (B, L_in, C); table (L_out, taps) of
    keyed input rows (L_in reads zeros when `zero_row`). An empty batch gives one empty chunk.

    Float CPU chunks that autograd does not track come from a numba kernel; with gradients off
    (inference, a custom Function's passes) into one buffer, which the next chunk overwrites:
    use each chunk before asking for the next."""
    batch, length, channels = tokens.shape
    n_out, taps = table.shape
    total = batch * n_out
    step = total
    if tokens.device.type == "cpu":
        step = max(1, CPU_CHUNK_BYTES // (taps * channels * tokens.element_size()))
    if (
        tokens.device.type == "cpu"
        and tokens.dtype in NUMBA_DTYPES
        and not (torch.is_grad_enabled() and tokens.requires_grad)
    ):
        source = tokens.detach().contiguous().numpy()
        buffer = None
        for start in range(0, max(total, 1), step):
            stop = min(start + step, total)
            if buffer is None or torch.is_grad_enabled():  # autograd may keep a chunk (weight gradients)
                buffer = tokens.new_empty(min(step, total), taps, channels)
            cols = buffer[: stop - start]
            _gather_rows(source, table.numpy(), start, cols.numpy())
            yield cols, start, stop
        return
    if zero_row:
        tokens = torch.cat([tokens, tokens.new_zeros(batch, 1, channels)], 1)  # F.pad fills, then copies
        length += 1
    rows = tokens.reshape(batch * length, channels)
    offsets = torch.arange(0, batch * length, length, device=tokens.device, dtype=table.dtype)
    index = (offsets.view(batch, 1, 1) + table.unsqueeze(0)).view(batch * n_out, taps)
    for start in range(0, max(total, 1), step):
        stop = min(start + step, total)
        yield rows.index_select(0, index[start:stop].view(-1)).view(-1, taps, channels), start, stop


@intrinsic
def _prefetch(typingctx, array, index):
    """Hint that array[index] (a 1-D array) will be read soon: LLVM's prefetch, for reading, into
    every cache level. It never faults and changes nothing."""

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        pointer = cgutils.get_item_pointer(
            context, builder, array_type, context.make_array(array_type)(context, builder, args[0]), [args[1]]
        )
        byte_pointer = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        prefetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32]), "llvm.prefetch.p0i8"
        )
        builder.call(prefetch, [builder.bitcast(pointer, byte_pointer), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(array, index), codegen


# Output rows per parallel task of the gather, and how many rows ahead it prefetches the sources.
GATHER_BLOCK, PREFETCH_AHEAD = 256, 2


@on_torch_threads
@njit(parallel=True, cache=True)
def _gather_rows(tokens, table, start, out):
    """out[r, t] = tokens[b, table[j, t]] (zeros where table[j, t] >= L_in) for the flat output
    rows start + r = b * L_out + j. tokens (B, L_in, C), table (L_out, taps), out (N, taps, C).

    A sample's map is read at random; beyond the L1 cache (a 28x28 map of 32 channels is 100 KB)
    each row waits on the L2, so the rows PREFETCH_AHEAD ahead are asked for first (measured
    1.1-2.3x faster on this machine's AMD cores, the larger the map the more)."""
    n_in, channels = tokens.shape[1], tokens.shape[2]
    n_out, taps = table.shape
    flat = tokens.reshape(-1)
    rows = out.shape[0]
    for block in prange((rows + GATHER_BLOCK - 1) // GATHER_BLOCK):
        stop = min(rows, (block + 1) * GATHER_BLOCK)
        for r in range(block * GATHER_BLOCK, stop):
            ahead = r + PREFETCH_AHEAD
            if ahead < stop:
                b = (start + ahead) // n_out
                j = start + ahead - b * n_out
                for t in range(taps):
                    i = table[j, t]
                    if i < n_in:
                        first = (b * n_in + i) * channels
                        for c in range(0, channels, 16):  # one per 64-byte line of float32
                            _prefetch(flat, first + c)
                        _prefetch(flat, first + channels - 1)
            b = (start + r) // n_out
            j = start + r - b * n_out
            for t in range(taps):
                i = table[j, t]
                dest = out[r, t]
                if i < n_in:
                    source = tokens[b, i]
                    for c in range(channels):
                        dest[c] = source[c]
                else:
                    for c in range(channels):
                        dest[c] = 0


def gather_reduce(tokens: torch.Tensor, table: torch.Tensor, zero_row: bool, reduce: Reduce) -> torch.Tensor:
    """Gather rows table[j, t] of each sample (see `gathered`) and reduce each output's taps:
    reduce(cols (N, taps, C), start, stop) -> (N, C_out). Returns a new (B, L_out, C_out) tensor
    (not a view: a custom autograd Function may return it and have it changed in place)."""
    out = None
    for cols, start, stop in gathered(tokens, table, zero_row):
        part = reduce(cols, start, stop)
        if out is None:
            out = part.new_empty(tokens.shape[0], table.shape[0], part.shape[-1])
        out.view(-1, part.shape[-1])[start:stop] = part
    return out


def transposed_table(table: torch.Tensor, n_in: int) -> torch.Tensor | None:
    """(L_in, taps) int32: the output row j whose tap t reads input row i (L_out where none), the
    table that runs a gather backwards as another gather; None when one tap of several outputs
    reads the same row (reflect, replicate or circular padding at the borders).

    table: (L_out, taps) keyed input rows, L_in (the zero row) outside the map.
    """
    n_out, taps = table.shape
    index = table.long()
    inside = index < n_in
    slot = (index * taps + torch.arange(taps, device=table.device))[inside]
    if torch.bincount(slot, minlength=n_in * taps).max() > 1:
        return None
    out = torch.full((n_in * taps,), n_out, dtype=torch.int32, device=table.device)
    rows = torch.arange(n_out, dtype=torch.int32, device=table.device).view(-1, 1).expand(n_out, taps)
    out[slot] = rows[inside]
    return out.view(n_in, taps)


def matmul_rows(
    rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, out: torch.Tensor | None = None
) -> torch.Tensor:
    """rows (N, K) @ weight (O, K).T + bias -> (N, O), written into `out` (N, O) when given.

    One BLAS GEMM: on the CPU measured here as fast as oneDNN's 1x1 convolution for the keyed
    layers' chunks, and it writes straight into the caller's output rows (no copy).
    """
    if bias is None:
        return torch.mm(rows, weight.t(), out=out)
    return torch.addmm(bias, rows, weight.t(), out=out)
