"""simulate at scale: peak memory against frame count, and torchrun's speed-up with byte-identical shards.

    python benchmarks/simulate.py [--frames 10000 100000] [--nproc 2] [--workdir DIR]

For each frame count N, Fashion-MNIST training scenes (limit N/repeat, repeat ceil(N/60000)) go
through the machine_vision_12bit sensor in the default "masked" mode into WebDataset shards of 1000
frames, in one process (torch's default threads), and the peak RSS of that process is reported: a
run in constant memory shows about the same peak at every N. For the largest N the same run (its
identity.json copied, so the same nonce prefix and epoch) goes through `torchrun --nproc_per_node
NPROC` (OMP_NUM_THREADS=1 per rank) into another folder: the benchmark checks that every shard and
the manifest are byte-identical to the one-process run and prints the speed-up in wall time; the
same again for one process with NPROC worker processes (`task.workers`).
Needs Fashion-MNIST (apt-get install dataset-fashion-mnist).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FASHION_MNIST_TRAIN = 60_000


def run_file(folder: Path, frames: int) -> Path:
    repeat = math.ceil(frames / FASHION_MNIST_TRAIN)
    path = folder / f"simulate_{frames}.yaml"
    path.write_text(
        f"name: simulate_{frames}\n"
        "key: {path: bench.key}\n"
        f"data: {{source: fashion_mnist, split: train, limit: {frames // repeat}, repeat: {repeat}}}\n"
        "sensor: {preset: machine_vision_12bit, seed: 0}\n"
        "task: {name: simulate, shard_size: 1000, previews: 0}\n"
    )
    return path


def one_process(path: Path, out: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of `privcam run` in a child process."""
    code = (
        "import resource, sys\n"
        "from privcam.pipelines.cli import main\n"
        "status = main(sys.argv[1:])\n"
        "print('PEAK_RSS_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
        "sys.exit(status)\n"
    )
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", code, "run", str(path), "--set", f"output.dir={out}"],
        capture_output=True,
        text=True,
        cwd=path.parent,
    )
    wall = time.perf_counter() - start
    if result.returncode:
        sys.exit(f"privcam run failed:\n{result.stderr[-3000:]}")
    peak = next(line for line in result.stdout.splitlines() if line.startswith("PEAK_RSS_KIB"))
    return wall, int(peak.split()[1]) / 1024


def torchrun(path: Path, out: Path, nproc: int) -> float:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--master_port=29541",
         "-m", "privcam.pipelines.cli", "run", str(path), "--set", f"output.dir={out}"],
        capture_output=True,
        text=True,
        cwd=path.parent,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    if result.returncode:
        sys.exit(f"torchrun failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - start


def identical(a: Path, b: Path) -> tuple[int, int]:
    """(files compared, files that differ) over the shards and the manifest."""
    names = [p.relative_to(a) for p in sorted((a / "shards").iterdir())] + [Path("manifest.json")]
    return len(names), sum((a / n).read_bytes() != (b / n).read_bytes() for n in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--workdir", type=Path, help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args()
    folder = args.workdir or Path(tempfile.mkdtemp(prefix="privcam-simulate-"))
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "privcam.pipelines.cli", "keygen", "bench.key", "--force"], cwd=folder,
                   check=True, capture_output=True)  # fmt: skip
    print(f"cpu cores {os.cpu_count()}; one process: torch default threads; torchrun: 1 thread per rank")
    results = {}
    for frames in args.frames:
        path = run_file(folder, frames)
        wall, peak = one_process(path, folder / f"one_{frames}")
        results[frames] = wall
        print(f"{frames:>7} frames, 1 process: {wall:7.1f} s ({frames / wall:6.0f} frames/s), peak RSS {peak:6.0f} MiB")
    frames = max(args.frames)
    path, one = run_file(folder, frames), folder / f"one_{frames}"
    for name in ("ranks", "workers"):  # the same run (identity.json: nonce prefix, epoch) in another folder
        (folder / f"{name}_{frames}").mkdir(exist_ok=True)
        shutil.copy(one / "identity.json", folder / f"{name}_{frames}" / "identity.json")
    wall = torchrun(path, folder / f"ranks_{frames}", args.nproc)
    compared, differ = identical(one, folder / f"ranks_{frames}")
    print(
        f"{frames:>7} frames, torchrun {args.nproc} ranks: {wall:7.1f} s ({frames / wall:6.0f} frames/s), "
        f"speed-up {results[frames] / wall:.2f}x; {compared} files compared, {differ} differ"
    )
    path.write_text(path.read_text().replace("previews: 0}", f"previews: 0, workers: {args.nproc}}}"))
    wall, peak = one_process(path, folder / f"workers_{frames}")
    compared, differ = identical(one, folder / f"workers_{frames}")
    print(
        f"{frames:>7} frames, 1 process, {args.nproc} workers: {wall:7.1f} s ({frames / wall:6.0f} frames/s), "
        f"speed-up {results[frames] / wall:.2f}x, peak RSS {peak:.0f} MiB (parent); "
        f"{compared} files compared, {differ} differ"
    )
    stats = json.loads((one / "stats.json").read_text())
    print(f"stats: {stats['frames']} frames in {stats['shards']} shards; peak RSS of this script "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")  # fmt: skip
    if args.workdir is None:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
