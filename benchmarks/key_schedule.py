"""Key schedule, per-frame permutations, value masks and frame shuffling speed.

    python benchmarks/key_schedule.py [--rounds R]

Targets:
- a 1920x1080 paper-mode permutation in < 0.5 s; shuffling a 1080p RGB frame in
  a few ms;
- a fresh per-frame permutation (the keyed PRP, a never-seen nonce) in
  <= 3 ms at 640x480 and <= 15 ms at 1920x1080.
Baselines measured in the same run: numpy's argsort of the same number of random uint64 (the sort
the paper's schedule is built on) and a plain copy of the frame (the floor for any shuffle). Numba's
kernels run on torch's thread count (base/threads.py): the machine's cores unless set otherwise.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import numba
import numpy as np
import torch

from privcam.privacy import Key, Readout, permutation, shuffle, unshuffle


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
    rng = np.random.default_rng(0)
    nonces = itertools.count(1)  # permutations are cached: a new nonce forces a fresh one
    masked = Readout(mode="masked")
    print(f"numba threads {numba.get_num_threads()}, torch threads {torch.get_num_threads()}; medians of {args.rounds}")
    times = {}
    for height, width in ((480, 640), (1080, 1920)):
        size = f"{width}x{height}"
        keys = rng.integers(0, 2**63, height * width, dtype=np.uint64)
        rows = [
            (f"baseline: argsort of {height * width} uint64", lambda k=keys: np.argsort(k, kind="stable")),
            (  # what a paper-mode readout computes once per frame size (a fresh label: no cache)
                f"paper-mode permutation {size} (SHAKE-256 + sort)",
                lambda h=height, w=width: permutation(key, f"readout/{h}x{w}/{next(nonces)}", h * w),
            ),
            (
                f"per-frame permutation {size} (keyed PRP)",
                lambda h=height, w=width: masked.for_frame(next(nonces)).permutation(key, h, w),
            ),
            (
                f"per-frame inverse {size} (keyed PRP)",
                lambda h=height, w=width: masked.for_frame(next(nonces)).inverse(key, h, w),
            ),
            (
                f"value mask {size} RGB, 12 bit (ChaCha20)",
                lambda h=height, w=width: masked.for_frame(next(nonces)).mask(key, h, w, 3, 12),
            ),
        ]
        for label, fn in rows:
            times[label] = median_seconds(fn, args.rounds)
    height, width = 1080, 1920
    frame = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    frame_t = torch.from_numpy(frame).permute(2, 0, 1).contiguous()
    perm = Readout(mode="paper").permutation(key, height, width)
    for label, fn in [
        ("baseline: copy of the 1080p RGB frame", lambda: frame.copy()),
        ("shuffle numpy (H, W, 3) uint8", lambda: shuffle(frame, perm)),
        ("unshuffle numpy (H, W, 3) uint8", lambda: unshuffle(frame, perm)),
        ("shuffle torch (3, H, W) uint8", lambda: shuffle(frame_t, perm)),
    ]:
        times[label] = median_seconds(fn, args.rounds)
    for label, seconds in times.items():
        print(f"{label:<48} {seconds * 1000:8.2f} ms")
    print()
    for height, width, target in ((480, 640, 3.0), (1080, 1920, 15.0)):
        size = f"{width}x{height}"
        prp = times[f"per-frame permutation {size} (keyed PRP)"] * 1000
        sort = times[f"baseline: argsort of {height * width} uint64"] * 1000
        print(f"per-frame permutation {size}: {prp:.2f} ms, {prp / sort:.3f}x the argsort baseline; "
              f"target <= {target:.0f} ms: {'met' if prp <= target else 'MISSED'}")  # fmt: skip
    paper = times["paper-mode permutation 1920x1080 (SHAKE-256 + sort)"]
    print(f"paper-mode permutation 1920x1080 < 0.5 s: {paper:.3f} s, {'met' if paper < 0.5 else 'MISSED'}")
    shuffle_ms = times["shuffle numpy (H, W, 3) uint8"] * 1000
    print(f"shuffle a few ms (<= 5 ms): {shuffle_ms:.2f} ms, {'met' if shuffle_ms <= 5 else 'MISSED'}")


if __name__ == "__main__":
    main()
