"""Shared cases of the augment tests: every keyed form with the options that change its taps, every
pointwise augmentation, frame layouts, and the comparison keyed_aug(shuffle(x)) vs shuffle(aug(x))."""

import kornia.augmentation as K
import torch

from privcam.augment import keyed_augment
from privcam.privacy import shuffle

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


def compare(aug, key, readout, batch, height, width, dtype=torch.float64, generator=None):
    x = torch.rand(batch, 3, height, width, dtype=dtype, generator=generator)
    params = aug.forward_parameters(x.shape)
    plain = aug(x, params=params)
    keyed = keyed_augment(aug, shuffle(x, readout.permutation(key, height, width)), key, readout, params)
    return keyed, shuffle(plain, readout.permutation(key, *plain.shape[-2:]))
