"""Keyed inference on per-frame protected frames: a never-seen nonce (and value mask) every frame,
against one fixed order, batch 1.

    python benchmarks/nonce.py [--rounds R] [--threads T]

The fixed case is the paper's mode: a network keyed for one order, given frames in that order. The
per-frame case is the default "masked" mode: each frame comes as a KeyedFrames batch with its own
nonce; the network computes that nonce's inverse order (keyed PRP) and mask (ChaCha20), removes the
mask and moves the frame into its own order (one gather), then runs its unchanged tables. Both run
interleaved in the same process.
Target: the per-frame case <= 1.10x the fixed one, VGG16-BN at 32x32
and resnet18 at 224x224.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from privcam.nets import create_model, to_keyed
from privcam.privacy import AdcFormat, Key, KeyedFrames, Readout, shuffle
from privcam.privacy.mask import mask_tensor

ADC = AdcFormat(bit_depth=12, black_level_dn=64)


def masked_frame(codes: torch.Tensor, key: Key, nonce: int) -> KeyedFrames:
    """What the camera sends for codes (1, C, H, W) in the masked mode with `nonce`."""
    readout = Readout(mode="masked", nonce=nonce)
    channels, height, width = codes.shape[1:]
    keyed = shuffle(codes, readout.permutation(key, height, width))
    masked = torch.remainder(keyed + mask_tensor(readout.mask(key, height, width, channels, ADC.bit_depth)), 4096)
    return KeyedFrames(ADC.to_unit(masked).float(), Readout(mode="masked"), [nonce], key.fingerprint, ADC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    key = Key.generate()
    print(f"torch threads {torch.get_num_threads()}; medians of {args.rounds} interleaved rounds, batch 1")
    cases = [
        ("VGG16-BN CIFAR", create_model("vgg16_bn_cifar"), (3, 32, 32)),
        ("resnet18", create_model("resnet18"), (3, 224, 224)),
    ]
    for name, model, size in cases:
        model.eval()
        fixed = to_keyed(model, key, size, readout=Readout(mode="paper"), fold_batchnorm=True)
        rotating = to_keyed(model, key, size, readout=Readout(mode="masked", nonce=0), fold_batchnorm=True, adc=ADC)
        codes = torch.randint(0, 4096, (1, *size)).float()
        fixed_frame = ADC.to_unit(shuffle(codes, fixed.input_permutation)).float()
        frames = [masked_frame(codes, key, nonce) for nonce in range(1, args.rounds + 2)]  # the camera's work
        fixed_times, rotating_times = [], []
        with torch.inference_mode():
            fixed(fixed_frame), rotating(frames[0])
            for frame in frames[1:]:
                start = time.perf_counter()
                fixed(fixed_frame)
                fixed_times.append(time.perf_counter() - start)
                start = time.perf_counter()
                rotating(frame)
                rotating_times.append(time.perf_counter() - start)
        base, rotated = statistics.median(fixed_times), statistics.median(rotating_times)
        print(f"{name} {size[1]}x{size[2]}: fixed order {base * 1000:.2f} ms, new nonce and mask per frame "
              f"{rotated * 1000:.2f} ms, {rotated / base:.3f}x; target <= 1.10x: "
              f"{'met' if rotated / base <= 1.10 else 'MISSED'}")  # fmt: skip


if __name__ == "__main__":
    main()
