"""Keyed training speed: one SGD step of the small CNN on Fashion-MNIST-sized batches, keyed
(gather backend, on protected frames) against plain, interleaved round by round in one process.

    python benchmarks/keyed_training.py [--threads N] [--rounds R] [--steps S]

A step is forward, cross-entropy, backward and an SGD (momentum) update of a batch of 128 frames
of 1x28x28, as `privcam run train_fashion_mnist` takes them; an epoch is 469 such steps, so the
ratio per step is the ratio per epoch (data loading and augmentation aside: they are the same
work for both). Frames are random: speed does not depend on the values.
Target: keyed <= 1.3x plain per epoch.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from privcam.nets import create_model, to_keyed
from privcam.privacy import Key, shuffle

BATCH, STEPS_PER_EPOCH = 128, 469


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="steps timed per round and variant")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    plain = create_model("small_cnn", num_classes=10, in_channels=1).train()
    keyed = to_keyed(create_model("small_cnn", num_classes=10, in_channels=1), Key.generate(), (1, 28, 28))
    frames, labels = torch.randn(BATCH, 1, 28, 28), torch.randint(0, 10, (BATCH,))
    variants = {
        "plain": (plain, frames),
        "keyed": (keyed, shuffle(frames, keyed.input_permutation)),
    }
    optimizers = {
        name: torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9) for name, (model, _) in variants.items()
    }

    def step(name: str) -> None:
        model, x = variants[name]
        optimizers[name].zero_grad()
        F.cross_entropy(model(x), labels).backward()
        optimizers[name].step()

    times: dict[str, list[float]] = {name: [] for name in variants}
    for name in variants:
        step(name)  # warm-up: the keyed network builds its backward tables here
    for _ in range(args.rounds):
        for name in variants:
            start = time.perf_counter()
            for _ in range(args.steps):
                step(name)
            times[name].append((time.perf_counter() - start) / args.steps)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}, {args.rounds} rounds")
    ratios = [k / p for k, p in zip(times["keyed"], times["plain"], strict=True)]
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"  {name:<6} {median * 1000:8.1f} ms/step  {median * STEPS_PER_EPOCH:6.1f} s/epoch")
    ratio = statistics.median(ratios)
    verdict = "met" if ratio <= 1.3 else "MISSED"
    print(f"keyed/plain {ratio:.2f}x (rounds {min(ratios):.2f}-{max(ratios):.2f}x); target <= 1.3x: {verdict}")


if __name__ == "__main__":
    main()
