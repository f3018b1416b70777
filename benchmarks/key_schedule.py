"""Key schedule and frame shuffling speed at 1080p.

    python benchmarks/key_schedule.py [--rounds R]

Targets (issue "Foundation"): a 1920x1080 permutation in < 0.5 s; shuffling a 1080p RGB frame in
a few ms. Baselines measured in the same run: numpy's argsort of 2M random uint64 (the sort the
schedule is built on) and a plain copy of the frame (the floor for any shuffle).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import numpy as np
import torch

from privcam.privacy import Key, Readout, shuffle, unshuffle


def median_seconds(fn, rounds: int) -> float:
    fn()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args()
    key = Key.generate()
    height, width = 1080, 1920
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    frame_t = torch.from_numpy(frame).permute(2, 0, 1).contiguous()
    random_keys = rng.integers(0, 2**63, height * width, dtype=np.uint64)
    perm = Readout().permutation(key, height, width)
    nonces = itertools.count(1)  # readout permutations are cached: a new nonce forces a fresh one
    pixel, quad = Readout(mode="per_frame"), Readout(unit="quad", mode="per_frame")

    rows = [
        ("baseline: argsort of 2M uint64", lambda: np.argsort(random_keys, kind="stable")),
        ("readout permutation 1080x1920", lambda: pixel.for_frame(next(nonces)).permutation(key, height, width)),
        ("readout permutation quad", lambda: quad.for_frame(next(nonces)).permutation(key, height, width)),
        ("baseline: copy of the RGB frame", lambda: frame.copy()),
        ("shuffle numpy (H, W, 3) uint8", lambda: shuffle(frame, perm)),
        ("unshuffle numpy (H, W, 3) uint8", lambda: unshuffle(frame, perm)),
        ("shuffle torch (3, H, W) uint8", lambda: shuffle(frame_t, perm)),
    ]
    times = {label: median_seconds(fn, args.rounds) for label, fn in rows}
    for label, seconds in times.items():
        print(f"{label:<34} {seconds * 1000:8.2f} ms")
    sort = times["baseline: argsort of 2M uint64"]
    copy = times["baseline: copy of the RGB frame"]
    print(f"\npermutation / argsort baseline: {times['readout permutation 1080x1920'] / sort:.2f}x")
    print(f"numpy shuffle / frame copy:     {times['shuffle numpy (H, W, 3) uint8'] / copy:.2f}x")
    perm_s = times["readout permutation 1080x1920"]
    shuffle_ms = times["shuffle numpy (H, W, 3) uint8"] * 1000
    print(f"target permutation < 0.5 s: {perm_s:.3f} s, {'met' if perm_s < 0.5 else 'MISSED'}")
    print(f"target shuffle a few ms (<= 5 ms): {shuffle_ms:.2f} ms, {'met' if shuffle_ms <= 5 else 'MISSED'}")


if __name__ == "__main__":
    main()
