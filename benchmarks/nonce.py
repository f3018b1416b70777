"""Per-frame key rotation: the cost of a new readout nonce per frame against one fixed order, batch 1.

    python benchmarks/nonce.py [--rounds R]

With a nonce per frame the keyed network rebuilds the tables of the ops that read the frame (and the
readout permutation) before each frame; everything after its first layer is unchanged. Both cases
run interleaved in the same process. Target (issue "privacy evaluation"): <= 10% overhead at 32x32.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import torch

from privcam.nets import create_model, to_keyed
from privcam.privacy import Key, Readout, shuffle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    key = Key.generate()
    nonces = itertools.count(1)
    cases = [
        ("VGG16-BN CIFAR", create_model("vgg16_bn_cifar"), (3, 32, 32)),
        ("resnet18", create_model("resnet18"), (3, 224, 224)),
    ]
    for name, model, size in cases:
        readout = Readout(mode="per_frame").for_frame(0)
        keyed = to_keyed(model.eval(), key, size, readout=readout, fold_batchnorm=True)
        frame = shuffle(torch.randn(1, *size), keyed.input_permutation)
        fixed, rotating = [], []
        with torch.inference_mode():
            keyed(frame)
            for _ in range(args.rounds):
                start = time.perf_counter()
                keyed.set_input_nonce(key, 0)  # one fixed order: its tables are cached after the first call
                keyed(frame)
                fixed.append(time.perf_counter() - start)
                start = time.perf_counter()
                keyed.set_input_nonce(key, next(nonces))  # a nonce never seen before: tables rebuilt
                keyed(frame)
                rotating.append(time.perf_counter() - start)
        base, rotated = statistics.median(fixed), statistics.median(rotating)
        print(f"{name} {size[1]}x{size[2]}, batch 1: fixed key {base * 1000:.2f} ms, new nonce per frame "
              f"{rotated * 1000:.2f} ms, overhead {100 * (rotated / base - 1):.1f}%")  # fmt: skip


if __name__ == "__main__":
    main()
