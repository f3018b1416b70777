"""Keyed kornia augmentation: keyed_aug(shuffle(x)) == shuffle(aug(x)) for the same parameters."""

import kornia.augmentation as K
import numpy as np
import pytest
import torch
from cases import KEYED_CASES, LAYOUTS, compare
from torch import nn

from privcam.augment import KeyedAugmentation, keyed_augment
from privcam.nets import to_keyed
from privcam.privacy import AdcFormat, Key, KeyedFrames, KeyMismatchError, Readout, shuffle

from conftest import protect


@pytest.mark.parametrize("case", sorted(KEYED_CASES))
@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: f"b{layout[0]}-{layout[1]}x{layout[2]}-{layout[3]}")
def test_keyed_form_equals_shuffled_kornia(key, case, layout):
    batch, height, width, unit = layout
    readout = Readout(unit=unit, block=4, mode="paper")
    keyed, expected = compare(KEYED_CASES[case]((height, width)), key, readout, batch, height, width)
    assert keyed.shape == expected.shape
    assert (keyed - expected).abs().max().item() <= 1e-5


def test_a_pipeline_fuses_crop_and_flip_and_equals_kornia_in_sequence(key):
    readout = Readout(unit="block", block=4, mode="paper")
    augs = [K.RandomResizedCrop((24, 24), p=1.0), K.RandomHorizontalFlip(), K.RandomVerticalFlip(), K.ColorJitter(0.2)]
    augs += [K.RandomCrop((20, 20), padding=2), K.RandomGaussianBlur(3, (0.5, 1.0), p=1.0)]
    x = torch.rand(6, 3, 32, 32, dtype=torch.float64)
    params, y = [], x
    for aug in augs:
        params.append(aug.forward_parameters(y.shape))
        y = aug(y, params=params[-1])
    keyed = KeyedAugmentation(augs, key, readout)(shuffle(x, readout.permutation(key, 32, 32)), params)
    assert (keyed - shuffle(y, readout.permutation(key, 20, 20))).abs().max().item() <= 1e-5


def test_per_frame_nonce_readouts_are_keyed_like_any_other(key):
    readout = Readout(mode="per_frame", nonce=7)
    keyed, expected = compare(K.RandomAffine(20, p=1.0), key, readout, 2, 16, 16)
    assert (keyed - expected).abs().max().item() <= 1e-5
    other = Readout(mode="per_frame", nonce=8)
    assert not np.array_equal(readout.permutation(key, 16, 16), other.permutation(key, 16, 16))


def test_gradients_flow_through_the_reference_path(key):
    readout = Readout(mode="paper")
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    out = keyed_augment(K.RandomRotation(30.0, p=1.0), x, key, readout)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "x, message",
    [
        (torch.rand(3, 16, 16), r"frames \(B, C, H, W\)"),
        (torch.randint(0, 255, (1, 3, 16, 16), dtype=torch.uint8), "float32 or float64"),
    ],
)
def test_bad_frames_are_refused(key, x, message):
    with pytest.raises(ValueError, match=message):
        keyed_augment(K.RandomHorizontalFlip(), x, key)


def test_quad_readout_refuses_an_output_size_it_cannot_read(key):
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="divisible by 2"):
        keyed_augment(K.RandomResizedCrop((15, 16)), x, key, Readout(unit="quad", mode="paper"))


@pytest.mark.parametrize("mode", ["per_frame", "masked"])
def test_batches_of_per_frame_and_masked_frames_are_augmented_in_one_order(key, mode):
    """Each frame unmasked and moved into the first frame's order, augmented, and left there at the
    output size: the result is that order's readout of each augmented scene (the mask removed), and
    a keyed network reads it as it reads the frames in their own orders."""
    adc = AdcFormat(bit_depth=10, black_level_dn=32)
    codes = torch.randint(0, 1024, (3, 3, 24, 32)).float()
    batch, plain = protect(codes, key, Readout(mode=mode), [7, 8, 9], adc)
    augs = [K.RandomResizedCrop((16, 20), p=1.0), K.RandomHorizontalFlip(), K.RandomGaussianBlur(3, (0.5, 1.0), p=1.0)]
    params, expected = [], plain.double()
    for aug in augs:
        params.append(aug.forward_parameters(expected.shape))
        expected = aug(expected, params=params[-1])
    out = KeyedAugmentation(augs, key)(batch.with_frames(batch.frames.double()), params)
    assert out.readout == Readout(mode="per_frame") and out.nonces == [7, 7, 7] and out.shape == (3, 3, 16, 20)
    order = Readout(mode="per_frame", nonce=7).permutation(key, 16, 20)
    for i in range(3):
        assert (out.frames[i] - shuffle(expected[i], order)).abs().max().item() <= 1e-6
    own_orders = KeyedFrames(
        torch.stack(
            [
                shuffle(expected[i], Readout(mode="per_frame", nonce=n).permutation(key, 16, 20))
                for i, n in enumerate([7, 8, 9])
            ]
        ),
        Readout(mode="per_frame"),
        [7, 8, 9],
        key.fingerprint,
    )
    net = to_keyed(
        nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 16 * 20, 5)).double(),
        key,
        (3, 16, 20),
        readout=Readout(mode="per_frame", nonce=1),
    )
    torch.testing.assert_close(net(out), net(own_orders), rtol=0, atol=1e-6)
    with pytest.raises(KeyMismatchError):
        KeyedAugmentation(augs, Key.generate())(batch)
