"""The Readout value: the one description of a readout order, its labels, units, modes and errors."""

import numpy as np
import pytest
import torch

from privcam.privacy import KeyedFrames, Readout, ReadoutError, permutation, shuffle
from privcam.privacy.mask import AdcFormat, mask_tensor
from privcam.privacy.prp import prp_permutation


def test_golden_readout_vectors(key):
    """The paper's readouts keep the key schedule's sort; the per-frame ones use the keyed PRP."""
    assert Readout(unit="quad", mode="paper").permutation(key, 4, 4).tolist() == [
        8, 9, 0, 1, 12, 13, 4, 5, 10, 11, 2, 3, 14, 15, 6, 7,
    ]  # fmt: skip
    assert Readout(mode="paper").permutation(key, 1080, 1920)[:4].tolist() == [1008564, 1401449, 797997, 1318685]
    assert Readout(unit="block", block=2, mode="per_frame", nonce=7).permutation(key, 4, 6).tolist() == [
        2, 3, 16, 17, 4, 5, 8, 9, 22, 23, 10, 11, 0, 1, 12, 13, 14, 15, 6, 7, 18, 19, 20, 21,
    ]  # fmt: skip
    per_frame = Readout(mode="per_frame", nonce=1).permutation(key, 1080, 1920)
    assert per_frame[:4].tolist() == [726072, 710045, 1679940, 642312]
    assert np.array_equal(per_frame, Readout(mode="masked", nonce=1).permutation(key, 1080, 1920))


def test_labels_follow_design():
    assert Readout(mode="paper").label(480, 640) == "readout/480x640"
    assert Readout(unit="quad", mode="paper").label(480, 640) == "readout/480x640/quad"
    block = Readout(unit="block", block=16, mode="per_frame").for_frame(3)
    assert block.label(480, 640) == "readout/480x640/block16/nonce/3"


def test_readouts_use_their_labels(key):
    assert np.array_equal(Readout(mode="paper").permutation(key, 6, 5), permutation(key, "readout/6x5", 30))
    nonced = Readout(mode="per_frame").for_frame(2)
    assert np.array_equal(nonced.permutation(key, 6, 5), prp_permutation(key, "readout/6x5/nonce/2", 30))


@pytest.mark.parametrize(("unit", "size"), [("quad", 2), ("block", 4)])
def test_unit_readouts_move_whole_units(key, unit, size):
    height, width = 8, 12
    perm = Readout(unit=unit, block=size, mode="paper").permutation(key, height, width)
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


@pytest.mark.parametrize("mode", ["paper", "per_frame"])
def test_inverse_is_cached_and_read_only(key, mode):
    readout = Readout(unit="quad", mode=mode, nonce=None if mode == "paper" else 3)
    perm, inverse = readout.permutation(key, 6, 8), readout.inverse(key, 6, 8)
    assert np.array_equal(perm[inverse], np.arange(48))
    assert readout.inverse(key, 6, 8) is inverse and readout.permutation(key, 6, 8) is perm
    with pytest.raises(ValueError, match="read-only"):
        perm[0] = 1


def test_settings_are_normalised_and_round_trip():
    assert Readout().mode == "masked"  # secure by default
    assert Readout(unit="pixel", block=4) == Readout()  # block applies to block units only
    assert Readout(unit="block").block == 8
    readout = Readout(unit="block", block=np.int64(4), mode="per_frame", nonce=np.uint32(9))
    assert readout.to_dict() == {"unit": "block", "block": 4, "mode": "per_frame", "nonce": 9}
    assert Readout.from_dict(readout.to_dict()) == readout
    assert hash(Readout.from_dict(readout.to_dict())) == hash(readout)
    assert str(readout) == "block4 readout, per_frame mode, nonce 9"


def test_readout_errors(key):
    with pytest.raises(ReadoutError, match="divisible by 2"):
        Readout(unit="quad", mode="paper").permutation(key, 5, 4)
    with pytest.raises(ReadoutError, match="divisible by 8"):
        Readout(unit="block", mode="paper").permutation(key, 16, 12)
    with pytest.raises(ReadoutError, match=r"readout\.unit must be one of pixel, quad, block, got 'row'"):
        Readout(unit="row")
    with pytest.raises(ReadoutError, match=r"readout\.mode must be one of paper, per_frame, masked"):
        Readout(mode="sometimes")
    with pytest.raises(ReadoutError, match="nonce must be an integer"):
        Readout(mode="per_frame", nonce=-1)
    with pytest.raises(ReadoutError, match="'paper' readout"):
        Readout(mode="paper", nonce=3)
    with pytest.raises(ReadoutError, match="'paper' readout takes no nonce"):
        Readout(mode="paper").for_frame(3)
    with pytest.raises(ReadoutError, match="'masked' readout needs the frame's nonce"):
        Readout().permutation(key, 4, 4)
    with pytest.raises(ReadoutError, match=r"nonce must be an integer in \[0, 2\^96\)"):
        Readout(nonce=2**96)
    with pytest.raises(ReadoutError, match="block must be a positive integer"):
        Readout(unit="block", block=0)
    with pytest.raises(ReadoutError, match="unknown readout fields"):
        Readout.from_dict({"unit": "pixel", "nonce_policy": "x"})
    with pytest.raises(TypeError, match="Key"):
        Readout(mode="paper").permutation(b"\0" * 32, 4, 4)


def test_the_nonce_policy_gives_each_frame_of_a_stream_its_own_order():
    paper = Readout(mode="paper")
    assert paper.of_frame(5) == paper
    with pytest.raises(ReadoutError, match="'paper' mode"):
        paper.of_frame(5, nonce=2)
    stream = Readout(unit="quad", mode="per_frame")
    assert stream.of_frame(5) == Readout(unit="quad", mode="per_frame", nonce=5)
    assert stream.of_frame(5, prefix=3).nonce == (3 << 32) + 5  # a random prefix per run, then the frame index
    assert stream.of_frame(5, nonce=9).nonce == 9
    with pytest.raises(ReadoutError, match="frame index"):
        stream.of_frame(2**32)


@pytest.mark.parametrize(("unit", "block"), [("pixel", None), ("quad", None), ("block", 4)])
def test_a_batch_of_frames_orders_and_masks_are_each_frames_own(key, unit, block):
    """Derived together (one PRP kernel call, one keystream per frame), row i is what the frame's
    own readout gives, repeated nonces included."""
    stream = Readout(unit=unit, block=block)
    nonces = [7, 2**96 - 1, 7, 0, np.int64(12)]
    inverses = stream.inverses(key, nonces, 8, 12)
    masks = stream.masks(key, nonces, 8, 12, 3, 10)
    assert inverses.shape == (5, 96) and masks.shape == (5, 8, 12, 3) and masks.dtype == np.uint16
    for i, nonce in enumerate(nonces):
        frame = stream.for_frame(nonce)
        assert np.array_equal(inverses[i], frame.inverse(key, 8, 12))
        assert np.array_equal(masks[i], frame.mask(key, 8, 12, 3, 10))
    assert stream.inverses(key, [], 8, 12).shape == (0, 96)


def test_a_batch_of_frames_needs_a_streams_readout_and_valid_nonces(key):
    with pytest.raises(ReadoutError, match=r"in a stream's readout .* not in a pixel readout, paper mode"):
        Readout(mode="paper").inverses(key, [1], 4, 4)
    with pytest.raises(ReadoutError, match="not in a pixel readout, masked mode, nonce 3"):
        Readout().for_frame(3).inverses(key, [1], 4, 4)
    with pytest.raises(ReadoutError, match="'per_frame' readout has no value mask"):
        Readout(mode="per_frame").masks(key, [1], 4, 4, 1, 8)
    for nonce in (-1, 2**96, "1", True):
        with pytest.raises(ReadoutError, match=r"readout.nonce must be an integer in \[0, 2\^96\)"):
            Readout().masks(key, [1, nonce], 4, 4, 1, 8)
    for nonces in (None, 3, "12"):
        with pytest.raises(ReadoutError, match="nonces are a list of integers, one per frame"):
            Readout().inverses(key, nonces, 4, 4)
    with pytest.raises(ReadoutError, match="divisible by 2, got 5x4"):
        Readout(unit="quad").inverses(key, [1], 5, 4)
    with pytest.raises(TypeError, match="Key"):
        Readout().inverses(b"\0" * 32, [1], 4, 4)


def test_keyed_frames_reveal_and_reorder_a_batch_of_repeated_nonces(key):
    """Each frame's mask and order come from its own nonce however often the batch repeats it."""
    adc = AdcFormat(bit_depth=10, black_level_dn=64)
    codes = torch.randint(0, 1024, (5, 2, 6, 8)).float()
    nonces = [4, 9, 4, 4, 1]
    sent = []  # what the camera sends: each frame in its own order, masked
    for frame, nonce in zip(codes, nonces, strict=True):
        readout = Readout().for_frame(nonce)
        mask = mask_tensor(readout.mask(key, 6, 8, 2, 10))
        sent.append(torch.remainder(shuffle(frame, readout.permutation(key, 6, 8)) + mask, 1024))
    batch = KeyedFrames(adc.to_unit(torch.stack(sent)).float(), Readout(), nonces, key.fingerprint, adc)
    plain = adc.to_unit(codes).float()
    assert torch.equal(batch.reveal(key), plain)
    target = Readout(mode="per_frame", nonce=9)
    assert torch.equal(batch.unmasked(key).in_order(key, target), shuffle(plain, target.permutation(key, 6, 8)))


@pytest.mark.parametrize(
    "readout",
    [
        Readout(mode="paper"),
        Readout(mode="per_frame", nonce=5),
        Readout(nonce=2**96 - 1),
        Readout(unit="quad", nonce=3),
        Readout(unit="block", block=4, mode="paper"),
        Readout(unit="block", block=4, nonce=9),
    ],
)
@pytest.mark.parametrize("shape", [(8, 12), (8, 12, 3)])
def test_a_readout_of_codes_in_a_tensor_is_the_cameras(key, readout, shape):
    """read_out_tensor (a sensor on a torch device) sends what read_out sends, in the codes' dtype."""
    codes = np.random.default_rng(0).integers(0, 4096, shape).astype(np.uint16)
    sent = readout.read_out_tensor(key, torch.from_numpy(codes.astype(np.int32)), 12)
    assert sent.dtype == torch.int32 and np.array_equal(sent.numpy(), readout.read_out(key, codes, 12))


def test_a_readout_of_codes_in_a_tensor_refuses_what_read_out_refuses(key):
    readout = Readout(nonce=1)
    for codes, message in [
        (torch.zeros(4, 4), "expected integer codes"),
        (np.zeros((4, 4), np.int32), "expected integer codes"),
        (torch.zeros(2, 4, 4, 1, dtype=torch.int32), "expected integer codes"),
        (torch.full((4, 4), 4096), r"codes must lie in \[0, 2\^12\)"),
        (torch.full((4, 4), -1), r"codes must lie in \[0, 2\^12\)"),
    ]:
        with pytest.raises(ValueError, match=message):
            readout.read_out_tensor(key, codes, 12)
    for bits in (0, 17, 12.0):
        with pytest.raises(ReadoutError, match=r"bit depth is an integer 1\.\.16"):
            readout.read_out_tensor(key, torch.zeros(4, 4, dtype=torch.int32), bits)
        with pytest.raises(ReadoutError, match=r"bit depth is an integer 1\.\.16"):
            readout.mask(key, 4, 4, 1, bits)
        with pytest.raises(ReadoutError, match=r"bit depth is an integer 1\.\.16"):
            Readout().masks(key, [1], 4, 4, 1, bits)
    with pytest.raises(ReadoutError, match="needs the frame's nonce"):
        Readout().read_out_tensor(key, torch.zeros(4, 4, dtype=torch.int32), 12)
