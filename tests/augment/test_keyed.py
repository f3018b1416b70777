"""Keyed kornia augmentation: keyed_aug(shuffle(x)) == shuffle(aug(x)) for the same parameters."""

import kornia.augmentation as K
import numpy as np
import pytest
import torch

from privcam.augment import (
    KEYED_FORMS,
    POINTWISE_SAFE,
    KeyedAugmentation,
    KeyedAugmentationError,
    Readout,
    keyed_augment,
)
from privcam.augment.batches import BatchAugmentation, create_augmentation
from privcam.augment.readout import neighbour_table
from privcam.augment.run import run_taps
from privcam.privacy import shuffle, unshuffle

# Every keyed form, with the options that change its taps: padding and fill modes, resampling,
# align_corners, border types, kernel shapes and p < 1 (some samples left as they are).
KEYED_CASES = {
    "hflip": lambda s: K.RandomHorizontalFlip(p=0.5),
    "vflip": lambda s: K.RandomVerticalFlip(p=0.5),
    "crop pad": lambda s: K.RandomCrop(s, padding=4, p=1.0),
    "crop fill": lambda s: K.RandomCrop(s, padding=(2, 3), fill=0.3),
    "crop fill rgb": lambda s: K.RandomCrop(s, padding=2, fill=(0.1, 0.5, 0.9)),
    "crop reflect smaller": lambda s: K.RandomCrop((s[0] - 4, s[1] - 8), padding=2, padding_mode="reflect"),
    "crop replicate": lambda s: K.RandomCrop(s, padding=3, padding_mode="replicate"),
    "resized crop": lambda s: K.RandomResizedCrop(s),
    "resized crop other size": lambda s: K.RandomResizedCrop((20, 24), align_corners=False),
    "resized crop p": lambda s: K.RandomResizedCrop(s, p=0.5),
    "resized crop nearest": lambda s: K.RandomResizedCrop(s, resample="nearest"),
    "rotation": lambda s: K.RandomRotation(40.0, p=0.7),
    "rotation nearest": lambda s: K.RandomRotation(40.0, resample="nearest", p=1.0),
    "affine": lambda s: K.RandomAffine(25, translate=(0.1, 0.1), scale=(0.8, 1.2), shear=10, p=0.8),
    "affine border": lambda s: K.RandomAffine(25, translate=(0.2, 0.2), padding_mode="border", p=1.0),
    "affine reflection": lambda s: K.RandomAffine(40, scale=(0.5, 0.7), padding_mode="reflection", p=1.0),
    "affine reflection corners": lambda s: K.RandomAffine(
        40, scale=(0.5, 0.7), padding_mode="reflection", align_corners=True, p=1.0
    ),
    "affine fill": lambda s: K.RandomAffine(
        30, translate=(0.2, 0.2), padding_mode="fill", fill_value=torch.tensor([0.2, 0.5, 0.7]), p=1.0
    ),
    "affine nearest fill": lambda s: K.RandomAffine(
        30, resample="nearest", padding_mode="fill", fill_value=torch.tensor([0.2, 0.5, 0.7]), p=1.0
    ),
    "perspective": lambda s: K.RandomPerspective(0.5, p=0.8),
    "perspective nearest": lambda s: K.RandomPerspective(0.5, resample="nearest", p=1.0),
    "gaussian blur": lambda s: K.RandomGaussianBlur((5, 5), (0.1, 2.0), p=0.7),
    "gaussian blur constant": lambda s: K.RandomGaussianBlur((3, 7), (0.1, 2.0), border_type="constant", p=1.0),
    "gaussian blur circular": lambda s: K.RandomGaussianBlur((5, 3), (0.5, 1.5), border_type="circular", p=1.0),
    "box blur": lambda s: K.RandomBoxBlur((3, 3), p=1.0),
    "box blur even replicate": lambda s: K.RandomBoxBlur((4, 2), border_type="replicate", p=1.0),
    "motion blur": lambda s: K.RandomMotionBlur(5, 35.0, 0.5, p=0.7),
    "motion blur sizes": lambda s: K.RandomMotionBlur((3, 7), 35.0, 0.5, border_type="reflect", p=1.0),
    "sharpness": lambda s: K.RandomSharpness(0.8, p=0.7),
    "gaussian noise": lambda s: K.RandomGaussianNoise(std=0.1, p=0.7),
}

POINTWISE_CASES = {
    "ColorJiggle": lambda: K.ColorJiggle(0.2, 0.2, 0.2, 0.1, p=1.0),
    "ColorJitter": lambda: K.ColorJitter(0.2, 0.2, 0.2, 0.1, p=1.0),
    "Denormalize": lambda: K.Denormalize(torch.tensor([0.4, 0.5, 0.6]), torch.tensor([0.2, 0.3, 0.25])),
    "Normalize": lambda: K.Normalize(torch.tensor([0.4, 0.5, 0.6]), torch.tensor([0.2, 0.3, 0.25])),
    "RandomAutoContrast": lambda: K.RandomAutoContrast(p=1.0),
    "RandomBrightness": lambda: K.RandomBrightness((0.8, 1.2), p=1.0),
    "RandomChannelDropout": lambda: K.RandomChannelDropout(p=1.0),
    "RandomChannelShuffle": lambda: K.RandomChannelShuffle(p=1.0),
    "RandomContrast": lambda: K.RandomContrast((0.8, 1.2), p=1.0),
    "RandomEqualize": lambda: K.RandomEqualize(p=1.0),
    "RandomGamma": lambda: K.RandomGamma((0.5, 1.5), p=1.0),
    "RandomGrayscale": lambda: K.RandomGrayscale(p=0.5),
    "RandomHue": lambda: K.RandomHue((-0.2, 0.2), p=1.0),
    "RandomInvert": lambda: K.RandomInvert(p=0.5),
    "RandomPlanckianJitter": lambda: K.RandomPlanckianJitter(p=1.0),
    "RandomPosterize": lambda: K.RandomPosterize(3, p=1.0),
    "RandomRGBShift": lambda: K.RandomRGBShift(p=1.0),
    "RandomSaturation": lambda: K.RandomSaturation((0.5, 1.5), p=1.0),
    "RandomSolarize": lambda: K.RandomSolarize(0.1, 0.1, p=1.0),
}

# (batch, height, width, unit): sizes that every unit divides, with block 4.
LAYOUTS = [(1, 32, 32, "pixel"), (5, 28, 36, "quad"), (3, 36, 28, "block"), (2, 20, 44, "pixel")]


def _compare(aug, readout, batch, height, width, dtype=torch.float64, generator=None):
    x = torch.rand(batch, 3, height, width, dtype=dtype, generator=generator)
    params = aug.forward_parameters(x.shape)
    plain = aug(x, params=params)
    keyed = keyed_augment(aug, shuffle(x, readout.permutation(height, width)), readout, params)
    return keyed, shuffle(plain, readout.permutation(*plain.shape[-2:]))


def test_every_keyed_form_is_tested():
    names = {type(make((32, 32))).__name__ for make in KEYED_CASES.values()}
    assert names == set(KEYED_FORMS.names())
    assert set(POINTWISE_CASES) == set(POINTWISE_SAFE)


@pytest.mark.parametrize("case", sorted(KEYED_CASES))
@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: f"b{layout[0]}-{layout[1]}x{layout[2]}-{layout[3]}")
def test_keyed_form_equals_shuffled_kornia(key, case, layout):
    batch, height, width, unit = layout
    readout = Readout(key, unit=unit, block=4)
    keyed, expected = _compare(KEYED_CASES[case]((height, width)), readout, batch, height, width)
    assert keyed.shape == expected.shape
    assert (keyed - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize("name", sorted(POINTWISE_CASES))
def test_pointwise_augmentations_apply_to_protected_frames_as_they_are(key, name):
    keyed, expected = _compare(POINTWISE_CASES[name](), Readout(key), 4, 24, 32, dtype=torch.float32)
    assert (keyed - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize(
    "make",
    [
        lambda: K.RandomRotation(30.0, p=1.0),
        lambda: K.RandomAffine(20, translate=(0.1, 0.1), scale=(0.8, 1.2), shear=8, p=1.0),
        lambda: K.RandomPerspective(0.5, p=1.0),
        lambda: K.RandomResizedCrop((224, 224)),
    ],
)
def test_float32_warps_stay_within_1e6_of_the_float64_result(key, make):
    """kornia's own float32 warp grid is off by up to 6e-5 px at 224x224; the keyed form computes its
    taps in float64, so in float32 it is closer to the exact warp than kornia is."""
    aug, readout = make(), Readout(key)
    x = torch.rand(2, 3, 224, 224, dtype=torch.float64)
    params = aug.forward_parameters(x.shape)
    exact = aug(x, params=params)
    perm = readout.permutation(224, 224)
    keyed32 = unshuffle(keyed_augment(aug, shuffle(x.float(), perm), readout, params), perm)
    assert (keyed32.double() - exact).abs().max().item() <= 1e-6
    plain32 = aug(x.float(), params=params)
    assert (keyed32.double() - exact).abs().max() < (plain32.double() - exact).abs().max()


@pytest.mark.parametrize("case", ["crop fill rgb", "resized crop p", "affine fill", "affine reflection", "hflip"])
def test_fused_cpu_kernels_equal_the_torch_reference(key, case):
    aug, readout = KEYED_CASES[case]((28, 36)), Readout(key, unit="quad")
    x = shuffle(torch.rand(4, 3, 28, 36), readout.permutation(28, 36))
    params = aug.forward_parameters(x.shape)
    taps = KEYED_FORMS.get(type(aug).__name__).taps(aug, params, x.shape, x.dtype)
    fused, reference = run_taps(x, taps, readout, fused=True), run_taps(x, taps, readout, fused=False)
    assert (fused - reference).abs().max().item() <= 1e-6


@pytest.mark.parametrize("scale", [(0.08, 1.0), (0.001, 0.004)], ids=["usual", "windows of 1-2 pixels"])
def test_resized_crops_read_nothing_outside_their_window(key, scale):
    """The fused kernel reads a 2x2 square of the neighbour table at once; at a window's last row or
    column its taps must fall back to the window's own pixels, or a NaN next to it would leak in."""
    aug, readout = K.RandomResizedCrop((24, 24), scale=scale), Readout(key)
    x = torch.full((6, 3, 32, 32), float("nan"))
    params = aug.forward_parameters(x.shape)
    for frame, box in zip(x, params["src"].long(), strict=True):
        window = frame[:, box[0, 1] : box[3, 1] + 1, box[0, 0] : box[1, 0] + 1]
        window.copy_(torch.rand(window.shape))
    plain = aug(x, params=params)
    keyed = keyed_augment(aug, shuffle(x, readout.permutation(32, 32)), readout, params)
    assert bool(plain.isfinite().all())
    assert (keyed - shuffle(plain, readout.permutation(24, 24))).abs().max().item() <= 1e-5


@pytest.mark.parametrize(
    "make",
    [lambda: K.RandomResizedCrop((24, 40)), lambda: K.RandomRotation(30.0, p=1.0), lambda: K.RandomHorizontalFlip()],
)
def test_frames_past_65536_pixels_take_wider_index_tables(key, make):
    """The CPU kernels read uint16 tables up to 256x256 and int32 ones beyond: both must agree."""
    readout = Readout(key)
    assert neighbour_table(readout, 224, 224).dtype == np.uint16
    assert neighbour_table(readout, 260, 270).dtype == np.int32
    keyed, expected = _compare(make(), readout, 2, 260, 270)
    assert (keyed - expected).abs().max().item() <= 1e-5


def test_a_pipeline_fuses_crop_and_flip_and_equals_kornia_in_sequence(key):
    readout = Readout(key, unit="block", block=4)
    augs = [K.RandomResizedCrop((24, 24), p=1.0), K.RandomHorizontalFlip(), K.RandomVerticalFlip(), K.ColorJitter(0.2)]
    augs += [K.RandomCrop((20, 20), padding=2), K.RandomGaussianBlur(3, (0.5, 1.0), p=1.0)]
    x = torch.rand(6, 3, 32, 32, dtype=torch.float64)
    params, y = [], x
    for aug in augs:
        params.append(aug.forward_parameters(y.shape))
        y = aug(y, params=params[-1])
    keyed = KeyedAugmentation(augs, readout)(shuffle(x, readout.permutation(32, 32)), params)
    assert (keyed - shuffle(y, readout.permutation(20, 20))).abs().max().item() <= 1e-5


def test_per_frame_nonce_readouts_are_keyed_like_any_other(key):
    readout = Readout(key, nonce=7)
    keyed, expected = _compare(K.RandomAffine(20, p=1.0), readout, 2, 16, 16)
    assert (keyed - expected).abs().max().item() <= 1e-5
    other = Readout(key, nonce=8)
    assert not np.array_equal(readout.permutation(16, 16), other.permutation(16, 16))


@pytest.mark.parametrize("case", ["gaussian blur", "motion blur sizes", "sharpness"])
def test_filters_on_the_reference_path_equal_kornia(key, case):
    """Frames that record gradients take the torch path instead of the CPU kernel."""
    aug, readout = KEYED_CASES[case]((24, 28)), Readout(key)
    x = torch.rand(3, 3, 24, 28, dtype=torch.float64)
    params = aug.forward_parameters(x.shape)
    protected = shuffle(x, readout.permutation(24, 28)).requires_grad_()
    keyed = keyed_augment(aug, protected, readout, params)
    assert keyed.requires_grad
    expected = shuffle(aug(x, params=params), readout.permutation(24, 28))
    assert (keyed.detach() - expected).abs().max().item() <= 1e-5


def test_gradients_flow_through_the_reference_path(key):
    readout = Readout(key)
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    out = keyed_augment(K.RandomRotation(30.0, p=1.0), x, readout)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "aug, message",
    [
        (K.RandomErasing(p=1.0), "RandomErasing moves pixels and has no keyed form"),
        (K.RandomElasticTransform(p=1.0), "RandomElasticTransform moves pixels"),
        (K.RandomCrop((16, 16), cropping_mode="resample"), "cropping_mode='slice'"),
        (K.RandomRotation(30.0, resample="bicubic", p=1.0), "'bilinear' or 'nearest'"),
    ],
)
def test_augmentations_without_keyed_form_are_refused(key, aug, message):
    x = torch.rand(2, 3, 16, 16)
    with pytest.raises(KeyedAugmentationError, match=message):
        keyed_augment(aug, x, Readout(key))


@pytest.mark.parametrize(
    "x, message",
    [
        (torch.rand(3, 16, 16), r"frames \(B, C, H, W\)"),
        (torch.randint(0, 255, (1, 3, 16, 16), dtype=torch.uint8), "float32 or float64"),
    ],
)
def test_bad_frames_are_refused(key, x, message):
    with pytest.raises(ValueError, match=message):
        keyed_augment(K.RandomHorizontalFlip(), x, Readout(key))


def test_quad_readout_refuses_an_output_size_it_cannot_read(key):
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="divisible by 2"):
        keyed_augment(K.RandomResizedCrop((15, 16)), x, Readout(key, unit="quad"))


def test_batch_augmentation_draws_the_same_parameters_keyed_and_plain(key):
    """With the same seed, keyed training batches are the protected versions of the plain ones."""
    readout = Readout(key)
    augs = [
        create_augmentation("RandomCrop", size=[16, 16], padding=2),
        create_augmentation("RandomHorizontalFlip"),
        create_augmentation("RandomRotation", degrees=20.0, p=0.5),
    ]
    x, labels = torch.rand(8, 1, 16, 16), torch.arange(8)
    torch.manual_seed(3)
    plain, plain_labels = BatchAugmentation(augs)(x, labels)
    torch.manual_seed(3)
    keyed, keyed_labels = BatchAugmentation(augs, readout)(shuffle(x, readout.permutation(16, 16)), labels)
    assert torch.equal(plain_labels, keyed_labels)
    assert (keyed - shuffle(plain, readout.permutation(16, 16))).abs().max().item() <= 1e-5
    with pytest.raises(ValueError, match="masks is not supported"):
        BatchAugmentation(augs, readout)(keyed, torch.zeros(8, 16, 16, dtype=torch.long))


def test_masks_follow_the_frames_on_plain_batches():
    augs = [create_augmentation("RandomAffine", degrees=30.0, p=1.0), create_augmentation("RandomHorizontalFlip")]
    masks = torch.randint(0, 4, (4, 4, 4)).repeat_interleave(4, 1).repeat_interleave(4, 2)  # 4x4 blocks
    frames = masks.unsqueeze(1).float()
    out, out_masks = BatchAugmentation(augs)(frames, masks)
    assert out_masks.dtype == masks.dtype and set(out_masks.unique().tolist()) <= {0, 1, 2, 3}
    agree = (out[:, 0].round() == out_masks.float()).float().mean()
    assert agree > 0.8  # bilinear frames and nearest masks differ only along edges
