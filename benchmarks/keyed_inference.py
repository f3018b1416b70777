"""Keyed inference speed against the plain network, and the cost of building index tables.

    python benchmarks/keyed_inference.py [--threads N] [--rounds R] [--quick]

Every variant runs in the same process on the same thread count, interleaved round by round
(the machine is shared and noisy); each number is a median over rounds, and each ratio is
against the plain model measured in those same rounds.
Targets: gather <= 1.1x plain at batch 1 and <= 1.15x at batch 64, at 1 and at 2 threads
(VGG16-BN CIFAR); all VGG16 tables at 224x224 built in <= 50 ms and held in <= 6 MB.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from privcam.nets import create_model, to_keyed
from privcam.privacy import Key, shuffle


def time_call(fn, x, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn(x)
    return (time.perf_counter() - start) / calls


def bench_case(name: str, model: torch.nn.Module, input_size, batch: int, rounds: int, calls: int, key: Key) -> None:
    model.eval()
    channels_last = create_model_like(model).to(memory_format=torch.channels_last)
    variants = {
        "plain": model,
        "plain channels-last": lambda x: channels_last(x.contiguous(memory_format=torch.channels_last)),
        "gather (BN folded)": to_keyed(model, key, input_size, fold_batchnorm=True),
        "gather (BN kept)": to_keyed(model, key, input_size),
        "deform (BN folded)": to_keyed(model, key, input_size, backend="deform", fold_batchnorm=True),
    }
    frames = torch.randn(batch, *input_size)
    keyed_frames = shuffle(frames, variants["gather (BN kept)"].input_permutation)
    times: dict[str, list[float]] = {v: [] for v in variants}
    with torch.inference_mode():
        for fn in variants.values():
            fn(frames)  # warm-up
        for _ in range(rounds):
            for label, fn in variants.items():
                x = frames if label.startswith("plain") else keyed_frames
                per_call = calls if not label.startswith("deform") else max(1, calls // 4)
                times[label].append(time_call(fn, x, per_call))
    plain = statistics.median(times["plain"])
    print(f"\n{name}, batch {batch}, input {tuple(input_size)}")
    for label, samples in times.items():
        median = statistics.median(samples)
        print(f"  {label:<22} {median * 1000:9.2f} ms   {median / plain:6.2f}x plain")
    return {label: statistics.median(samples) / plain for label, samples in times.items()}


def create_model_like(model: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(model)


def table_costs(key: Key, sizes) -> dict[int, tuple[float, int]]:
    features = create_model("vgg16_bn_cifar").features.eval()
    print("\nVGG16 index tables (13 convs + 5 max pools): build time (permutations + tables) and size")
    costs = {}
    for size in sizes:
        runs = [to_keyed(features, key, (3, size, size)).build_stats for _ in range(3)]
        seconds = statistics.median(r.table_seconds for r in runs)
        table_bytes = runs[0].table_bytes
        costs[size] = (seconds, table_bytes)
        print(f"  {size:>4}x{size:<4} {seconds * 1000:8.1f} ms   {table_bytes / 2**20:7.2f} MiB")
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and calls, for a smoke run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rounds = 2 if args.quick else args.rounds
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {rounds} interleaved rounds")
    key = Key.generate()
    torch.manual_seed(0)
    vgg = create_model("vgg16_bn_cifar")
    batch1 = bench_case("VGG16-BN CIFAR", vgg, (3, 32, 32), 1, rounds, 2 if args.quick else 20, key)
    batch64 = bench_case("VGG16-BN CIFAR", vgg, (3, 32, 32), 64, rounds, 1, key)
    if not args.quick:
        bench_case("resnet18", create_model("resnet18"), (3, 224, 224), 8, rounds, 1, key)
    costs = table_costs(key, (32, 224) if args.quick else (32, 224, 512))
    seconds_224, bytes_224 = costs[224]
    print("\nTargets")
    checks = [
        ("gather <= 1.10x plain, VGG16 batch 1", batch1["gather (BN folded)"], 1.10),
        ("gather <= 1.15x plain, VGG16 batch 64", batch64["gather (BN folded)"], 1.15),
        ("VGG16 tables at 224x224 <= 50 ms", seconds_224 * 1000, 50.0),
        ("VGG16 tables at 224x224 <= 6 MB", bytes_224 / 1e6, 6.0),
    ]
    for label, value, target in checks:
        print(f"  {label:<40} {value:8.2f}   {'met' if value <= target else 'MISSED'}")


if __name__ == "__main__":
    main()
