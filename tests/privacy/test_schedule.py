import hashlib

import numpy as np
import pytest
from scipy import stats

from privcam.privacy import Key, inverse_permutation, permutation
from privcam.privacy.schedule import unit_to_pixel_permutation


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


def test_inverse(key):
    perm = permutation(key, "x", 50)
    assert np.array_equal(perm[inverse_permutation(perm)], np.arange(50))


def test_permutation_errors(key):
    with pytest.raises(TypeError, match="Key"):
        permutation(b"\0" * 32, "x", 4)
    with pytest.raises(ValueError, match="n >= 1"):
        permutation(key, "x", 0)


@pytest.mark.parametrize(("height", "width", "size"), [(2, 2, 2), (4, 6, 2), (16, 24, 8), (120, 160, 8)])
def test_unit_expansion_matches_the_plain_reference(height, width, size):
    units_w = width // size
    unit_perm = np.random.default_rng(height * width).permutation((height // size) * units_w)
    rows, cols = np.divmod(np.arange(height * width), width)  # each pixel's unit, and place in it
    source = unit_perm[(rows // size) * units_w + cols // size]
    reference = ((source // units_w) * size + rows % size) * width + (source % units_w) * size + cols % size
    np.testing.assert_array_equal(unit_to_pixel_permutation(unit_perm, height, width, size), reference)
