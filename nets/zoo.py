"""Model zoo: plain architectures by name (`create_model`), each one decorated builder."""

from __future__ import annotations

import difflib
from collections.abc import Callable

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Add a builder to the zoo under its function name."""
    if builder.__name__ in _MODELS:
        raise ValueError(f"model {builder.__name__!r} is registered twice")
    _MODELS[builder.__name__] = builder
    return builder


def list_models() -> list[str]:
    return sorted(_MODELS)


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered architecture, e.g. create_model("vgg16_bn_cifar", num_classes=10)."""
    if name not in _MODELS:
        close = difflib.get_close_matches(name, _MODELS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown model {name!r}{hint}; available: {', '.join(list_models())}")
    return _MODELS[name](**kwargs)


def _conv_bn_relu(c_in: int, c_out: int, **conv_kwargs) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False, **conv_kwargs),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]


class VGGCifar(nn.Module):
    """VGG16-BN for 32x32 inputs: 13 conv+BN+ReLU, 5 max pools, classifier on 512 features."""

    config = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")

    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for item in self.config:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += _conv_bn_relu(channels, item)
                channels = item
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Dropout(0.5),
            nn.Linear(512, 512),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(512, 512),
            nn.ReLU(inplace=True),
            nn.Linear(512, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


@register_model
def vgg16_bn_cifar(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """The paper's network (Perez et al. 2024, Table 1): VGG16 with BatchNorm for CIFAR-10."""
    return VGGCifar(num_classes, in_channels)


@register_model
def resnet18(num_classes: int = 1000) -> nn.Module:
    return torchvision.models.resnet18(num_classes=num_classes)


@register_model
def resnet50(num_classes: int = 1000) -> nn.Module:
    return torchvision.models.resnet50(num_classes=num_classes)


@register_model
def mobilenet_v2(num_classes: int = 10, width_mult: float = 1.0) -> nn.Module:
    """torchvision's MobileNetV2 (inverted residuals with depthwise convolutions)."""
    return torchvision.models.mobilenet_v2(num_classes=num_classes, width_mult=width_mult)


class SmallUNet(nn.Module):
    """Two-level U-Net: max-pool encoder, upsampling decoder with skip concatenation."""

    def __init__(self, num_classes: int = 2, in_channels: int = 3, width: int = 16) -> None:
        super().__init__()
        self.enc1 = nn.Sequential(*_conv_bn_relu(in_channels, width), *_conv_bn_relu(width, width))
        self.enc2 = nn.Sequential(*_conv_bn_relu(width, 2 * width), *_conv_bn_relu(2 * width, 2 * width))
        self.bottleneck = nn.Sequential(*_conv_bn_relu(2 * width, 4 * width), *_conv_bn_relu(4 * width, 4 * width))
        self.pool = nn.MaxPool2d(2)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.dec2 = nn.Sequential(*_conv_bn_relu(6 * width, 2 * width))
        self.dec1 = nn.Sequential(*_conv_bn_relu(3 * width, width))
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip1 = self.enc1(x)
        skip2 = self.enc2(self.pool(skip1))
        bottom = self.bottleneck(self.pool(skip2))
        up2 = F.interpolate(bottom, size=skip2.shape[-2:], mode="bilinear", align_corners=False)
        d2 = self.dec2(torch.cat([up2, skip2], dim=1))
        d1 = self.dec1(torch.cat([self.up(d2), skip1], dim=1))
        return self.head(d1)


@register_model
def unet_small(num_classes: int = 2, in_channels: int = 3, width: int = 16) -> nn.Module:
    return SmallUNet(num_classes, in_channels, width)
