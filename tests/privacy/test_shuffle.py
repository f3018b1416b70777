import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from privcam.privacy import Key, Readout, shuffle, unshuffle

KEY = Key(bytes(range(32)))


@settings(max_examples=30, deadline=None)
@given(
    height=st.integers(1, 12),
    width=st.integers(1, 12),
    channels=st.integers(1, 4),
    dtype=st.sampled_from([np.uint8, np.uint16, np.float32]),
)
def test_numpy_and_torch_agree_and_round_trip(height, width, channels, dtype):
    rng = np.random.default_rng(height * 100 + width)
    image = (rng.random((height, width, channels)) * 200).astype(dtype)
    perm = Readout(mode="paper").permutation(KEY, height, width)
    shuffled = shuffle(image, perm)
    assert shuffled.dtype == image.dtype
    assert np.array_equal(shuffled.reshape(-1, channels), image.reshape(-1, channels)[perm])
    assert np.array_equal(unshuffle(shuffled, perm), image)
    tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    shuffled_tensor = shuffle(tensor, perm)
    assert np.array_equal(shuffled_tensor.permute(1, 2, 0).numpy(), shuffled)
    assert torch.equal(unshuffle(shuffled_tensor, torch.from_numpy(perm)), tensor)


def test_batched_tensors_and_2d_arrays():
    perm = Readout(mode="paper").permutation(KEY, 4, 5)
    batch = torch.randn(3, 2, 4, 5)
    out = shuffle(batch, perm)
    for b in range(3):
        for c in range(2):
            assert torch.equal(out[b, c].reshape(-1), batch[b, c].reshape(-1)[torch.from_numpy(perm)])
    gray = np.arange(20).reshape(4, 5)
    assert np.array_equal(unshuffle(shuffle(gray, perm), perm), gray)


def test_shuffle_is_differentiable():
    perm = Readout(mode="paper").permutation(KEY, 3, 3)
    x = torch.randn(1, 1, 3, 3, requires_grad=True)
    shuffle(x, perm).sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_errors_name_the_expected_shape():
    perm = Readout(mode="paper").permutation(KEY, 4, 4)
    with pytest.raises(ValueError, match="4x5 = 20"):
        shuffle(np.zeros((4, 5, 3)), perm)
    with pytest.raises(ValueError, match=r"\(H, W\) or \(H, W, C\)"):
        shuffle(np.zeros((1, 4, 4, 3)), perm)
    with pytest.raises(ValueError, match=r"\(\.\.\., H, W\)"):
        shuffle(torch.zeros(16), perm)
    with pytest.raises(TypeError, match=r"torch\.Tensor or numpy\.ndarray"):
        shuffle([[1, 2], [3, 4]], perm)
