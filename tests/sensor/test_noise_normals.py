"""Counter-based normals (ziggurat over SplitMix64): the normal law, tails included, and draws that
depend only on the seed and the pixel."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from privcam.sensor.noise import normals


def test_normals_follow_the_normal_law_into_the_tails():
    z = normals(seed=11, count=2_000_000)
    assert abs(z.mean()) < 0.003 and z.var() == pytest.approx(1.0, abs=0.004)
    assert abs(stats.skew(z)) < 0.01 and stats.kurtosis(z, fisher=False) == pytest.approx(3.0, abs=0.03)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    for threshold in (2.0, 3.0, 3.4426, 4.0):  # the last two: the ziggurat's tail, beyond r = 3.4426
        expected = len(z) * math.erfc(threshold / math.sqrt(2))
        assert abs((np.abs(z) > threshold).sum() - expected) < 4 * math.sqrt(expected) + 1, threshold
    assert np.abs(z).max() > 4.5  # the tail is reached, not cut at r


def test_draws_depend_on_the_seed_and_the_pixel_only():
    before = torch.get_num_threads()
    try:
        runs = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            runs.append(normals(seed=5, count=100_000))
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(runs[0], runs[1]) and np.array_equal(normals(seed=5, count=1000), runs[0][:1000])
    other = normals(seed=6, count=100_000)
    assert abs(np.corrcoef(runs[0], other)[0, 1]) < 0.015
    assert abs(np.corrcoef(runs[0][:-1], runs[0][1:])[0, 1]) < 0.015  # neighbouring pixels
