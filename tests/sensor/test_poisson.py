"""Exact Poisson counts of dim pixels: the right law, reproducible whatever the thread count."""

import math

import numpy as np
import pytest
import torch

from privcam.sensor.poisson import poisson_counts


@pytest.mark.parametrize("mean", [0.05, 0.7, 3.0, 9.5])
def test_counts_follow_the_poisson_law(mean):
    counts = poisson_counts(torch.full((400_000,), mean), torch.Generator().manual_seed(1)).numpy()
    assert np.array_equal(counts, np.round(counts)) and counts.min() >= 0
    assert counts.mean() == pytest.approx(mean, rel=0.01, abs=0.002)
    assert counts.var() == pytest.approx(mean, rel=0.02, abs=0.002)
    for k in range(4):
        probability = math.exp(-mean) * mean**k / math.factorial(k)
        assert (counts == k).mean() == pytest.approx(probability, abs=0.003)


def test_counts_do_not_depend_on_the_thread_count():
    means = torch.rand(100_000) * 10
    before = torch.get_num_threads()
    try:
        runs = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            runs.append(poisson_counts(means, torch.Generator().manual_seed(5)))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(runs[0], runs[1])
