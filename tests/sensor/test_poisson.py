"""Exact Poisson counts of dim pixels: the right law, reproducible whatever the thread count."""

import math

import numpy as np
import pytest
import torch

from privcam.sensor.noise import dark_electrons, normals, poisson_counts


@pytest.mark.parametrize("mean", [0.05, 0.7, 3.0, 9.5])
def test_counts_follow_the_poisson_law(mean):
    counts = poisson_counts(torch.full((400_000,), mean), seed=1).numpy()
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
            runs.append(poisson_counts(means, seed=5))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(runs[0], runs[1])


def test_seeds_give_independent_counts_and_pixels_do_not_depend_on_their_neighbours():
    means = torch.full((200_000,), 2.0)
    a, b = poisson_counts(means, seed=1), poisson_counts(means, seed=2)
    assert abs(np.corrcoef(a.numpy(), b.numpy())[0, 1]) < 0.01
    assert abs(np.corrcoef(a.numpy()[:-1], a.numpy()[1:])[0, 1]) < 0.01  # neighbouring pixels
    assert torch.equal(poisson_counts(means[:1000], seed=1), a[:1000])  # count i: seed, i and mean i only


def test_the_one_pass_dark_model_is_the_staged_one():
    generator = torch.Generator().manual_seed(0)
    means, dsnu = torch.rand(50_000, generator=generator) * 9, torch.randn(50_000, generator=generator)
    full_well = 8.0  # low, so the clip acts
    out = dark_electrons(means, dsnu, full_well, 2.5, seed=3, read_seed=4, out=torch.empty(50_000))
    read = torch.from_numpy(normals(seed=4, count=50_000)).float()
    expected = (poisson_counts(means, seed=3) + dsnu).clamp(max=full_well) + 2.5 * read
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
    assert (poisson_counts(means, seed=3) + dsnu > full_well).any()
