"""Keyed against plain kornia augmentation, in the same process and rounds.

    python benchmarks/augment.py [--rounds R] [--device cpu|cuda] [--check]

Each case samples kornia's parameters once per round and times the plain augmentation on scene
frames and the keyed form on protected frames with those parameters (parameter sampling is the
same for both, so it is left out of both). Cases: the usual training pipelines (CIFAR-style crop
with padding + flip at batch 256, 32x32; ImageNet-style resized crop + flip at batch 16, 224x224)
and every keyed spatial augmentation alone. Target: keyed
<= 1.5x plain. --check first compares keyed and plain outputs on the device (float64 frames), so a
GPU run checks the keyed forms there too.
"""

from __future__ import annotations

import argparse
import statistics
import time

import kornia.augmentation as K
import torch

from privcam.augment import KeyedAugmentation
from privcam.privacy import Key, Readout, shuffle

# Untimed first rounds: numba compiles on first use, and the allocator settles on reusing large
# buffers only after a few calls (before that, every new output page-faults).
WARMUP = 5


def spatial_augmentations(size: int) -> list[K.AugmentationBase2D]:
    return [
        K.RandomHorizontalFlip(),
        K.RandomCrop((size, size), padding=size // 8),
        K.RandomResizedCrop((size, size)),
        K.RandomRotation(30.0, p=1.0),
        K.RandomAffine(20.0, translate=(0.1, 0.1), scale=(0.9, 1.1), p=1.0),
        K.RandomPerspective(0.3, p=1.0),
        K.RandomGaussianBlur((5, 5), (0.1, 2.0), p=1.0),
        K.RandomBoxBlur((3, 3), p=1.0),
        K.RandomMotionBlur(5, 30.0, 0.5, p=1.0),
        K.RandomSharpness(0.5, p=1.0),
    ]


def pipelines(size: int) -> dict[str, list[K.AugmentationBase2D]]:
    crop = K.RandomCrop((size, size), padding=size // 8) if size <= 64 else K.RandomResizedCrop((size, size))
    cases = {f"{type(crop).__name__} + RandomHorizontalFlip": [crop, K.RandomHorizontalFlip()]}
    cases.update({type(aug).__name__: [aug] for aug in spatial_augmentations(size)})
    return cases


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_case(augs, frames, protected, key, rounds, device) -> tuple[float, float]:
    """Median times of the kornia pipeline on scenes and of KeyedAugmentation on protected frames."""
    keyed = KeyedAugmentation(augs, key)
    plain_times, keyed_times = [], []
    for _ in range(WARMUP + rounds):
        params = [aug.forward_parameters(frames.shape) for aug in augs]
        sync(device)
        start = time.perf_counter()
        x = frames
        for aug, p in zip(augs, params, strict=True):
            x = aug(x, params=p)
        sync(device)
        plain_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        keyed(protected, params)
        sync(device)
        keyed_times.append(time.perf_counter() - start)
    return statistics.median(plain_times[WARMUP:]), statistics.median(keyed_times[WARMUP:])


def check(augs, batch: int, size: int, key: Key, device: torch.device) -> float:
    """Max |keyed(shuffle(x)) - shuffle(plain(x))| for the same parameters, float64 frames."""
    x = torch.rand(batch, 3, size, size, dtype=torch.float64, device=device)
    params, plain = [], x
    for aug in augs:
        params.append(aug.forward_parameters(plain.shape))
        plain = aug(plain, params=params[-1])
    readout = Readout()
    keyed = KeyedAugmentation(augs, key, readout)(shuffle(x, readout.permutation(key, size, size)), params)
    return (keyed - shuffle(plain, readout.permutation(key, *plain.shape[-2:]))).abs().max().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--check", action="store_true", help="compare keyed and plain outputs first")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    key = Key.generate()
    print(f"device {device}; times are medians of {args.rounds} rounds; ratio = keyed / plain")
    for batch, size in ((256, 32), (16, 224)):
        frames = torch.rand(batch, 3, size, size, device=device)
        protected = shuffle(frames, Readout().permutation(key, size, size))
        print(f"\nbatch {batch}, {size}x{size}")
        with torch.no_grad():  # one untimed pass over every case first (see WARMUP)
            for augs in pipelines(size).values():
                time_case(augs, frames, protected, key, 1, device)
        for name, augs in pipelines(size).items():
            if args.check:
                print(f"  {name:45s} max |keyed - plain| {check(augs, min(batch, 16), size, key, device):.1e}")
            with torch.no_grad():
                plain, keyed = time_case(augs, frames, protected, key, args.rounds, device)
            print(
                f"  {name:45s} plain {plain * 1000:8.2f} ms  keyed {keyed * 1000:8.2f} ms  ratio {keyed / plain:5.2f}x"
            )


if __name__ == "__main__":
    main()
