import hashlib

import numpy as np
import pytest
from scipy import stats

from privcam.privacy import Key, inverse_permutation, permutation, readout_label, readout_permutation


def reference_permutation(key: Key, label: str, n: int) -> list[int]:
    """DESIGN.md's definition written out in plain Python."""
    seed = b"privcam-perm-v1\0" + key.secret + label.encode() + b"\0" + n.to_bytes(8, "little")
    digest = hashlib.shake_256(seed).digest(8 * n)
    sort_keys = [int.from_bytes(digest[8 * i : 8 * i + 8], "little") for i in range(n)]
    return sorted(range(n), key=lambda i: sort_keys[i])


# Golden vectors for the test key 00..1f: these must never change.
GOLDEN = {
    ("readout/4x4", 16): [15, 8, 3, 7, 12, 10, 1, 2, 11, 0, 9, 6, 14, 4, 13, 5],
    ("net/conv1", 10): [4, 9, 1, 5, 6, 2, 3, 8, 7, 0],
}


@pytest.mark.parametrize(("label", "n"), list(GOLDEN))
def test_golden_vectors(key, label, n):
    assert permutation(key, label, n).tolist() == GOLDEN[(label, n)]
    assert reference_permutation(key, label, n) == GOLDEN[(label, n)]


def test_golden_readout_vectors(key):
    assert readout_permutation(key, 4, 4, "quad").tolist() == [8, 9, 0, 1, 12, 13, 4, 5, 10, 11, 2, 3, 14, 15, 6, 7]
    assert readout_permutation(key, 4, 6, "block", block=2, nonce=7).tolist() == [
        0, 1, 16, 17, 14, 15, 6, 7, 22, 23, 20, 21, 4, 5, 2, 3, 12, 13, 10, 11, 8, 9, 18, 19,
    ]  # fmt: skip
    assert permutation(key, "readout/1080x1920", 1920 * 1080)[:4].tolist() == [1008564, 1401449, 797997, 1318685]


@pytest.mark.parametrize("n", [1, 2, 7, 1000])
def test_matches_reference_and_is_a_permutation(key, n):
    perm = permutation(key, "some/label", n)
    assert perm.dtype == np.int64
    assert perm.tolist() == reference_permutation(key, "some/label", n)
    assert np.array_equal(np.sort(perm), np.arange(n))


def test_depends_on_key_label_and_size(key, other_key):
    base = permutation(key, "a", 64)
    assert not np.array_equal(base, permutation(other_key, "a", 64))
    assert not np.array_equal(base, permutation(key, "b", 64))
    assert not np.array_equal(base[:32], permutation(key, "a", 32))


def test_positions_are_uniform(key):
    """Chi-square over where each element lands, across many labels."""
    n, labels = 8, 4000
    counts = np.zeros((n, n))
    for i in range(labels):
        perm = permutation(key, f"uniformity/{i}", n)
        counts[np.arange(n), perm] += 1
    chi2 = ((counts - labels / n) ** 2 / (labels / n)).sum()
    dof = (n - 1) ** 2
    assert stats.chi2.sf(chi2, dof) > 1e-4


def test_labels_follow_design():
    assert readout_label(480, 640) == "readout/480x640"
    assert readout_label(480, 640, "quad") == "readout/480x640/quad"
    assert readout_label(480, 640, "block", 16, nonce=3) == "readout/480x640/block16/nonce/3"


def test_pixel_readout_uses_its_label(key):
    assert np.array_equal(readout_permutation(key, 6, 5), permutation(key, "readout/6x5", 30))
    assert np.array_equal(readout_permutation(key, 6, 5, nonce=2), permutation(key, "readout/6x5/nonce/2", 30))


@pytest.mark.parametrize(("unit", "size"), [("quad", 2), ("block", 4)])
def test_unit_readouts_move_whole_units(key, unit, size):
    height, width = 8, 12
    perm = readout_permutation(key, height, width, unit, block=size)
    assert np.array_equal(np.sort(perm), np.arange(height * width))
    plain = np.arange(height * width).reshape(height, width)
    shuffled = plain.reshape(-1)[perm].reshape(height, width)
    units = shuffled.reshape(height // size, size, width // size, size).transpose(0, 2, 1, 3)
    for cell in units.reshape(-1, size, size):
        top_left = cell[0, 0]
        expected = top_left + np.arange(size)[:, None] * width + np.arange(size)[None, :]
        assert np.array_equal(cell, expected)
        assert (top_left // width) % size == 0 and (top_left % width) % size == 0
    label = "readout/8x12/quad" if unit == "quad" else "readout/8x12/block4"
    units_perm = permutation(key, label, (height // size) * (width // size))
    first_unit = units_perm[0]
    units_w = width // size
    assert perm[0] == (first_unit // units_w) * size * width + (first_unit % units_w) * size


def test_readout_errors(key):
    with pytest.raises(ValueError, match="divisible by 2"):
        readout_permutation(key, 5, 4, "quad")
    with pytest.raises(ValueError, match="divisible by 8"):
        readout_permutation(key, 16, 12, "block")
    with pytest.raises(ValueError, match="one of"):
        readout_permutation(key, 4, 4, "row")
    with pytest.raises(ValueError, match="nonce"):
        readout_permutation(key, 4, 4, nonce=-1)
    with pytest.raises(TypeError, match="Key"):
        permutation(b"\0" * 32, "x", 4)


def test_inverse(key):
    perm = permutation(key, "x", 50)
    assert np.array_equal(perm[inverse_permutation(perm)], np.arange(50))
