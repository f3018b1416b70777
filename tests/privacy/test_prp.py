"""The keyed PRP of the per-frame readouts ("privcam-prp-v1"): golden vectors, a plain-Python
reference, inverses, single positions and uniformity."""

import hashlib
import math

import numpy as np
import pytest
import torch
from scipy import stats

from privcam.privacy.prp import ROUNDS, prp_permutation, prp_permutation_tensor, prp_permutations, prp_positions

# Golden vectors for the test key 00..1f: these must never change.
GOLDEN = {
    ("readout/4x4/nonce/7", 16): [7, 2, 11, 3, 4, 8, 14, 1, 13, 15, 6, 12, 10, 0, 9, 5],
    ("t", 10): [5, 1, 8, 6, 2, 7, 9, 3, 4, 0],
}


def reference_permutation(key, label: str, n: int) -> list[int]:
    """privacy/prp.py's construction written out in plain Python."""
    a = math.isqrt(n - 1) + 1
    b = -(-n // a)
    seed = b"privcam-prp-v1\0" + key.secret + label.encode() + b"\0" + n.to_bytes(8, "little")
    stream = hashlib.shake_256(seed).digest(8 * ROUNDS * (a + b))
    values = [int.from_bytes(stream[8 * i : 8 * i + 8], "little") for i in range(ROUNDS * (a + b))]
    tx = [[values[r * b + y] % a for y in range(b)] for r in range(ROUNDS)]
    ty = [[values[ROUNDS * b + r * a + x] % b for x in range(a)] for r in range(ROUNDS)]

    def forward(index: int) -> int:
        while True:
            x, y = divmod(index, b)
            for r in range(ROUNDS):
                x = (x + tx[r][y]) % a
                y = (y + ty[r][x]) % b
            index = x * b + y
            if index < n:
                return index

    return [forward(i) for i in range(n)]


@pytest.mark.parametrize(("label", "n"), list(GOLDEN))
def test_golden_vectors(key, label, n):
    assert prp_permutation(key, label, n).tolist() == GOLDEN[(label, n)]
    assert reference_permutation(key, label, n) == GOLDEN[(label, n)]


@pytest.mark.parametrize("n", [1, 2, 3, 7, 784, 1000, 4096, 4097, 4099])
def test_matches_the_reference_and_inverts(key, n):
    perm = prp_permutation(key, "some/label", n)
    assert perm.tolist() == reference_permutation(key, "some/label", n)
    inverse = prp_permutation(key, "some/label", n, inverse=True)
    assert np.array_equal(inverse[perm], np.arange(n))
    picks = np.array([0, n // 2, n - 1])
    assert np.array_equal(prp_positions(key, "some/label", n, picks), perm[picks])
    assert np.array_equal(prp_positions(key, "some/label", n, picks, inverse=True), inverse[picks])
    with pytest.raises(ValueError, match=r"positions must lie in \[0"):
        prp_positions(key, "some/label", n, np.array([n]))
    tensor = prp_permutation_tensor(key, "some/label", n)  # the device form: the same walk in tensors
    assert tensor.dtype == torch.int64 and np.array_equal(tensor.numpy(), perm)
    assert np.array_equal(prp_permutation_tensor(key, "some/label", n, inverse=True).numpy(), inverse)


def test_a_batch_of_labels_in_one_kernel_call_gives_each_labels_permutation(key):
    labels = ["a", "b", "a", "c"]
    for n in (5, 4097, 12345):  # 12345 and 4097 cycle-walk (a * b > n), 4097 spans two kernel blocks
        for inverse in (False, True):
            batch = prp_permutations(key, labels, n, inverse)
            assert batch.shape == (4, n)
            for row, label in zip(batch, labels, strict=True):
                assert np.array_equal(row, prp_permutation(key, label, n, inverse))
    assert prp_permutations(key, [], 9).shape == (0, 9)


def test_depends_on_key_and_label(key, other_key):
    base = prp_permutation(key, "a", 400)
    assert not np.array_equal(base, prp_permutation(other_key, "a", 400))
    assert not np.array_equal(base, prp_permutation(key, "b", 400))


def test_positions_are_uniform(key):
    """Chi-square over where each element lands, across many labels (frames)."""
    n, labels = 8, 4000
    counts = np.zeros((n, n))
    for i in range(labels):
        counts[np.arange(n), prp_permutation(key, f"uniformity/{i}", n)] += 1
    chi2 = ((counts - labels / n) ** 2 / (labels / n)).sum()
    assert stats.chi2.sf(chi2, (n - 1) ** 2) > 1e-4


def test_neighbours_do_not_stay_together(key):
    """Across frames, the keyed distance between two plain neighbours is as a random permutation's."""
    n, frames = 32 * 32, 200
    gaps = [int(np.ptp(np.argsort(prp_permutation(key, f"f/{i}", n))[[0, 1]])) for i in range(frames)]
    random_gaps = [int(np.ptp(np.random.default_rng(i).permutation(n)[:2])) for i in range(frames)]
    assert stats.ks_2samp(gaps, random_gaps).pvalue > 1e-3
