from collections import Counter

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from privcam.nets import create_model, to_keyed
from privcam.pipelines.attacks.recovery import (
    assemble_units,
    extract_input_permutation,
    histogram_features,
    known_plaintext_recovery,
    recovered_fraction,
    signature_match,
)
from privcam.privacy import Key, Readout, shuffle

KEY = Key(bytes(range(32)))


def natural_patches(count: int, size: int = 28) -> np.ndarray:
    pictures = [skimage.data.brick(), skimage.data.grass(), skimage.data.gravel(), skimage.data.camera()]
    rng = np.random.default_rng(0)
    patches = []
    for i in range(count):
        picture = cv2.resize(pictures[i % len(pictures)], (4 * size, 4 * size), interpolation=cv2.INTER_AREA)
        top, left = rng.integers(0, 3 * size, 2)
        patches.append(picture[top : top + size, left : left + size].ravel() / 255.0)
    return np.stack(patches)


def test_known_plaintext_recovers_a_fixed_permutation_from_three_frames():
    scenes = natural_patches(3)
    perm = Readout(mode="paper").permutation(KEY, 28, 28)
    frames = scenes[:, perm]
    assert recovered_fraction(known_plaintext_recovery(scenes, frames), perm) >= 0.99
    assert recovered_fraction(known_plaintext_recovery(scenes[:1], frames[:1]), perm) < 0.5
    with pytest.raises(ValueError, match="same shape"):
        known_plaintext_recovery(scenes, frames[:2])


def test_key_extraction_from_the_first_layer_table():
    keyed = to_keyed(create_model("small_cnn").eval(), KEY, (1, 28, 28))
    table = keyed.graph_module.get_submodule("0").table.numpy()
    assert recovered_fraction(extract_input_permutation(table, (28, 28)), keyed.input_permutation) == 1.0
    with pytest.raises(ValueError, match="3x3 stride-1"):
        extract_input_permutation(table[:, :4], (28, 28))


def test_histograms_ignore_the_order():
    frames = torch.rand(4, 1, 16, 16)
    shuffled = shuffle(frames, Readout(mode="paper").permutation(KEY, 16, 16))
    features = histogram_features(frames.numpy(), 8)
    assert np.allclose(features, histogram_features(shuffled.numpy(), 8))
    assert np.allclose(features.sum(1), 1.0)


def tiles_of(image: np.ndarray, size: int) -> np.ndarray:
    """(H, W) -> (U, 1, size, size) tiles in row-major order."""
    rows, cols = image.shape[0] // size, image.shape[1] // size
    return image.reshape(rows, size, cols, size).transpose(0, 2, 1, 3).reshape(rows * cols, 1, size, size)


def placed_fraction(group: dict[tuple[int, int], int], order: np.ndarray, cols: int) -> float:
    """The fraction of all tiles that the group puts at their true place (up to one common shift);
    order[k] is the true index of shuffled tile k."""
    shifts = Counter(
        (divmod(int(order[k]), cols)[0] - row, divmod(int(order[k]), cols)[1] - col) for (row, col), k in group.items()
    )
    return shifts.most_common(1)[0][1] / len(order)


def astronaut(size: int = 128) -> np.ndarray:
    return cv2.resize(skimage.data.astronaut(), (size, size), interpolation=cv2.INTER_AREA) / 255.0


def test_jigsaw_lays_out_the_tiles_of_one_frame_but_not_of_a_masked_one():
    gray = astronaut().mean(2)
    tiles = tiles_of(gray, 16)
    order = np.random.default_rng(0).permutation(len(tiles))
    assert placed_fraction(assemble_units(tiles[order])[0], order, 8) >= 0.8
    masked = (tiles + np.random.default_rng(1).random(tiles.shape)) % 1.0  # a value mask, mod 1
    assert placed_fraction(assemble_units(masked[order])[0], order, 8) <= 0.1


def test_jigsaw_of_a_bayer_mosaic_compares_same_colour_columns():
    rgb = astronaut()
    mosaic = np.empty(rgb.shape[:2])
    for (dy, dx), channel in zip(((0, 0), (0, 1), (1, 0), (1, 1)), (0, 1, 1, 2), strict=True):
        mosaic[dy::2, dx::2] = rgb[dy::2, dx::2, channel]
    tiles = tiles_of(mosaic, 16)
    order = np.random.default_rng(0).permutation(len(tiles))
    by_colour = placed_fraction(assemble_units(tiles[order], period=2)[0], order, 8)
    assert by_colour >= 0.25 and by_colour > 1.5 * placed_fraction(assemble_units(tiles[order])[0], order, 8)
    with pytest.raises(ValueError, match="s >= 2"):
        assemble_units(tiles[:, :, :1, :1], period=2)


def test_signature_match_recovers_a_fixed_order_but_not_per_frame_orders():
    pictures = [cv2.resize(p(), (128, 128), interpolation=cv2.INTER_AREA) for p in (skimage.data.camera,
                skimage.data.coins, skimage.data.moon, skimage.data.page, skimage.data.text)]  # fmt: skip
    rng = np.random.default_rng(0)

    def patches(count: int) -> np.ndarray:
        corners = rng.integers(0, 118, (count, 2))
        return np.stack([pictures[i % 5][y : y + 10, x : x + 10].ravel() / 255.0 for i, (y, x) in enumerate(corners)])

    frames, reference = patches(1500), patches(1500)
    perm = rng.permutation(100)
    assert recovered_fraction(signature_match(frames[:, perm], reference), perm) >= 0.4  # chance 0.01
    fresh = np.stack([frame[rng.permutation(100)] for frame in frames])
    assert recovered_fraction(signature_match(fresh, reference), perm) <= 0.05
    with pytest.raises(ValueError, match=r"\(N, n\)"):
        signature_match(frames[:, :50], reference)
