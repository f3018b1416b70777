import cv2
import numpy as np
import pytest
import skimage.data
import torch

from privcam.nets import create_model, to_keyed
from privcam.pipelines.attacks.recovery import (
    extract_input_permutation,
    histogram_features,
    known_plaintext_recovery,
    recovered_fraction,
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
