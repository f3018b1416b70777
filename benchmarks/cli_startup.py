"""Start-up time of the privcam command: wall time of whole processes, as a user waits for them.

    python benchmarks/cli_startup.py [--rounds R]

Each command runs R times, interleaved with two baselines measured in the same rounds: a bare
`python -c pass` and `python -c "import torch"` (what every command paid before it imported heavy
modules where they are used). Medians; ratios are against the bare interpreter.
Targets: `privcam --help` and `privcam info` <= 1 s, `privcam validate`
<= 3 s on a quiet 2-core machine. A run file with `augment:` imports kornia (and so torch) to check
the augmentations' parameters; it is timed separately.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRIVCAM = [sys.executable, "-m", "privcam.pipelines.cli"]
COMMANDS = {
    "baseline: python -c pass": [sys.executable, "-c", "pass"],
    "baseline: python -c 'import torch'": [sys.executable, "-c", "import torch"],
    "privcam --help": [*PRIVCAM, "--help"],
    "privcam info": [*PRIVCAM, "info"],
    "privcam validate (no augment)": [*PRIVCAM, "validate", "reproduce_fashion_mnist"],
    "privcam validate (augment: kornia)": [*PRIVCAM, "validate", "train_fashion_mnist"],
}
TARGETS = {"privcam --help": 1.0, "privcam info": 1.0, "privcam validate (no augment)": 3.0}


def wall_time(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL, env=os.environ)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for command in COMMANDS.values():  # warm the page cache once
        wall_time(command)
    for _ in range(args.rounds):
        for name, command in COMMANDS.items():
            times[name].append(wall_time(command))
    bare = statistics.median(times["baseline: python -c pass"])
    print(f"{os.cpu_count()} CPUs; medians of {args.rounds} interleaved rounds; ratio = time / bare interpreter")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"  {name:<38} {median:6.2f} s  (range {min(samples):.2f}-{max(samples):.2f})  {median / bare:6.1f}x")
    print("Targets")
    for name, target in TARGETS.items():
        median = statistics.median(times[name])
        print(f"  {name:<38} <= {target:.0f} s: {median:.2f} s, {'met' if median <= target else 'MISSED'}")


if __name__ == "__main__":
    main()
