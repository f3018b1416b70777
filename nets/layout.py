"""How each graph op acts on the keyed order of its inputs (the converter's rule book).

A value in a traced network is plain (order does not matter: vectors, scalars, 1x1 maps),
a keyed spatial map (B, C, H, W) whose positions follow one permutation class, or keyed flat
features (B, C*H*W) from flattening such a map. Rules map ops to what they do to that.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import nn

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
FLATTEN_FUNCTIONS = frozenset({torch.flatten})
RESHAPE_METHODS = frozenset({"view", "reshape", "flatten"})
CAT_FUNCTIONS = frozenset({torch.cat, torch.concat})
LINEAR_FUNCTIONS = frozenset({F.linear})
