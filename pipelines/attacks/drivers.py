"""Attacks that need no trained network, run on a run's sensor, key and captured frames: ciphertext-only
layout recovery, the single-frame jigsaw, known plaintext, key extraction from the keyed model, and
visual privacy. Each scores against the orders the frames are really in (their KeyedFrames), whatever
the protection mode and unit."""

from __future__ import annotations

import cv2
import numpy as np
import skimage.data
import torch

from ...nets.ops.conv import KeyedConv2d
from ...privacy.schedule import unit_to_pixel_permutation
from ...sensor import srgb_to_linear
from ..capture import Captured, make_sensor
from ..catalogue import RunContext
from ..models import build_plain_model, make_keyed
from ..sources import load_dataset
from ..training import evaluate
from ..validate import sensor_config
from .recovery import (
    assemble_units,
    extract_input_permutation,
    known_plaintext_recovery,
    recovered_fraction,
    signature_match,
)
from .visual import psnr, ssim

# Textured natural pictures: known plaintexts an attacker able to choose them would pick. Flat ones
# (a clear sky, a garment's black background) leave positions that no number of frames tells apart.
KPA_PICTURES = ("brick", "grass", "gravel", "astronaut", "coffee", "chelsea", "rocket", "cat")


def true_orders(ctx: RunContext, protected: Captured, count: int | None = None) -> np.ndarray:
    """(N, n) the permutation each of the first `count` (all) protected frames is really in (the same
    row N times in "paper" mode)."""
    frames, (height, width) = protected.keyed, protected.input_size[1:]
    count = len(frames) if count is None else min(count, len(frames))
    if frames.nonces is None:
        return frames.readout.permutation(ctx.key, height, width)[None].repeat(count, 0)
    return np.stack([frames.readout_of(i).permutation(ctx.key, height, width) for i in range(count)])


def ciphertext_only(ctx: RunContext, protected: Captured, plain: Captured, reference: Captured | None) -> dict:
    """Layout recovery from the protected frames alone, as if one order served them all.

    Pixel readouts: signature_match against `reference`, plain frames of the same kind of scene
    (another split through the attacker's own camera). Unit readouts: the tiles are assembled from
    their edges across the frames (assemble_units), no reference needed. Scored as the fraction of
    positions each frame's true order gives, and as what the unscrambled frames give to people
    (SSIM against the plain capture) and to the plain CNN (accuracy, when the run has weights).
    """
    config, params = ctx.config, ctx.params
    count = len(protected.frames) if params.ciphertext_frames is None else params.ciphertext_frames
    frames = protected.frames[:count].mean(1)  # (N, H, W): one value per position
    truth = true_orders(ctx, protected, count)
    height, width = frames.shape[-2:]
    if protected.readout.unit == "pixel":
        if reference is None:
            return {"note": "pixel readout: needs reference frames of the same kind of scene (another split)"}
        guess = signature_match(
            frames.reshape(count, -1).numpy(), reference.frames.mean(1).reshape(len(reference.frames), -1).numpy()
        )
        method = f"signature match + quadratic assignment against {len(reference.frames)} reference frames"
        chance = 1 / (height * width)
    else:  # every channel of every frame is a view of the same tiles
        views = protected.frames[:count].flatten(0, 1).numpy()
        guess, drawn = _assembled_permutation(views, protected.readout.unit_size, _period(config), truth)
        method = f"edge assembly of {protected.readout.unit} tiles over {count} frames"
        chance = float(np.mean(drawn[None, :] == truth))
    positions = float(np.mean(guess[None, :] == truth))
    unscrambled = torch.empty_like(protected.frames[:count])
    unscrambled.reshape(count, unscrambled.shape[1], -1)[..., guess] = protected.frames[:count].reshape(
        count, unscrambled.shape[1], -1
    )
    shown = min(count, params.visual_frames)
    result = {
        "positions": positions,
        "chance": chance,
        "ssim": float(np.mean([_ssim(unscrambled[i], plain.frames[i]) for i in range(shown)])),
        "ssim_chance": float(np.mean([_ssim(protected.frames[i], plain.frames[i]) for i in range(shown)])),
        "frames": count,
        "method": method,
    }
    if config.model.weights and plain.labels is not None:
        model = build_plain_model(config, protected.input_size).eval()
        result["cnn_accuracy"] = evaluate(model, unscrambled, plain.labels[:count])[0]
    return result


def jigsaw(ctx: RunContext, protected: Captured) -> dict:
    """Single-frame jigsaw of unit readouts: each of the first jigsaw_frames frames assembled on its own."""
    if protected.readout.unit == "pixel":
        return {"note": "pixel readouts have no tiles to assemble"}
    size, period = protected.readout.unit_size, _period(ctx.config)
    truth = true_orders(ctx, protected, ctx.params.jigsaw_frames)
    scores = []
    for i in range(len(truth)):
        guesses = _assembled_permutation(protected.frames[i].numpy(), size, period, truth[i : i + 1])
        scores.append([float(np.mean(guess == truth[i])) for guess in guesses])
    positions, chance = np.mean(scores, axis=0)
    return {"positions": float(positions), "chance": float(chance), "frames": len(scores)}


def _period(config) -> int:
    """The colour filter's period in pixels: 2 for a Bayer mosaic, 1 otherwise."""
    return 1 if sensor_config(config).cfa == "none" else 2


def _assembled_permutation(
    frames: np.ndarray, size: int, period: int, truth: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A pixel permutation estimate from the largest assembled group of tiles of frames (N, H, W)
    (frames or channels), and its chance level: the same group shape holding tiles drawn at random.

    An assembled group fixes where its tiles sit relative to each other, not where the group sits in
    the frame: it is placed at the shift that the true orders truth (F, H*W) agree with most, as an
    attacker would pick it by eye. That choice alone lifts a random group a little above 1 / tiles,
    hence the chance estimate placed the same way.
    """
    count, height, width = frames.shape
    rows, cols = height // size, width // size
    tiles = (
        frames.reshape(count, rows, size, cols, size).transpose(1, 3, 0, 2, 4).reshape(rows * cols, count, size, size)
    )
    group = assemble_units(tiles, period)[0]
    cells, placed = np.array(list(group)), np.array(list(group.values()))
    drawn = np.random.default_rng(0).choice(rows * cols, len(placed), replace=False)
    return tuple(_placed_permutation(cells, chosen, truth, size, height, width) for chosen in (placed, drawn))


def _placed_permutation(
    cells: np.ndarray, tiles: np.ndarray, truth: np.ndarray, size: int, height: int, width: int
) -> np.ndarray:
    """The pixel permutation that puts tiles at cells (k, 2), shifted to agree with truth (F, H*W)
    most, and the other tiles in the remaining places in keyed order."""
    rows, cols = height // size, width // size
    corners = (np.arange(rows * cols) // cols * size) * width + np.arange(rows * cols) % cols * size
    true_units = truth[:, corners] // width // size * cols + truth[:, corners] % width // size  # (F, U)
    needed = np.stack([true_units[:, tiles] // cols, true_units[:, tiles] % cols], -1) - cells  # (F, k, 2)
    shifts, votes = np.unique(needed.reshape(-1, 2), axis=0, return_counts=True)
    cells = cells + shifts[votes.argmax()]
    inside = np.all((cells >= 0) & (cells < [rows, cols]), axis=1)  # what falls outside the frame is cut
    unit_guess = np.full(rows * cols, -1)
    unit_guess[tiles[inside]] = cells[inside, 0] * cols + cells[inside, 1]
    unit_guess[unit_guess < 0] = np.setdiff1d(np.arange(rows * cols), unit_guess)
    return unit_to_pixel_permutation(unit_guess, height, width, size)


def known_plaintext(ctx: RunContext, protected: Captured) -> dict:
    """Recovered fraction of the positions of the next, unknown frame's order from k known (scene,
    frame) pairs through the run's sensor; in "paper" mode also without sensor noise."""
    config, params, key = ctx.config, ctx.params, ctx.key
    sensor = make_sensor(config)
    readout = sensor.config.readout
    height, width = protected.input_size[1:]
    n, frames_needed = height * width, params.kpa_max_frames + 1
    pictures = [getattr(skimage.data, name)() for name in KPA_PICTURES]
    pictures = [cv2.cvtColor(p, cv2.COLOR_RGB2GRAY) if p.ndim == 3 else p for p in pictures]
    curves: dict[str, list] = {"sensor noise": []} | ({"noise-free": []} if readout.mode == "paper" else {})
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
        captures = [sensor.capture_image(s, key=key, frame_index=10**8 + trial * 100 + i) for i, s in enumerate(scenes)]
        noisy = np.stack([f.to_tensor().mean(0).numpy().ravel() for f in captures])
        orders = [f.readout.permutation(key, height, width) for f in captures]
        curves["sensor noise"].append(
            [
                recovered_fraction(known_plaintext_recovery(linear[:k], noisy[:k]), orders[k])
                for k in range(1, frames_needed)
            ]
        )
        if "noise-free" in curves:
            ideal = linear[:, orders[0]]
            curves["noise-free"].append(
                [
                    recovered_fraction(known_plaintext_recovery(linear[:k], ideal[:k]), orders[0])
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
    """What the keyed network in memory gives away: its first layer's index table is its current
    input order (tables are rebuilt from the key, never saved). In "paper" mode that is every frame's
    order; a per-frame network is set to one frame's nonce (make_keyed: the first frame's) and
    reorders each other frame from its nonce, so the table says nothing about the rest of the stream.
    Scored against the network's own order and against the orders of the other frames."""
    model = build_plain_model(ctx.config, protected.input_size).eval()
    keyed = make_keyed(model, ctx.config, ctx.key, protected)
    first = next(m for m in keyed.modules() if isinstance(m, KeyedConv2d))
    if first.weight.shape[-2:] != (3, 3):
        return {"recovered_fraction": None, "note": "the first layer is not a 3x3 conv; extraction not attempted"}
    guess = extract_input_permutation(first.table.numpy(), protected.input_size[1:])
    height, width = protected.input_size[1:]
    others = true_orders(ctx, protected, ctx.params.visual_frames)[1:]
    if len(others) == 0:
        return {"recovered_fraction": None, "note": "needs visual_frames >= 2 and two protected frames"}
    return {
        "recovered_fraction": float(np.mean(guess[None, :] == others)),
        "network_order": recovered_fraction(guess, keyed.input_permutation),
        "chance": 1 / (height * width),
        "frames": len(others),
        "from": "the first conv's index table, scored on the frames the network is not set to",
    }


def visual_privacy(ctx: RunContext, protected: Captured, plain: Captured) -> dict:
    """PSNR/SSIM of protected and revealed frames against the noise-free scene seen by the sensor,
    and whether the reveal equals the plain capture of the same seed bit for bit."""
    config, count = ctx.config, ctx.params.visual_frames
    sensor = sensor_config(config)
    scenes = load_dataset(config.data, "test").images[:count]
    scale = sensor.white_photons * max(sensor.qe) * sensor.system_gain_dn_per_e
    scale /= sensor.max_dn - sensor.black_level_dn
    revealed = protected.keyed[: len(scenes)].reveal(ctx.key)
    scores = {"protected": [], "revealed": []}
    for i, scene in enumerate(scenes):
        reference = np.clip(srgb_to_linear(scene) * scale, 0, 1).astype(np.float64)
        reference = reference if reference.ndim == 2 else reference.mean(2)
        for label, image in (("protected", protected.frames[i]), ("revealed", revealed[i])):
            grey = np.clip(image.mean(0).numpy().astype(np.float64), 0, 1)
            scores[label].append((psnr(reference, grey, 1.0), ssim(reference, grey, 1.0)))
    summary = {
        f"{label}_{metric}": float(np.mean([s[j] for s in values]))
        for label, values in scores.items()
        for j, metric in enumerate(("psnr_db", "ssim"))
    }
    summary["revealed_equals_plain_capture"] = float(
        np.mean([torch.equal(revealed[i], plain.frames[i]) for i in range(len(scenes))])
    )
    summary["frames"] = len(scenes)
    return summary


def _ssim(image: torch.Tensor, reference: torch.Tensor) -> float:
    """SSIM of two network inputs (C, H, W), channels averaged, clipped to [0, 1]."""
    a, b = (np.clip(x.mean(0).numpy().astype(np.float64), 0, 1) for x in (image, reference))
    return ssim(b, a, 1.0)
