import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from privcam.privacy import Key, Readout, shuffle, unshuffle
from privcam.privacy.mask import apply_mask
from privcam.privacy.shuffle import shuffle_codes

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


@pytest.mark.parametrize("shape", [(7, 5), (300, 251, 3), (256, 300, 1), (64, 64, 2)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("masked", [False, True])
def test_codes_read_out_through_the_permutation_or_its_inverse_are_shuffle_then_mask(shape, dtype, masked):
    """Both kernels (gather by the permutation; scatter by destination block through the inverse,
    here over several blocks and uneven source chunks) against shuffle and apply_mask."""
    bits = 8 if dtype == np.uint8 else 12
    rng = np.random.default_rng(shape[0])
    codes = rng.integers(0, 2**bits, shape).astype(dtype)
    readout = Readout(mode="masked" if masked else "per_frame", nonce=shape[1])
    height, width = shape[:2]
    channels = shape[2] if len(shape) == 3 else 1
    mask = readout.mask(KEY, height, width, channels, bits) if masked else None
    perm, inverse = readout.permutation(KEY, height, width), readout.inverse(KEY, height, width)
    expected = shuffle(codes, perm)
    if masked:
        expected = apply_mask(expected, mask, bits).astype(dtype)
    for table in ({"perm": perm}, {"inverse": inverse}):
        out = shuffle_codes(codes, mask=mask, bit_depth=bits, **table)
        assert out.dtype == dtype and out.shape == shape and np.array_equal(out, expected)


@pytest.mark.parametrize(
    ("unit", "shape"),
    [
        ("pixel", (7, 5)),  # 35 positions on a 6x6 grid: cycle-walked
        ("pixel", (300, 251, 3)),  # several PRP blocks, the last one partial
        ("pixel", (64, 64, 2)),
        ("quad", (48, 62, 3)),
        ("block", (40, 56)),
    ],
)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("mode", ["per_frame", "masked"])
def test_a_per_frame_readout_and_its_reveal_are_shuffle_then_mask_and_back(unit, shape, dtype, mode):
    """read_out against shuffle by the PRP's permutation and apply_mask, in every unit (a cycle-walked
    7x5 frame among them); reveal gives the codes back bit for bit, another nonce's reveal does not."""
    bits = 8 if dtype == np.uint8 else 12
    codes = np.random.default_rng(shape[1]).integers(0, 2**bits, shape).astype(dtype)
    readout = Readout(mode=mode, unit=unit, nonce=shape[0])
    height, width = shape[:2]
    expected = shuffle(codes, readout.permutation(KEY, height, width))
    if mode == "masked":
        channels = shape[2] if len(shape) == 3 else 1
        expected = apply_mask(expected, readout.mask(KEY, height, width, channels, bits), bits).astype(dtype)
    sent = readout.read_out(KEY, codes, bits)
    assert sent.dtype == dtype and sent.shape == shape and np.array_equal(sent, expected)
    assert np.array_equal(readout.reveal(KEY, sent, bits), codes)
    other = Readout(mode=mode, unit=unit, nonce=shape[0] + 1)
    assert not np.array_equal(other.reveal(KEY, sent, bits), codes)


def test_a_sensor_sized_frame_reads_out_as_shuffle_then_mask():
    """Readout.read_out takes the scatter kernel above 4 MiB of codes (a 1024x1024 RGB frame), below
    it the gather; reveal undoes it."""
    codes = np.random.default_rng(0).integers(0, 4096, (1024, 1024, 3), dtype=np.uint16)
    readout = Readout(mode="masked", nonce=77)
    expected = apply_mask(
        shuffle(codes, readout.permutation(KEY, 1024, 1024)), readout.mask(KEY, 1024, 1024, 3, 12), 12
    )
    sent = readout.read_out(KEY, codes, 12)
    assert np.array_equal(sent, expected) and np.array_equal(readout.reveal(KEY, sent, 12), codes)
    small = codes[:64, :64, 0]  # 8 KiB
    expected = apply_mask(shuffle(small, readout.permutation(KEY, 64, 64)), readout.mask(KEY, 64, 64, 1, 12), 12)
    assert np.array_equal(readout.read_out(KEY, small, 12), expected)


def test_shuffle_codes_refuses_what_it_cannot_read():
    codes = np.zeros((4, 5, 3), np.uint16)
    perm = Readout(mode="paper").permutation(KEY, 4, 5)
    with pytest.raises(ValueError, match="either the permutation or its inverse"):
        shuffle_codes(codes)
    with pytest.raises(ValueError, match="either the permutation or its inverse"):
        shuffle_codes(codes, perm=perm, inverse=perm)
    with pytest.raises(
        ValueError, match=r"expected uint8 or uint16 codes \(H, W\) or \(H, W, C\), got shape \(4, 5, 3\), float32"
    ):
        shuffle_codes(codes.astype(np.float32), perm=perm)
    with pytest.raises(ValueError, match="4x4 = 16"):
        shuffle_codes(codes[:, :4], perm=perm)
    with pytest.raises(ValueError, match=r"codes \(H, W\) or \(H, W, C\), got list"):
        Readout(mode="paper").read_out(KEY, [[1, 2]], 12)
    for codes_of, bits in ((codes, 17), (codes, 0), (codes.astype(np.uint8), 12)):
        with pytest.raises(ValueError, match=f"{codes_of.dtype} codes hold a bit depth of 1 to"):
            Readout(mode="masked", nonce=3).read_out(KEY, codes_of, bits)
    with pytest.raises(ValueError, match="the mask has 20 values but the codes 60"):
        shuffle_codes(codes, perm=perm, mask=np.zeros((4, 5), np.uint16), bit_depth=12)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("table", ["perm", "inverse"])
def test_codes_wider_than_the_bit_depth_are_refused(table, masked):
    """A 16-bit code read out as 12 bits would lose its top bits to the mask's modulus: both kernels
    refuse it, wherever it sits, masked or not (the codes break the frame's stated bit depth)."""
    readout = Readout(mode="masked" if masked else "per_frame", nonce=5)
    codes = np.random.default_rng(1).integers(0, 4096, (40, 30, 3), dtype=np.uint16)
    mask = readout.mask(KEY, 40, 30, 3, 12) if masked else None
    tables = {"perm": readout.permutation(KEY, 40, 30), "inverse": readout.inverse(KEY, 40, 30)}
    shuffle_codes(codes, mask=mask, bit_depth=12, **{table: tables[table]})
    for position in [(0, 0, 0), (39, 29, 2), (17, 3, 1)]:
        wide = codes.copy()
        wide[position] = 4096
        with pytest.raises(ValueError, match="codes of bit depth 12 are at most 4095, got 4096"):
            shuffle_codes(wide, mask=mask, bit_depth=12, **{table: tables[table]})
    with pytest.raises(ValueError, match=r"codes of bit depth 8 are at most 255, got \d+"):
        readout.read_out(KEY, codes, 8)


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
