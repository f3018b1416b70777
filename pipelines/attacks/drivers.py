"""Attacks that need no trained network, run on a run's sensor, key and captured frames: known
plaintext, key extraction from the keyed model, and visual privacy. Each scores against the readout
the frames are really in (the Captured's), whatever its unit."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import skimage.data
import torch

from ...nets.ops.conv import KeyedConv2d
from ...privacy import shuffle
from ...sensor import Sensor, srgb_to_linear
from ..capture import Captured, make_sensor
from ..catalogue import RunContext
from ..models import build_plain_model, make_keyed
from ..sources import load_dataset
from .recovery import extract_input_permutation, known_plaintext_recovery, recovered_fraction
from .visual import psnr, ssim

# Textured natural pictures: known plaintexts an attacker able to choose them would pick. Flat ones
# (a clear sky, a garment's black background) leave positions that no number of frames tells apart.
KPA_PICTURES = ("brick", "grass", "gravel", "astronaut", "coffee", "chelsea", "rocket", "cat")


def known_plaintext(ctx: RunContext, protected: Captured) -> dict:
    """Recovered fraction of positions from k known (scene, frame) pairs: the run's readout without
    and with sensor noise, and per-frame nonces (recovery judged on the next, unknown frame)."""
    config, params, key = ctx.config, ctx.params, ctx.key
    sensor = make_sensor(config)
    readout = protected.readout
    per_frame = dataclasses.replace(readout, mode="per_frame")
    nonce_sensor = Sensor(sensor.config.replace(readout=per_frame), sensor.seed)
    height, width = protected.input_size[1:]
    n, frames_needed = height * width, params.kpa_max_frames + 1
    pictures = [getattr(skimage.data, name)() for name in KPA_PICTURES]
    pictures = [cv2.cvtColor(p, cv2.COLOR_RGB2GRAY) if p.ndim == 3 else p for p in pictures]
    curves = {"fixed key, noise-free": [], "fixed key, sensor noise": [], "per-frame nonces, sensor noise": []}
    fixed = readout.permutation(key, height, width)
    for trial in range(params.kpa_trials):
        rng = np.random.default_rng([config.seed, trial])
        scenes = []
        for _ in range(frames_needed):
            picture = cv2.resize(
                pictures[rng.integers(len(pictures))], (4 * width, 4 * height), interpolation=cv2.INTER_AREA
            )
            top, left = rng.integers(0, 3 * height), rng.integers(0, 3 * width)
            scenes.append(picture[top : top + height, left : left + width])
        linear = np.stack([srgb_to_linear(s).ravel() for s in scenes])
        index = 10**8 + trial * 100
        noisy = np.stack(
            [_pixels(sensor.capture_image(s, key=key, frame_index=index + i).to_tensor()) for i, s in enumerate(scenes)]
        )
        nonced = np.stack(
            [
                _pixels(
                    nonce_sensor.capture_image(s, key=key, nonce=trial * 100 + i, frame_index=index + i).to_tensor()
                )
                for i, s in enumerate(scenes)
            ]
        )
        for label, frames in (("fixed key, noise-free", linear[:, fixed]), ("fixed key, sensor noise", noisy)):
            curves[label].append(
                [
                    recovered_fraction(known_plaintext_recovery(linear[:k], frames[:k]), fixed)
                    for k in range(1, frames_needed)
                ]
            )
        curves["per-frame nonces, sensor noise"].append(
            [
                recovered_fraction(
                    known_plaintext_recovery(linear[:k], nonced[:k]),
                    per_frame.for_frame(trial * 100 + k).permutation(key, height, width),
                )
                for k in range(1, frames_needed)
            ]
        )
    return {
        "frames": list(range(1, frames_needed)),
        "recovered_fraction": {label: np.mean(values, axis=0).round(4).tolist() for label, values in curves.items()},
        "chance": round(1 / n, 5),
        "readout": str(readout),
        "scenes": f"{params.kpa_trials} trials of random {height}x{width} crops of textured scikit-image pictures",
    }


def key_extraction(ctx: RunContext, protected: Captured) -> dict:
    """The keyed model is the key: its first layer's index table gives the readout order back."""
    model = build_plain_model(ctx.config, protected.input_size).eval()
    keyed = make_keyed(model, ctx.config, ctx.key, protected)
    first = next(m for m in keyed.modules() if isinstance(m, KeyedConv2d))
    if first.weight.shape[-2:] != (3, 3):
        return {"recovered_fraction": None, "note": "the first layer is not a 3x3 conv; extraction not attempted"}
    guess = extract_input_permutation(first.table.numpy(), protected.input_size[1:])
    return {
        "recovered_fraction": recovered_fraction(guess, keyed.input_permutation),
        "from": "the first conv's index table",
    }


def visual_privacy(ctx: RunContext, protected: Captured, plain: Captured) -> dict:
    """PSNR/SSIM of protected and revealed frames against the noise-free scene seen by the sensor,
    and whether the reveal equals the plain capture of the same seed bit for bit."""
    config, count = ctx.config, ctx.params.visual_frames
    sensor_config = make_sensor(config).config
    scenes = load_dataset(config.data, "test").images[:count]
    scale = sensor_config.white_photons * max(sensor_config.qe) * sensor_config.system_gain_dn_per_e
    scale /= sensor_config.max_dn - sensor_config.black_level_dn
    scores = {"protected": [], "revealed": []}
    exact = 0
    for i, scene in enumerate(scenes):
        reference = np.clip(srgb_to_linear(scene) * scale, 0, 1).astype(np.float64)
        reference = reference if reference.ndim == 2 else reference.mean(2)
        frame = protected.frames[i]
        revealed = shuffle(frame, torch.from_numpy(protected.readout_of(i).inverse(ctx.key, *frame.shape[-2:])))
        exact += int(torch.equal(revealed, plain.frames[i]))
        for label, image in (("protected", frame), ("revealed", revealed)):
            grey = np.clip(image.mean(0).numpy().astype(np.float64), 0, 1)
            scores[label].append((psnr(reference, grey, 1.0), ssim(reference, grey, 1.0)))
    summary = {
        f"{label}_{metric}": float(np.mean([s[j] for s in values]))
        for label, values in scores.items()
        for j, metric in enumerate(("psnr_db", "ssim"))
    }
    summary["revealed_equals_plain_capture"] = exact / len(scenes)
    summary["frames"] = len(scenes)
    return summary


def _pixels(frame: torch.Tensor) -> np.ndarray:
    """A captured frame (C, H, W) as one value per position, in its readout order."""
    return frame.mean(0).numpy().ravel()
