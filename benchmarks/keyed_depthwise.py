"""One ConvNeXt-style 7x7 depthwise convolution, plain against keyed (the gather backend's fused
CPU kernel, nets/ops/depthwise.py), and a tap-by-tap variant of the keyed one built from torch ops.

    python benchmarks/keyed_depthwise.py [--threads N] [--calls K]

The layer is convnext_tiny's first: 96 channels at 56x56, batch 8. Each variant's mean over K
calls after one warm-up; the keyed outputs are checked against the plain one in keyed order.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from privcam.nets.ops.conv import KeyedConv2d
from privcam.nets.spatial_ops import conv_op
from privcam.privacy import Key, permutation, shuffle


def tap_by_tap(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """The keyed depthwise convolution as 49 gathers, each multiplied into the output in place."""
    batch, channels, height, width = x.shape
    tokens = F.pad(x.permute(0, 2, 3, 1).reshape(batch, height * width, channels), (0, 0, 0, 1))
    taps = weight.reshape(channels, -1).t()
    out = bias.expand(batch, table.shape[0], channels).clone()
    for t in range(table.shape[1]):
        out.addcmul_(tokens[:, table[:, t]], taps[t])
    return out.view(batch, height, width, channels).permute(0, 3, 1, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--calls", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    key = Key.from_hex("ab" * 32)
    batch, channels, size = 8, 96, 56
    conv = nn.Conv2d(channels, channels, 7, padding=3, groups=channels)
    perm_in, perm_out = permutation(key, "bench/in", size * size), permutation(key, "bench/out", size * size)
    keyed = KeyedConv2d(conv, conv_op(conv, (size, size), (size, size)).stencil, perm_in, perm_out)
    x = torch.randn(batch, channels, size, size)
    keyed_x = shuffle(x, perm_in).contiguous(memory_format=torch.channels_last)
    table = keyed.table.long()
    variants = {
        "plain": lambda: conv(x),
        "keyed (fused kernel)": lambda: keyed(keyed_x),
        "keyed, tap by tap": lambda: tap_by_tap(keyed_x, conv.weight, conv.bias, table),
    }
    print(f"{args.threads} threads, depthwise 7x7, {channels} channels, {size}x{size}, batch {batch}")
    with torch.inference_mode():
        reference = shuffle(conv(x), perm_out)
        for label, fn in variants.items():
            out = fn()
            if label != "plain":
                assert torch.allclose(out, reference, atol=1e-4), label
            start = time.perf_counter()
            for _ in range(args.calls):
                fn()
            print(f"  {label:<24} {(time.perf_counter() - start) / args.calls * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
