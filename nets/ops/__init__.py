"""Keyed operators: one per file, each a function plus a thin nn.Module."""

from .conv import KeyedConv2d, keyed_conv2d
from .deform_conv import KeyedDeformConv2d, deform_offsets
from .pixel_shuffle import KeyedPixelShuffle, keyed_pixel_shuffle, keyed_pixel_unshuffle
from .pool import KeyedMaxPool2d, KeyedWeightedSum2d, keyed_max_pool2d, keyed_weighted_sum2d
from .tokens import from_tokens, gather_reduce, to_tokens

__all__ = [
    "KeyedConv2d",
    "KeyedDeformConv2d",
    "KeyedMaxPool2d",
    "KeyedPixelShuffle",
    "KeyedWeightedSum2d",
    "deform_offsets",
    "from_tokens",
    "gather_reduce",
    "keyed_conv2d",
    "keyed_max_pool2d",
    "keyed_pixel_shuffle",
    "keyed_pixel_unshuffle",
    "keyed_weighted_sum2d",
    "to_tokens",
]
