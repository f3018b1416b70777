"""Which kornia augmentations may touch protected frames: every keyed form and pointwise one is tested,
the rest are refused."""

import kornia.augmentation as K
import pytest
import torch
from cases import KEYED_CASES, POINTWISE_CASES, compare

from privcam.augment import KEYED_FORMS, POINTWISE_SAFE, KeyedAugmentationError, KeyedForm, keyed_augment
from privcam.privacy import Readout


def test_every_keyed_form_is_tested():
    names = {type(make((32, 32))).__name__ for make in KEYED_CASES.values()}
    assert names == set(KEYED_FORMS.names())
    assert set(POINTWISE_CASES) == set(POINTWISE_SAFE)


@pytest.mark.parametrize("name", sorted(POINTWISE_CASES))
def test_pointwise_augmentations_apply_to_protected_frames_as_they_are(key, name):
    keyed, expected = compare(POINTWISE_CASES[name](), key, Readout(mode="paper"), 4, 24, 32, dtype=torch.float32)
    assert (keyed - expected).abs().max().item() <= 1e-5


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
        keyed_augment(aug, x, key)


def test_keyed_forms_are_listed_without_importing_kornia_and_resolve_on_use():
    for name in KEYED_FORMS.names():
        form = KEYED_FORMS.get(name)
        assert isinstance(form, KeyedForm) and (form.taps is None) != (form.frames is None), name
        assert hasattr(K, name), f"{name} is not a kornia augmentation"
