"""Running taps: the fused CPU kernels against the torch reference, index table widths, float32 warps and
windows that must read nothing outside themselves."""

import kornia.augmentation as K
import numpy as np
import pytest
import torch
from cases import KEYED_CASES, compare

from privcam.augment import KEYED_FORMS, keyed_augment
from privcam.augment.run import run_taps
from privcam.augment.tables import Order, neighbour_table
from privcam.privacy import Readout, shuffle, unshuffle


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
    aug, readout = make(), Readout(mode="paper")
    x = torch.rand(2, 3, 224, 224, dtype=torch.float64)
    params = aug.forward_parameters(x.shape)
    exact = aug(x, params=params)
    perm = readout.permutation(key, 224, 224)
    keyed32 = unshuffle(keyed_augment(aug, shuffle(x.float(), perm), key, readout, params), perm)
    assert (keyed32.double() - exact).abs().max().item() <= 1e-6
    plain32 = aug(x.float(), params=params)
    assert (keyed32.double() - exact).abs().max() < (plain32.double() - exact).abs().max()


@pytest.mark.parametrize("case", ["crop fill rgb", "resized crop p", "affine fill", "affine reflection", "hflip"])
def test_fused_cpu_kernels_equal_the_torch_reference(key, case):
    aug, readout = KEYED_CASES[case]((28, 36)), Readout(unit="quad", mode="paper")
    x = shuffle(torch.rand(4, 3, 28, 36), readout.permutation(key, 28, 36))
    params = aug.forward_parameters(x.shape)
    taps = KEYED_FORMS.get(type(aug).__name__).taps(aug, params, x.shape, x.dtype)
    fused, reference = (
        run_taps(x, taps, Order(key, readout), fused=True),
        run_taps(x, taps, Order(key, readout), fused=False),
    )
    assert (fused - reference).abs().max().item() <= 1e-6


@pytest.mark.parametrize("scale", [(0.08, 1.0), (0.001, 0.004)], ids=["usual", "windows of 1-2 pixels"])
def test_resized_crops_read_nothing_outside_their_window(key, scale):
    """The fused kernel reads a 2x2 square of the neighbour table at once; at a window's last row or
    column its taps must fall back to the window's own pixels, or a NaN next to it would leak in."""
    aug, readout = K.RandomResizedCrop((24, 24), scale=scale), Readout(mode="paper")
    x = torch.full((6, 3, 32, 32), float("nan"))
    params = aug.forward_parameters(x.shape)
    for frame, box in zip(x, params["src"].long(), strict=True):
        window = frame[:, box[0, 1] : box[3, 1] + 1, box[0, 0] : box[1, 0] + 1]
        window.copy_(torch.rand(window.shape))
    plain = aug(x, params=params)
    keyed = keyed_augment(aug, shuffle(x, readout.permutation(key, 32, 32)), key, readout, params)
    assert bool(plain.isfinite().all())
    assert (keyed - shuffle(plain, readout.permutation(key, 24, 24))).abs().max().item() <= 1e-5


@pytest.mark.parametrize(
    "make",
    [lambda: K.RandomResizedCrop((24, 40)), lambda: K.RandomRotation(30.0, p=1.0), lambda: K.RandomHorizontalFlip()],
)
def test_frames_past_65536_pixels_take_wider_index_tables(key, make):
    """The CPU kernels read uint16 tables up to 256x256 and int32 ones beyond: both must agree."""
    readout = Readout(mode="paper")
    assert neighbour_table(Order(key, readout), 224, 224).dtype == np.uint16
    assert neighbour_table(Order(key, readout), 260, 270).dtype == np.int32
    keyed, expected = compare(make(), key, readout, 2, 260, 270)
    assert (keyed - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize("case", ["gaussian blur", "motion blur sizes", "sharpness"])
def test_filters_on_the_reference_path_equal_kornia(key, case):
    """Frames that record gradients take the torch path instead of the CPU kernel."""
    aug, readout = KEYED_CASES[case]((24, 28)), Readout(mode="paper")
    x = torch.rand(3, 3, 24, 28, dtype=torch.float64)
    params = aug.forward_parameters(x.shape)
    protected = shuffle(x, readout.permutation(key, 24, 28)).requires_grad_()
    keyed = keyed_augment(aug, protected, key, readout, params)
    assert keyed.requires_grad
    expected = shuffle(aug(x, params=params), readout.permutation(key, 24, 28))
    assert (keyed.detach() - expected).abs().max().item() <= 1e-5
