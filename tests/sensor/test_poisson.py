"""Exact Poisson counts of dim pixels: the right law, reproducible whatever the thread count."""

import math

import numpy as np
import pytest
import torch

from privcam.sensor.noise import normals, pixel_electrons, poisson_counts


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


def test_each_pixel_takes_its_branch_of_the_model():
    """Dim pixels: exact Poisson counts; pixels near the full well: Gaussian shot noise clipped, then
    read noise; the others: shot and read noise as one Gaussian. Against a NumPy reference."""
    generator = torch.Generator().manual_seed(0)
    count, full_well, read = 60_000, 900.0, 2.5
    means = torch.cat(
        [torch.rand(count, generator=generator) * 9.9, 10 + torch.rand(2 * count, generator=generator) * 1000]
    )
    dsnu = torch.randn(means.shape, generator=generator)
    out = pixel_electrons(means, dsnu, full_well, read, (3, 5), out=torch.empty(means.shape))
    m, d = means.double().numpy(), dsnu.double().numpy()
    z, z_clip = normals(seed=3, count=m.size), normals(seed=5, count=m.size)
    dim, near = m < 10, (m >= 10) & (m + 6 * np.sqrt(m) + d >= full_well)
    expected = m + np.sqrt(m + read**2) * z + d
    counts = poisson_counts(means, seed=3).double().numpy()  # the normals' draws, other bits
    expected[dim] = (np.minimum(counts + d, full_well) + read * z)[dim]
    expected[near] = (np.minimum(m + np.sqrt(m) * z + d, full_well) + read * z_clip)[near]
    np.testing.assert_allclose(out.double().numpy(), expected, rtol=1e-6, atol=1e-4)
    assert dim.sum() == count and near.sum() > 1000 and (counts + d > full_well).sum() == 0
    assert (m + np.sqrt(m) * z + d > full_well)[near].any()  # the clip acts
    shot = poisson_counts(torch.full((400_000,), 2.0), seed=3).numpy()
    assert abs(np.corrcoef(shot, normals(seed=3, count=shot.size))[0, 1]) < 0.006  # one hash, independent bits
