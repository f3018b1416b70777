"""privcam-demo: protect a picture with a key, then show that the keyed networks match the plain ones.

It writes a picture (scene, the frame as the camera sends it, what the key holder and a wrong-key
holder see, a dense network's output in keyed and revealed order, and a kornia augmentation applied
in keyed form to the protected frame) and the measured numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
from pathlib import Path

import cv2
import kornia.augmentation as K
import numpy as np
import skimage.data
import torch
from torch import nn

from ...augment import KeyedAugmentation
from ...base.atomic import atomic_write
from ...base.images import write_png
from ...nets import BACKENDS, create_model, to_keyed
from ...privacy import AdcFormat, Key, KeyedFrames, KeyFileError, Readout, unshuffle
from ..attacks.visual import psnr

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def load_scene(path: Path | None, size: int) -> tuple[np.ndarray, str]:
    """An RGB uint8 (size, size, 3) scene: the given image, or scikit-image's astronaut."""
    if path is None:
        image, name = skimage.data.astronaut(), "scikit-image astronaut"
    else:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SystemExit(f"error: cannot read an image from {path} (expected a PNG or JPEG file)")
        image, name = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), str(path)
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA), name


class Standardise(nn.Module):
    """ImageNet's input normalisation as a network's first layer (per channel: it keys as it is)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.from_numpy(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.from_numpy(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def to_image(frames: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) RGB in [0, 1] -> (H, W, 3) uint8."""
    return (frames[0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()


def colour_map(values: np.ndarray, low: float, high: float) -> np.ndarray:
    scaled = np.clip((values - low) / max(high - low, 1e-12) * 255, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_VIRIDIS), cv2.COLOR_BGR2RGB)


def panel(rows: list[list[tuple[str, np.ndarray]]]) -> np.ndarray:
    """Tiles with captions above them, row by row, as one RGB image."""
    gap, caption = 8, 26
    tile_h, tile_w = rows[0][0][1].shape[:2]
    width = max(len(r) for r in rows) * (tile_w + gap) + gap
    canvas = np.full((len(rows) * (tile_h + caption + gap) + gap, width, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        top = gap + r * (tile_h + caption + gap)
        for c, (text, tile) in enumerate(row):
            left = gap + c * (tile_w + gap)
            cv2.putText(canvas, text, (left, top + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
            canvas[top + caption : top + caption + tile_h, left : left + tile_w] = tile
    return canvas


def timed(fn, x: torch.Tensor):
    start = time.perf_counter()
    with torch.inference_mode():
        out = fn(x)
    return out, time.perf_counter() - start


def run_demo(out: Path, key: Key, image_path: Path | None, size: int, backend: str) -> dict:
    wrong_key = Key.generate()
    scene, scene_name = load_scene(image_path, size)
    stream, nonce = Readout(), secrets.randbits(64)  # the default "masked" mode, a fresh nonce
    readout = stream.for_frame(nonce)
    protected = readout.read_out(key, scene, 8)  # the 8-bit picture as the camera sends it
    revealed = readout.reveal(key, protected, 8)
    wrong_reveal = readout.reveal(wrong_key, protected, 8)  # noise
    adc = AdcFormat(bit_depth=8, black_level_dn=0)  # 8-bit picture codes; network inputs in [0, 1]
    x = torch.from_numpy(adc.to_unit(scene.astype(np.float32)).transpose(2, 0, 1)).unsqueeze(0)
    frames = KeyedFrames(
        torch.from_numpy(adc.to_unit(protected.astype(np.float32)).transpose(2, 0, 1)).unsqueeze(0),
        stream,
        [nonce],
        key.fingerprint,
        adc,
    )

    torch.manual_seed(0)
    classifier = nn.Sequential(Standardise(), create_model("resnet18")).eval()
    own = stream.for_frame(0)  # the networks' own order; each frame is moved into it
    keyed_classifier = to_keyed(classifier, key, (3, size, size), own, backend, fold_batchnorm=True, adc=adc)
    plain_logits, plain_s = timed(classifier, x)
    keyed_logits, keyed_s = timed(keyed_classifier, frames)
    wrong_classifier = to_keyed(classifier, wrong_key, (3, size, size), own, backend, fold_batchnorm=True, adc=adc)
    wrong_logits, _ = timed(wrong_classifier, frames.frames)  # another key's holder, frames as they come
    top5 = plain_logits.topk(5).indices[0].tolist()

    segmenter = create_model("unet_small", num_classes=2).eval()
    keyed_segmenter = to_keyed(segmenter, key, (3, size, size), own, backend, adc=adc)
    plain_map, _ = timed(segmenter, x)
    keyed_map, _ = timed(keyed_segmenter, frames)
    revealed_map = unshuffle(keyed_map, keyed_segmenter.output_permutation)

    augmentations = [
        K.RandomResizedCrop((size, size), scale=(0.4, 0.8)),
        K.RandomHorizontalFlip(p=1.0),
        K.RandomRotation(20.0, p=1.0),
        K.ColorJitter(0.3, 0.3, 0.3, p=1.0),
    ]
    # float64: in float32 kornia's own warp grid rounds by up to 6e-5 px at this size (README)
    params, augmented = [], x.double()
    for aug in augmentations:
        params.append(aug.forward_parameters(augmented.shape))
        augmented = aug(augmented, params=params[-1])
    keyed_augmented = KeyedAugmentation(augmentations, key)(frames.with_frames(frames.frames.double()), params)
    revealed_augmented = keyed_augmented.reveal(key)

    metrics = {
        "key_fingerprint": key.fingerprint,
        "scene": scene_name,
        "frame_size": [size, size],
        "readout": str(readout),
        "backend": backend,
        "psnr_protected_db": round(psnr(scene, protected, 255), 2),
        "psnr_wrong_key_reveal_db": round(psnr(scene, wrong_reveal, 255), 2),
        "reveal_exact": bool(np.array_equal(revealed, scene)),
        "classifier": {
            "model": "resnet18 (random weights, seed 0: no pretrained weights are downloaded)",
            "max_abs_logit_diff": float((keyed_logits - plain_logits).abs().max()),
            "top5_identical": keyed_logits.topk(5).indices[0].tolist() == top5,
            "logit_range": float(plain_logits.max() - plain_logits.min()),
            "wrong_key_max_abs_logit_diff": float((wrong_logits - plain_logits).abs().max()),
            "plain_ms": round(plain_s * 1000, 1),
            "keyed_ms": round(keyed_s * 1000, 1),
        },
        "segmenter": {
            "model": "unet_small (random weights)",
            "max_abs_diff_revealed": float((revealed_map - plain_map).abs().max()),
        },
        "augmentation": {
            "pipeline": ", ".join(type(aug).__name__ for aug in augmentations),
            "max_abs_diff_revealed": float((revealed_augmented - augmented).abs().max()),
        },
    }
    channel = plain_map[0, 1].numpy()
    low, high = float(channel.min()), float(channel.max())
    picture = panel(
        [
            [
                ("scene", scene),
                ("protected (camera output)", protected),
                ("revealed with the key", revealed),
                ("revealed with a wrong key", wrong_reveal),
            ],
            [
                ("U-Net output, plain", colour_map(channel, low, high)),
                ("keyed U-Net output", colour_map(keyed_map[0, 1].numpy(), low, high)),
                ("keyed output revealed", colour_map(revealed_map[0, 1].numpy(), low, high)),
            ],
            [
                ("kornia augmentation, scene", to_image(augmented)),
                ("keyed augmentation, protected", to_image(keyed_augmented.frames)),
                ("keyed augmentation revealed", to_image(revealed_augmented)),
            ],
        ]
    )
    write_png(out / "demo.png", picture)
    with atomic_write(out / "metrics.json", "w") as f:
        json.dump(metrics, f, indent=2)
    return metrics


def report(metrics: dict, out: Path, key_note: str) -> str:
    c, s, a = metrics["classifier"], metrics["segmenter"], metrics["augmentation"]
    return "\n".join(
        [
            f"privcam demo: key fingerprint {metrics['key_fingerprint']} ({key_note})",
            f"scene: {metrics['scene']}, {metrics['frame_size'][0]}x{metrics['frame_size'][1]}",
            f"protected frame ({metrics['readout']}): PSNR against the scene {metrics['psnr_protected_db']} dB; "
            f"reveal with the key exact: {'yes' if metrics['reveal_exact'] else 'NO'}; "
            f"with a wrong key {metrics['psnr_wrong_key_reveal_db']} dB",
            f"classifier {c['model']}:",
            f"  keyed ({metrics['backend']}) on the protected frame vs plain on the scene: "
            f"max |logit diff| {c['max_abs_logit_diff']:.2e}, top-5 identical: {'yes' if c['top5_identical'] else 'NO'}"
            f" ({c['plain_ms']} ms plain, {c['keyed_ms']} ms keyed, one call)",
            f"  keyed model on a wrong key's frame: max |logit diff| {c['wrong_key_max_abs_logit_diff']:.2f} "
            f"(the plain logits span {c['logit_range']:.2f})",
            f"segmenter {s['model']}: keyed output revealed with the key, max |diff| {s['max_abs_diff_revealed']:.2e}",
            f"augmentation {a['pipeline']} on the protected frame, revealed: max |diff| to kornia on the scene "
            f"{a['max_abs_diff_revealed']:.2e} (float64 frames)",
            f"wrote {out / 'demo.png'} and {out / 'metrics.json'}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="privcam-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)")
    parser.add_argument("--key", type=Path, help="key file (mode 0600); default: a new key saved in the output folder")
    parser.add_argument("--image", type=Path, help="PNG/JPEG scene; default: scikit-image's astronaut")
    parser.add_argument("--size", type=int, default=224, help="frame size in pixels, a multiple of 32 (default 224)")
    parser.add_argument("--backend", choices=BACKENDS, default="gather")
    args = parser.parse_args(argv)
    if args.size < 32 or args.size % 32:
        parser.error(f"--size must be a positive multiple of 32 (resnet18 downsamples by 32), got {args.size}")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.key is not None:
        try:
            key, key_note = Key.load(args.key), f"loaded from {args.key}"
        except KeyFileError as err:
            parser.error(str(err))
    else:
        key_path = args.out / "demo.key"
        key = Key.generate()
        key.save(key_path, overwrite=True)  # a new demo, a new key: the output folder is rewritten with it
        key_note = f"new key saved to {key_path}, mode 0600"
    metrics = run_demo(args.out, key, args.image, args.size, args.backend)
    print(report(metrics, args.out, key_note))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
