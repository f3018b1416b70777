"""Census: every torchvision classification and segmentation model, converted with to_keyed.

    python benchmarks/keyed_zoo.py [--threads N] [--models a,b,...] [--out runs/keyed_zoo]
    python benchmarks/keyed_zoo.py --speed vit_b_16,convnext_tiny,swin_t [--threads N] [--rounds R]

Each model is built with random weights (nothing is downloaded; all-zero parameters, such as
ViT's head and class token, are redrawn so that a match means something), at the smallest square
input it accepts from 32, 64, 96, 128 and 224 (a ViT is built for two patches a side). It is
converted with the gather backend (and the deform backend, which applies to CNNs), checked keyed ==
plain (relative error against the largest output, same top-1 per sample or per pixel) and timed:
batch 2, the median of 3 calls each, keyed and plain interleaved. Writes zoo.md (one row per
family: models, OK or refused, worst relative error, keyed/plain time) and zoo.json (per model).

--speed times the named models at 224x224, batch 8, keyed (gather) against plain in one process:
each round calls plain, keyed, keyed, plain (so neither always runs second) and its ratio is the
keyed time over the plain time; prints the median and the range over the rounds. It also times,
inside those calls, the layers that keying replaced (privcam's keyed modules) against the plain
modules of the same name: a quieter view of what keying costs than the whole call.
Targets: ViT-B/16 <= 1.05x plain; convnext_tiny and swin_t <= 1.3x.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
import warnings
from pathlib import Path

import torch
from torchvision import models

from privcam.nets import KeyConversionError, to_keyed
from privcam.privacy import Key, shuffle

SIZES = (32, 64, 96, 128, 224)
TOLERANCE = 1e-5


FAMILIES = (  # longest prefix first
    "efficientnet_v2",
    "mobilenet_v2",
    "mobilenet_v3",
    "wide_resnet",
    "deeplabv3",
    "swin_v2",
    "alexnet",
    "convnext",
    "densenet",
    "efficientnet",
    "googlenet",
    "inception",
    "maxvit",
    "mnasnet",
    "regnet",
    "resnext",
    "resnet",
    "shufflenet",
    "squeezenet",
    "swin",
    "vgg",
    "vit",
    "fcn",
    "lraspp",
)


def family(name: str) -> str:
    """resnet50 -> resnet, efficientnet_v2_s -> efficientnet_v2, fcn_resnet50 -> fcn."""
    return next((f for f in FAMILIES if name.startswith(f)), name)


def build(name: str, segmentation: bool) -> tuple[torch.nn.Module, int]:
    """The model with random weights at the smallest input it runs on."""
    for size in SIZES:
        kwargs = {}
        if name.startswith("vit_"):
            kwargs["image_size"] = 2 * int(re.search(r"(\d+)$", name).group(1))
            size = kwargs["image_size"]
        if segmentation:
            kwargs.update(weights_backbone=None, aux_loss=None)
        model = models.get_model(name, weights=None, **kwargs).eval()
        try:
            with torch.no_grad():
                model(torch.randn(1, 3, size, size))
        except Exception:
            continue
        with torch.no_grad():
            for parameter in model.parameters():
                if not parameter.abs().sum():
                    parameter.normal_(0, 0.02)
        return model, size
    raise ValueError(f"{name} runs on none of the sizes {SIZES}")


def tensors(output) -> list[torch.Tensor]:
    if isinstance(output, dict):
        return [v for _, v in sorted(output.items())]
    return list(output) if isinstance(output, tuple | list) else [output]


def check(name: str, segmentation: bool, key: Key) -> dict:
    model, size = build(name, segmentation)
    row = {"model": name, "family": family(name), "kind": "segmentation" if segmentation else "classification"}
    row["input"] = size
    frames = torch.randn(2, 3, size, size)
    backends = {}
    for backend in ("gather", "deform"):
        try:
            keyed = to_keyed(model, key, (3, size, size), backend=backend)
        except KeyConversionError as err:
            if backend == "deform" and "deform backend" in str(err):
                continue  # asymmetric padding: the gather backend only
            if backend == "gather":
                return {**row, "status": "refused", "reason": str(err)}
            raise
        backends[backend] = keyed
    keyed_frames = shuffle(frames, backends["gather"].input_permutation)
    with torch.inference_mode():
        plain_out = tensors(model(frames))
        worst, same_top1 = 0.0, True
        for keyed in backends.values():
            keyed_out = tensors(keyed(keyed_frames))
            for out, reference in zip(keyed_out, plain_out, strict=True):
                if out.dim() == 4:
                    reference = shuffle(reference, keyed.output_permutation)
                worst = max(worst, float((out - reference).abs().max() / reference.abs().max()))
                same_top1 &= bool(torch.equal(out.argmax(1), reference.argmax(1)))
        times = {"plain": [], "keyed": []}
        for _ in range(3):
            for label, fn, x in (("plain", model, frames), ("keyed", backends["gather"], keyed_frames)):
                start = time.perf_counter()
                fn(x)
                times[label].append(time.perf_counter() - start)
    ratio = statistics.median(times["keyed"]) / statistics.median(times["plain"])
    ok = worst <= TOLERANCE and same_top1
    return {
        **row,
        "status": "ok" if ok else "MISMATCH",
        "backends": list(backends),
        "worst_relative_error": worst,
        "same_top1": same_top1,
        "plain_ms": 1000 * statistics.median(times["plain"]),
        "keyed_over_plain": ratio,
    }


def census(names: list[tuple[str, bool]], key: Key, progress=print) -> list[dict]:
    rows = []
    for name, segmentation in names:
        started = time.perf_counter()
        try:
            row = check(name, segmentation, key)
        except Exception as err:  # a failure of the census itself, reported, not hidden
            row = {"model": name, "family": family(name), "status": "ERROR", "reason": f"{type(err).__name__}: {err}"}
        rows.append(row)
        progress(f"{name:<28} {row['status']:<9} {time.perf_counter() - started:6.1f} s  {_detail(row)}")
    return rows


def _detail(row: dict) -> str:
    if "reason" in row:
        return row["reason"][:150]
    return f"err {row['worst_relative_error']:.1e}, keyed/plain {row['keyed_over_plain']:.2f}x, {row['backends']}"


def all_models() -> list[tuple[str, bool]]:
    classification = [(n, False) for n in models.list_models(module=models)]
    return classification + [(n, True) for n in models.list_models(module=models.segmentation)]


def table(rows: list[dict]) -> str:
    lines = [
        "| family | models | OK | refused | mismatch or error | worst relative error | keyed/plain time |",
        "|---|---|---|---|---|---|---|",
    ]
    families: dict[str, list[dict]] = {}
    for row in rows:
        families.setdefault(row["family"], []).append(row)
    for name, members in families.items():
        ok = [r for r in members if r["status"] == "ok"]
        errors = [r["worst_relative_error"] for r in members if "worst_relative_error" in r]
        ratios = [r["keyed_over_plain"] for r in ok]
        refused = sum(r["status"] == "refused" for r in members)
        lines.append(
            f"| {name} | {len(members)} | {len(ok)} | {refused} | {len(members) - len(ok) - refused} | "
            f"{f'{max(errors):.1e}' if errors else '-'} | "
            f"{f'{min(ratios):.2f}-{max(ratios):.2f}x' if ratios else '-'} |"
        )
    return "\n".join(lines)


def _time_modules(pairs: list[tuple[torch.nn.Module, torch.nn.Module]]) -> tuple[list[float], list[float]]:
    """Hooks that add each call's time in the keyed modules and in their plain counterparts."""
    totals: tuple[list[float], list[float]] = ([], [])
    for side, modules in enumerate(zip(*pairs, strict=True)):
        for module in modules:
            started: list[float] = []
            module.register_forward_pre_hook(lambda *_, s=started: s.append(time.perf_counter()))
            module.register_forward_hook(lambda *_, s=started, t=totals[side]: t.append(time.perf_counter() - s.pop()))
    return totals


def speed(names: list[str], rounds: int, key: Key) -> None:
    for name in names:
        model = models.get_model(name, weights=None).eval()
        keyed = to_keyed(model, key, (3, 224, 224))
        keyed_layers = {
            qualified.removeprefix("graph_module."): module
            for qualified, module in keyed.named_modules()
            if type(module).__module__.startswith("privcam.") and qualified.startswith("graph_module.")
        }
        keyed_layers = {  # outermost only: a keyed layer's time includes its keyed parts
            n: m for n, m in keyed_layers.items() if not any(n.startswith(f"{o}.") for o in keyed_layers)
        }
        plain_layers = dict(model.named_modules())
        comparable = keyed_layers.keys() <= plain_layers.keys()  # else keying replaced functions too
        replaced = [(m, plain_layers[n]) for n, m in keyed_layers.items()] if comparable else []
        frames = torch.randn(8, 3, 224, 224)
        keyed_frames = shuffle(frames, keyed.input_permutation)
        samples = {"plain": [], "keyed": []}
        calls = {"plain": (model, frames), "keyed": (keyed, keyed_frames)}
        with torch.inference_mode():
            model(frames), keyed(keyed_frames)  # warm-up
            in_keyed, in_plain = _time_modules(replaced)
            for _ in range(rounds):
                for label in ("plain", "keyed", "keyed", "plain"):
                    fn, x = calls[label]
                    start = time.perf_counter()
                    fn(x)
                    samples[label].append(time.perf_counter() - start)
        pairs = zip(
            samples["keyed"][::2], samples["keyed"][1::2], samples["plain"][::2], samples["plain"][1::2], strict=True
        )
        ratios = [(k1 + k2) / (p1 + p2) for k1, k2, p1, p2 in pairs]
        plain, keyed_time = statistics.median(samples["plain"]), statistics.median(samples["keyed"])
        calls_made = 2 * rounds
        layers = (
            f"{len(replaced)} keyed layers {sum(in_keyed) / calls_made * 1000:.1f} ms against plain's "
            f"{sum(in_plain) / calls_made * 1000:.1f} ms: "
            f"{1 + (sum(in_keyed) - sum(in_plain)) / calls_made / plain:.3f}x"
            if comparable
            else "keyed layers without a plain module of the same name: not compared"
        )
        print(
            f"{name:<16} plain {plain * 1000:8.1f} ms  keyed {keyed_time * 1000:8.1f} ms  "
            f"keyed/plain {statistics.median(ratios):.2f}x (rounds {min(ratios):.2f}-{max(ratios):.2f}x)  {layers}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--models", help="comma-separated names (default: every classification and segmentation model)")
    parser.add_argument("--out", type=Path, default=Path("runs/keyed_zoo"))
    parser.add_argument("--speed", help="comma-separated classifiers to time at 224x224, batch 8")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    if args.speed:
        print(f"{args.threads} threads, torch {torch.__version__}, batch 8, 224x224, {args.rounds} rounds")
        speed(args.speed.split(","), args.rounds, Key.generate())
        return
    segmentation = set(models.list_models(module=models.segmentation))
    names = all_models() if not args.models else [(n, n in segmentation) for n in args.models.split(",")]
    print(f"{len(names)} models, {args.threads} threads, torch {torch.__version__}")
    rows = census(names, Key.generate())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "zoo.json").write_text(json.dumps(rows, indent=2))
    (args.out / "zoo.md").write_text(table(rows) + "\n")
    ok = sum(r["status"] == "ok" for r in rows)
    print(f"\n{table(rows)}\n\n{ok} of {len(rows)} models keyed exactly; {args.out / 'zoo.md'}")


if __name__ == "__main__":
    main()
