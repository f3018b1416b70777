"""How each graph op acts on the keyed order of its inputs (the converter's rule book).

A value in a traced network is plain (order does not matter: vectors, scalars, 1x1 maps), a keyed
map whose rows and columns are two dims of a tensor ((B, C, H, W), or channels-last (B, H, W, C)),
keyed tokens (the map's positions flattened into one dim, as in a vision transformer), or keyed
flat features (B, C*H*W) from flattening a map. These sets name the ops by what they do to that.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.maxvit import PartitionAttentionLayer
from torchvision.models.swin_transformer import _patch_merging_pad, shifted_window_attention
from torchvision.ops import stochastic_depth

# Modules that act element by element: they run unchanged on keyed maps and on flat features.
ELEMENTWISE_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardtanh,
    nn.Softplus,
    nn.Dropout,
    nn.AlphaDropout,
    nn.Identity,
)

# Modules with per-channel parameters or permutation-invariant statistics: they run unchanged on
# keyed maps, but not on flat features, whose positions and channels share one axis.
POINTWISE_MODULES: tuple[type[nn.Module], ...] = (
    *ELEMENTWISE_MODULES,
    nn.PReLU,
    nn.Dropout2d,
    nn.BatchNorm2d,
    nn.InstanceNorm2d,
    nn.GroupNorm,
    nn.Softmax2d,
)

POINTWISE_FUNCTIONS = frozenset(
    {
        operator.add,
        operator.iadd,
        operator.sub,
        operator.mul,
        operator.imul,
        operator.truediv,
        operator.neg,
        torch.add,
        torch.sub,
        torch.mul,
        torch.div,
        torch.relu,
        torch.sigmoid,
        torch.tanh,
        torch.clamp,
        torch.exp,
        torch.abs,
        F.relu,
        F.relu6,
        F.leaky_relu,
        F.elu,
        F.gelu,
        F.silu,
        F.mish,
        F.hardswish,
        F.hardsigmoid,
        F.hardtanh,
        F.softplus,
        F.dropout,
        F.dropout2d,
        stochastic_depth,  # drops whole samples
    }
)

POINTWISE_METHODS = frozenset(
    {
        "add",
        "add_",
        "sub",
        "mul",
        "mul_",
        "div",
        "neg",
        "relu",
        "relu_",
        "sigmoid",
        "sigmoid_",
        "tanh",
        "tanh_",
        "clamp",
        "clamp_",
        "exp",
        "abs",
        "contiguous",
        "float",
        "double",
        "half",
        "to",
        "type_as",
    }
)

# Reductions that are permutation invariant when they cover both spatial axes.
REDUCE_FUNCTIONS = frozenset({torch.mean, torch.sum, torch.amax, torch.amin})
REDUCE_METHODS = frozenset({"mean", "sum", "amax", "amin"})
SHAPE_METHODS = frozenset({"size", "dim", "numel"})
# Shape changes, read from the traced shapes before and after.
RESHAPE_FUNCTIONS = frozenset({torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze, torch.unflatten})
RESHAPE_METHODS = frozenset({"view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze"})
CAT_FUNCTIONS = frozenset({torch.cat, torch.concat})
LINEAR_FUNCTIONS = frozenset({F.linear})
# Splits into parts along one dim: the argument names after the input, the dim last.
SPLIT_FUNCTIONS = {
    torch.chunk: (("chunks", None), ("dim", 0)),
    torch.split: (("split_size_or_sections", None), ("dim", 0)),
}
SPLIT_METHODS = {"chunk": (("chunks", None), ("dim", 0)), "split": (("split_size", None), ("dim", 0))}
SOFTMAX_FUNCTIONS = frozenset({F.softmax, F.log_softmax, torch.softmax})
LAYER_NORM_FUNCTIONS = frozenset({F.layer_norm})
ATTENTION_FUNCTIONS = frozenset({F.scaled_dot_product_attention})
# Swin's window attention and patch merging (fx leaves in torchvision): keyed as fixed gathers.
WINDOW_FUNCTIONS = {shifted_window_attention: "attention", _patch_merging_pad: "merging"}
# Modules traced as one op and keyed whole: MaxViT's block and grid attention splits the rows and
# columns of a map into partitions, which only a gather into windows can do on a keyed map.
WINDOW_MODULES: tuple[type[nn.Module], ...] = (PartitionAttentionLayer,)
