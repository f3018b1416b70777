"""Model zoo: plain architectures by name (`create_model`), each one decorated builder.

Builders import their architecture when called, so listing the zoo (the CLI's `info` and
`validate`) does not import torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..base.registry import Registry

if TYPE_CHECKING:
    from torch import nn

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")
# (H, W) of the architectures that take one frame size only (a Linear reads a fixed-size map), so
# that a run file can be checked without building the network.
FIXED_INPUT_SIZES: dict[str, tuple[int, int]] = {"small_cnn": (28, 28), "vit_tiny": (28, 28)}
# The architectures that predict a class per pixel (segmentation) rather than one per frame.
DENSE_MODELS = frozenset({"unet_small"})


def register_model(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Add a builder to the zoo under its function name."""
    return MODELS.register(builder.__name__)(builder)


def list_models() -> list[str]:
    return MODELS.names()


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered architecture with random weights.

    Args:
        name: a name from list_models().
        kwargs: the builder's options, e.g. num_classes and in_channels.

    Example:
        >>> model = create_model("vgg16_bn_cifar", num_classes=10)  # doctest: +SKIP
    """
    return MODELS.get(name)(**kwargs)


@register_model
def vgg16_bn_cifar(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """The paper's network (Perez et al. 2024, Table 1): VGG16 with BatchNorm for CIFAR-10."""
    from .architectures import VGGCifar

    return VGGCifar(num_classes, in_channels)


@register_model
def resnet18(num_classes: int = 1000, in_channels: int = 3) -> nn.Module:
    from .architectures import torchvision_classifier

    return torchvision_classifier("resnet18", num_classes, in_channels)


@register_model
def resnet50(num_classes: int = 1000, in_channels: int = 3) -> nn.Module:
    from .architectures import torchvision_classifier

    return torchvision_classifier("resnet50", num_classes, in_channels)


@register_model
def mobilenet_v2(num_classes: int = 10, in_channels: int = 3, width_mult: float = 1.0) -> nn.Module:
    """torchvision's MobileNetV2 (inverted residuals with depthwise convolutions)."""
    from .architectures import torchvision_classifier

    return torchvision_classifier("mobilenet_v2", num_classes, in_channels, width_mult=width_mult)


@register_model
def small_cnn(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """A small CNN for 28x28 frames (Fashion-MNIST): 4 conv+BN+ReLU, 2 max pools, flatten + Linear.

    Its classifier reads the 7x7 map through flatten + Linear, so keying folds the permutation
    into the Linear's columns.
    """
    from .architectures import small_cnn

    return small_cnn(num_classes, in_channels)


@register_model
def preresnet110(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """PreResNet-110 for 32x32 inputs (the paper's Table 2 network): 3 stages of 18 blocks."""
    from .architectures import preresnet110

    return preresnet110(num_classes, in_channels)


@register_model
def unet_small(num_classes: int = 2, in_channels: int = 3, width: int = 16) -> nn.Module:
    """A small U-Net for dense prediction (segmentation)."""
    from .architectures import SmallUNet

    return SmallUNet(num_classes, in_channels, width)


@register_model
def vit_tiny(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """A small vision transformer for 28x28 frames (Fashion-MNIST): 4x4 patches, 4 layers of width
    64. Keyed, only its patch embedding and position embedding differ from the plain network."""
    from .architectures import vit_tiny

    return vit_tiny(num_classes, in_channels)


@register_model
def convnext_nano(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """A small ConvNeXt (2x2 stem, stages of width 32, 64, 128) for small frames such as Fashion-MNIST."""
    from .architectures import convnext_nano

    return convnext_nano(num_classes, in_channels)
