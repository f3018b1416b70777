"""The architectures of the model zoo (privcam.nets.zoo builds them by name)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from torch import nn


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


def _first_conv_for(model: nn.Module, in_channels: int) -> nn.Module:
    """Replace a torchvision model's RGB stem (its first Conv2d) by one for `in_channels`."""
    if in_channels == 3:
        return model
    name, stem = next((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
    new = nn.Conv2d(
        in_channels, stem.out_channels, stem.kernel_size, stem.stride, stem.padding, bias=stem.bias is not None
    )
    parent, _, attribute = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attribute, new)
    return model


def vit_tiny(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """A ViT for 28x28 frames: 4x4 patches (7x7 tokens and a class token), 4 layers of width 64."""
    from torchvision.models.vision_transformer import VisionTransformer

    model = VisionTransformer(28, 4, num_layers=4, num_heads=4, hidden_dim=64, mlp_dim=128, num_classes=num_classes)
    return _first_conv_for(model, in_channels)


def convnext_nano(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """A ConvNeXt for small frames: a 2x2 stem and three stages of width 32, 64 and 128."""
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    stages = [CNBlockConfig(32, 64, 2), CNBlockConfig(64, 128, 2), CNBlockConfig(128, None, 2)]
    model = ConvNeXt(stages, stochastic_depth_prob=0.05, num_classes=num_classes)
    stem = model.features[0][0]
    model.features[0][0] = nn.Conv2d(3, stem.out_channels, 2, stride=2)
    return _first_conv_for(model, in_channels)


class PreActBlock(nn.Module):
    """Pre-activation basic block (He et al. 2016): BN-ReLU-conv twice, identity or 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(c_in), nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(c_out), nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = None if stride == 1 and c_in == c_out else nn.Conv2d(c_in, c_out, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.conv2(F.relu(self.bn2(self.conv1(out))))
        return out + shortcut


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


def torchvision_classifier(name: str, num_classes: int, in_channels: int, **kwargs) -> nn.Module:
    """A torchvision classifier with random weights, its stem changed for `in_channels`."""
    return _first_conv_for(getattr(torchvision.models, name)(num_classes=num_classes, **kwargs), in_channels)


def small_cnn(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """A small CNN for 28x28 frames (Fashion-MNIST): 4 conv+BN+ReLU, 2 max pools, flatten + Linear.

    Its classifier reads the 7x7 map through flatten + Linear, so keying folds the permutation
    into the Linear's columns.
    """
    return nn.Sequential(
        *_conv_bn_relu(in_channels, 32),
        *_conv_bn_relu(32, 32),
        nn.MaxPool2d(2),
        *_conv_bn_relu(32, 64),
        *_conv_bn_relu(64, 64),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.3),
        nn.Linear(64 * 7 * 7, 64),
        nn.ReLU(inplace=True),
        nn.Linear(64, num_classes),
    )


def preresnet110(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """PreResNet-110 for 32x32 inputs (the paper's Table 2 network): 3 stages of 18 blocks."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)]
    c_in = 16
    for stage, width in enumerate((16, 32, 64)):
        for block in range(18):
            layers.append(PreActBlock(c_in, width, 2 if stage > 0 and block == 0 else 1))
            c_in = width
    layers += [
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, num_classes),
    ]
    return nn.Sequential(*layers)
