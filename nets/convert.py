"""to_keyed: turn a plain network (CNNs, vision transformers) into the equivalent network on keyed
(shuffled) frames."""

from __future__ import annotations

import copy
import dataclasses
import math
import operator
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.fx as fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..privacy import AdcFormat, Key, Readout, permutation
from . import layout as rules
from .keyed_model import BuildStats, KeyedModel
from .ops.conv import KeyedConv2d
from .ops.deform_conv import KeyedDeformConv2d
from .ops.pixel_shuffle import KeyedPixelShuffle
from .ops.pool import KeyedMaxPool2d, KeyedWeightedSum2d
from .ops.window_attention import (
    KeyedPartitionAttention,
    KeyedPatchMerging,
    KeyedWindowAttention,
    partition_positions,
)
from .spatial_ops import (
    CONV_FUNCTIONS,
    FUNCTION_OPS,
    GLOBAL_POOL_FUNCTIONS,
    SIZE_FROM_SHAPE_FUNCTIONS,
    SpatialOp,
    UnsupportedSpatialOp,
    module_op,
)

Backend = Literal["gather", "deform"]
KEYED_OPS = (
    KeyedConv2d,
    KeyedDeformConv2d,
    KeyedMaxPool2d,
    KeyedWeightedSum2d,
    KeyedPixelShuffle,
    KeyedWindowAttention,
    KeyedPatchMerging,
    KeyedPartitionAttention,
)
BACKENDS = ("gather", "deform")


class KeyConversionError(ValueError):
    """The model contains an op that privcam cannot run on keyed feature maps."""


@dataclass(frozen=True)
class Keyed:
    """A keyed value: its H*W positions of one permutation class `cls` are in keyed order.

    - a map: `axes` = (row dim, column dim) of a tensor of rank `ndim`; (B, C, H, W) has axes (2, 3),
      a channels-last (B, H, W, C) map axes (1, 2);
    - tokens: `axes` = (token dim,): the positions flattened row-major in keyed order at indices
      start .. start+H*W of that dim (a class token may come before them);
    - flat features (flat=True): (B, C*H*W), channel-major, `axes` = (1,).
    """

    cls: int
    hw: tuple[int, int]
    flat: bool = False
    axes: tuple[int, ...] = (2, 3)
    ndim: int = 4
    start: int = 0

    @property
    def nchw(self) -> bool:
        """A (B, C, H, W) map: what spatial ops and the network's dense outputs take."""
        return not self.flat and self.axes == (2, 3) and self.ndim == 4

    @property
    def tokens(self) -> bool:
        return not self.flat and len(self.axes) == 1

    def same_layout(self, other: Keyed) -> bool:
        return dataclasses.replace(self, cls=other.cls) == other

    def describe(self) -> str:
        if self.flat:
            return "flat features (B, C*H*W)"
        if self.tokens:
            return f"tokens along dim {self.axes[0]} of a rank-{self.ndim} tensor"
        return f"a map with rows and columns in dims {self.axes} of a rank-{self.ndim} tensor"


class _Classes:
    """Union-find over permutation classes: maps that meet in an add or a concat share one order."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.hw: list[tuple[int, int]] = []
        self.origin: list[fx.Node] = []

    def new(self, node: fx.Node, hw: tuple[int, int]) -> int:
        self.parent.append(len(self.parent))
        self.hw.append(hw)
        self.origin.append(node)
        return len(self.parent) - 1

    def find(self, cls: int) -> int:
        while self.parent[cls] != cls:
            self.parent[cls] = self.parent[self.parent[cls]]
            cls = self.parent[cls]
        return cls

    def union(self, a: int, b: int) -> int:
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[max(a, b)] = min(a, b)
        return min(a, b)


def to_keyed(
    model: nn.Module,
    key: Key,
    input_size: tuple[int, int, int],
    readout: Readout | None = None,
    backend: Backend = "gather",
    fold_batchnorm: bool = False,
    adc: AdcFormat | None = None,
) -> KeyedModel:
    """Convert `model` into the equivalent network on frames in the keyed order of `readout`.

    The result returns what `model` returns on the plain frame; a dense (spatial) output comes in
    the keyed order `keyed.output_permutation`. Every internal map gets its own permutation from
    the key (labels from the graph's node names), so (weights, key, settings) rebuild it exactly.
    `model` is not changed.

    Args:
        model: a plain nn.Module that torch.fx can trace.
        key: the key the frames were read out with.
        input_size: (C, H, W) of the frames.
        readout: the frames' order (default: pixel units, "paper" mode, the paper's scheme). A
            per-frame readout ("masked" or "per_frame") carries the first frame's nonce; the network
            then takes KeyedFrames batches whose frames each have their own, or set_input_nonce
            moves it to the next frame.
        backend: "gather" (index tables + GEMM; fast, supports backward) or "deform"
            (torchvision's deform_conv2d with integer offsets, the paper's formulation).
        fold_batchnorm: fold eval-mode BatchNorm into the convolution before it (inference only).
        adc: the frames' code format (Frame.adc), needed for "masked" readouts: the network's first
            op removes the mask from the codes, exactly, in keyed order.

    Returns:
        A KeyedModel taking keyed frames (B, C, H, W).

    Raises:
        KeyConversionError: an op with no keyed form, naming the graph node and the op.

    Example:
        >>> keyed = to_keyed(model.eval(), key, (3, 32, 32), fold_batchnorm=True)  # doctest: +SKIP
        >>> logits = keyed(shuffle(frames, keyed.input_permutation))  # == model(frames)  # doctest: +SKIP
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch nn.Module, got {type(model).__name__}")
    if not isinstance(key, Key):
        raise TypeError(f"key must be a privcam Key, got {type(key).__name__}")
    readout = Readout(mode="paper") if readout is None else readout
    if not isinstance(readout, Readout):
        raise TypeError(f"readout must be a privcam Readout, got {type(readout).__name__}")
    if readout.masked and not isinstance(adc, AdcFormat):
        raise ValueError("a 'masked' readout needs the frames' code format: to_keyed(..., adc=frame.adc)")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if len(input_size) != 3 or not all(isinstance(s, int) and s > 0 for s in input_size):
        raise ValueError(f"input_size must be (C, H, W) positive integers, got {input_size!r}")
    if fold_batchnorm and model.training:
        raise ValueError("fold_batchnorm=True needs the model in eval mode (call model.eval() first)")
    readout.check_size(*input_size[1:])

    channels, height, width = input_size
    started = time.perf_counter()
    graph_module = _trace(model)
    if fold_batchnorm:
        _fold_batchnorm(graph_module)
    _propagate_shapes(graph_module, input_size)
    classes = _Classes()
    layouts, spatial_ops, folds, param_uses, window_ops = _analyse(graph_module, classes)
    planned = time.perf_counter()

    input_perm = readout.permutation(key, height, width)
    perms = _assign_permutations(classes, key, input_perm)

    def perm_of(value: Keyed) -> np.ndarray:
        return perms[classes.find(value.cls)]

    for node, op in spatial_ops.items():
        in_layout, out_layout = layouts[node.args[0]], layouts[node]
        keyed_module = _build_keyed_op(node, op, perm_of(in_layout), perm_of(out_layout), backend)
        _replace_with_module(graph_module, node, keyed_module)
    for node, (linear, value) in folds.items():
        _replace_with_module(graph_module, node, _fold_linear(linear, perm_of(value), value.hw))
    for node, parameter, value in param_uses:
        _use_permuted_parameter(graph_module, node, parameter, value, perm_of(value))
    for node, kind in window_ops.items():
        value = layouts[node.args[0]]
        if kind == "attention":
            window, shift = node.args[4], _args(node, *[(n, None) for n in _WINDOW_ARGUMENTS])[5]
            count = math.prod(math.ceil(n / w) for n, w in zip(value.hw, window, strict=True))
            windows = permutation(key, f"net/{node.name}/windows", count)
            module = KeyedWindowAttention(value.hw, window, shift, perm_of(value), windows)
            _replace_with_module(graph_module, node, module, keep_arguments=True)
        elif kind == "partition":
            layer = graph_module.get_submodule(node.target)
            count = partition_positions(layer, value.hw).shape[0]
            windows = permutation(key, f"net/{node.name}/windows", count)
            _replace_with_module(graph_module, node, KeyedPartitionAttention(layer, value.hw, perm_of(value), windows))
        else:
            _replace_with_module(
                graph_module, node, KeyedPatchMerging(value.hw, perm_of(value), perm_of(layouts[node]))
            )

    built = time.perf_counter()
    graph_module.graph.lint()
    graph_module.delete_all_unused_submodules()
    graph_module.recompile()

    outputs = [v for v in _output_layouts(graph_module, layouts) if isinstance(v, Keyed)]
    output_perm = perm_of(outputs[0]) if outputs else None
    device = next(iter(model.parameters()), torch.empty(0)).device
    keyed = KeyedModel(
        graph_module,
        key=key,
        input_size=(channels, height, width),
        backend=backend,
        readout=readout,
        adc=adc,
        fold_batchnorm=fold_batchnorm,
        input_permutation=input_perm,
        output_permutation=output_perm,
        build_stats=BuildStats(
            analysis_seconds=planned - started,
            table_seconds=built - planned,
            table_bytes=sum(
                b.numel() * b.element_size()
                for m in graph_module.modules()
                if isinstance(m, KEYED_OPS)
                for b in m.buffers()
            ),
        ),
    )
    keyed.train(model.training)
    return keyed.to(device)


class _Tracer(fx.Tracer):
    """torch.fx's tracer, keeping the modules that are keyed whole (rules.WINDOW_MODULES) as one op."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, rules.WINDOW_MODULES) or super().is_leaf_module(m, module_qualified_name)


def _trace(model: nn.Module) -> fx.GraphModule:
    root = copy.deepcopy(model)
    try:
        return fx.GraphModule(root, _Tracer().trace(root), type(root).__name__)
    except Exception as err:
        raise KeyConversionError(f"torch.fx could not trace {type(model).__name__}: {err}") from err


def _fold_batchnorm(gm: fx.GraphModule) -> None:
    modules = dict(gm.named_modules())
    call_counts: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            call_counts[node.target] = call_counts.get(node.target, 0) + 1
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules[node.target], nn.BatchNorm2d):
            continue
        conv_node = node.args[0]
        if not (
            isinstance(conv_node, fx.Node)
            and conv_node.op == "call_module"
            and isinstance(modules[conv_node.target], nn.Conv2d)
            and len(conv_node.users) == 1
            and call_counts[conv_node.target] == 1
            and call_counts[node.target] == 1
            and modules[node.target].track_running_stats
        ):
            continue
        fused = fuse_conv_bn_eval(modules[conv_node.target], modules[node.target])
        _set_submodule(gm, conv_node.target, fused)
        node.replace_all_uses_with(conv_node)
        gm.graph.erase_node(node)


def _propagate_shapes(gm: fx.GraphModule, input_size: tuple[int, int, int]) -> None:
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if not placeholders:
        raise KeyConversionError("the model takes no input")
    parameter = next(iter(gm.parameters()), torch.empty(0))
    example = torch.zeros(1, *input_size, device=parameter.device, dtype=parameter.dtype)
    was_training = gm.training
    gm.eval()
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(example)
    except Exception as err:
        root = err
        while root.__cause__ is not None:
            root = root.__cause__
        raise KeyConversionError(f"the model does not run on an input of size {tuple(input_size)}: {root}") from err
    finally:
        gm.train(was_training)


def _shape(node: Any) -> tuple[int, ...] | None:
    """The traced output shape of a node (of its first tensor, for tuple outputs)."""
    meta = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
    if not hasattr(meta, "shape") and isinstance(meta, list | tuple) and meta:
        meta = meta[0]
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def _describe(node: fx.Node, gm: fx.GraphModule) -> str:
    if node.op == "call_module":
        return f"module {node.target!r} ({type(gm.get_submodule(node.target)).__name__})"
    if node.op == "call_method":
        return f"method .{node.target}()"
    return f"function {getattr(node.target, '__name__', node.target)}"


def _analyse(gm: fx.GraphModule, classes: _Classes):
    """Assign each node a layout (None: plain, or Keyed), and collect the ops to rewrite."""
    ctx = _Context(gm, classes, {}, {}, {})
    first_input = True
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            hw = _shape(node)[-2:]
            ctx.layouts[node] = Keyed(classes.new(node, hw), hw) if first_input else None
            first_input = False
        elif node.op == "get_attr":
            ctx.layouts[node] = None
        elif node.op == "output":
            _unify_outputs(node, ctx)
        elif not any(isinstance(ctx.layouts.get(a), Keyed) for a in _node_args(node)):
            ctx.layouts[node] = None
            if _spreads_a_constant(node, ctx):
                ctx.uniform.add(node)
        else:
            try:
                ctx.layouts[node] = _RULES[node.op](node, ctx)
            except (UnsupportedSpatialOp, _Refused) as err:
                raise KeyConversionError(f"cannot key graph node {node.name!r}, {_describe(node, gm)}: {err}") from None
    return ctx.layouts, ctx.spatial_ops, ctx.folds, ctx.param_uses, ctx.window_ops


@dataclass
class _Context:
    """What the rules read and record while the analysis walks the graph."""

    gm: fx.GraphModule
    classes: _Classes
    layouts: dict[fx.Node, Keyed | None]
    spatial_ops: dict[fx.Node, SpatialOp]
    folds: dict[fx.Node, tuple[nn.Linear, Keyed]]
    uniform: set[fx.Node] = field(default_factory=set)  # plain maps equal at every position
    # (node, parameter node, its keyed layout): a parameter that varies over the positions of a
    # keyed operand (a position embedding), permuted once at conversion
    param_uses: list[tuple[fx.Node, fx.Node, Keyed]] = field(default_factory=list)
    # Swin's "attention" and "merging", MaxViT's "partition"
    window_ops: dict[fx.Node, str] = field(default_factory=dict)

    def keyed_inputs(self, node: fx.Node) -> list[Keyed]:
        return [self.layouts[a] for a in _node_args(node) if isinstance(self.layouts.get(a), Keyed)]


class _Refused(Exception):
    """Raised by a rule; the analysis turns it into a KeyConversionError naming the node."""


def _node_args(node: fx.Node) -> list[fx.Node]:
    found: list[fx.Node] = []
    fx.node.map_arg((node.args, node.kwargs), lambda n: found.append(n) or n)
    return found


def _output_layouts(gm: fx.GraphModule, layouts) -> list[Keyed | None]:
    output = next(n for n in gm.graph.nodes if n.op == "output")
    return [layouts.get(n) for n in _node_args(output)]


def _unify_outputs(node: fx.Node, ctx: _Context) -> None:
    """Dense outputs share one output permutation."""
    dense = ctx.keyed_inputs(node)
    for value in dense:
        if not value.nchw:
            raise KeyConversionError(
                f"the model returns {value.describe()} in keyed order; return a (B, C, H, W) map or a plain vector"
            )
        if value.hw != dense[0].hw:
            raise KeyConversionError("the model returns dense outputs of different sizes")
        ctx.classes.union(dense[0].cls, value.cls)


def _spreads_a_constant(node: fx.Node, ctx: _Context) -> bool:
    """A map that is the same at every position (a 1x1 map interpolated up, as in DeepLabV3's
    image-pooling branch, or a pointwise op on one) looks the same in every order."""
    source = node.args[0] if node.args and isinstance(node.args[0], fx.Node) else None
    if source is None:
        return False
    if source in ctx.uniform:
        return node.op == "call_module" and isinstance(ctx.gm.get_submodule(node.target), rules.ELEMENTWISE_MODULES)
    shape = _shape(source)
    is_interpolation = node.target in SIZE_FROM_SHAPE_FUNCTIONS or (
        node.op == "call_module" and isinstance(ctx.gm.get_submodule(node.target), nn.Upsample)
    )
    return is_interpolation and shape is not None and len(shape) == 4 and shape[-2:] == (1, 1)


def _nchw_input(node: fx.Node, ctx: _Context) -> Keyed:
    """The keyed input of a spatial op, which must be a (B, C, H, W) map."""
    value = ctx.layouts[node.args[0]]
    if not value.nchw:
        raise _Refused(f"a spatial op needs a (B, C, H, W) map; its input is {value.describe()}")
    return value


def _spatial(node: fx.Node, ctx: _Context, op: SpatialOp | None) -> Keyed | None:
    """A spatial op: its output gets a new permutation class; op None means it runs unchanged."""
    _nchw_input(node, ctx)
    out_hw = _shape(node)[-2:]
    if op is None:
        return None  # global pooling: a 1x1 map has one order
    ctx.spatial_ops[node] = op
    return Keyed(ctx.classes.new(node, out_hw), out_hw)


def _varies_along(shape: tuple[int, ...], value: Keyed, out_ndim: int) -> bool:
    """Whether a plain operand of `shape`, broadcast to rank `out_ndim`, varies along a keyed axis."""
    offset = out_ndim - len(shape)
    return any(0 <= axis - offset < len(shape) and shape[axis - offset] != 1 for axis in value.axes)


def _pointwise(node: fx.Node, ctx: _Context, per_channel: bool = False) -> Keyed:
    """An op that acts position by position: keyed inputs share one order and layout; a plain
    operand that varies over the keyed positions is a parameter to permute at conversion (a
    position embedding), or refused. `per_channel`: the op reads dim 1 as channels (BatchNorm2d)."""
    keyed = ctx.keyed_inputs(node)
    first = keyed[0]
    for other in keyed[1:]:
        if not other.same_layout(first):
            raise _Refused(f"it combines keyed values of different layouts: {first.describe()}, {other.describe()}")
        ctx.classes.union(first.cls, other.cls)
    if per_channel and not first.nchw:
        raise _Refused(f"it has per-channel parameters on dim 1 and its input is {first.describe()}")
    out_shape = _shape(node)
    out_ndim = len(out_shape) if out_shape is not None else first.ndim
    result = _shifted(first, out_ndim - first.ndim)
    for operand in _node_args(node):
        shape = _shape(operand)
        if ctx.layouts.get(operand) is not None or shape is None or operand in ctx.uniform:
            continue
        if not _varies_along(shape, result, out_ndim):
            continue
        if operand.op != "get_attr" or first.flat:
            raise _Refused(
                f"it combines the keyed map with {operand.name!r} of shape {shape}, which varies over "
                "space; that tensor would have to be in keyed order too"
            )
        ctx.param_uses.append((node, operand, _shifted(result, len(shape) - out_ndim)))
    return result


def _shifted(value: Keyed, by: int) -> Keyed:
    """`value` in a tensor with `by` more leading dims (broadcasting)."""
    if by == 0:
        return value
    return dataclasses.replace(value, axes=tuple(a + by for a in value.axes), ndim=value.ndim + by)


def _reduce(node: fx.Node, ctx: _Context, dims, keepdim: bool = False) -> Keyed | None:
    """A reduction: over every keyed axis it is order-free (plain); over other axes only, it keeps
    the order; over some keyed axes and not others, it depends on the order."""
    value = ctx.layouts[node.args[0]]
    if dims is None:
        return None
    ndim = value.ndim
    dims = {d % ndim for d in (dims if isinstance(dims, list | tuple) else [dims])}
    if set(value.axes) <= dims:
        return None
    if dims & set(value.axes):
        raise _Refused(
            f"reducing over dims {sorted(dims)} does not cover both spatial dims, so it depends on the order"
        )
    if keepdim:
        return value
    return dataclasses.replace(
        value, axes=tuple(a - sum(d < a for d in dims) for a in value.axes), ndim=ndim - len(dims)
    )


def _row_major_strides(shape: tuple[int, ...]) -> list[int]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return strides[::-1]


def _reshaped(node: fx.Node, ctx: _Context) -> Keyed | None:
    """A view, reshape, flatten, unflatten, squeeze or unsqueeze, read from the traced shapes: the
    keyed positions must stay whole dims (a map's rows and columns, or its tokens), move to one
    token dim (rows then columns merged), or come back from tokens to rows and columns."""
    value = ctx.layouts[node.args[0]]
    in_shape, out_shape = _shape(node.args[0]), _shape(node)
    if node.op == "call_method" and node.target == "view":
        node.target = "reshape"  # keyed maps may be channels-last in memory, where .view() fails
    if in_shape == out_shape:
        return value
    if value.flat:
        raise _Refused(f"reshaping flat keyed features {in_shape} to {out_shape}")
    if value.nchw and out_shape == (in_shape[0], in_shape[1] * in_shape[2] * in_shape[3]):
        return None if value.hw == (1, 1) else Keyed(value.cls, value.hw, flat=True, axes=(1,), ndim=2)
    if value.hw == (1, 1):
        return None
    before, after = _row_major_strides(in_shape), _row_major_strides(out_shape)

    def dim_of(size: int, stride: int) -> int | None:
        found = [d for d in range(len(out_shape)) if out_shape[d] == size and after[d] == stride]
        return found[0] if len(found) == 1 else None

    height, width = value.hw
    if value.tokens:
        axis = value.axes[0]
        kept = dim_of(in_shape[axis], before[axis])
        if kept is not None:
            return dataclasses.replace(value, axes=(kept,), ndim=len(out_shape))
        rows, cols = dim_of(height, before[axis] * width), dim_of(width, before[axis])
        if value.start == 0 and in_shape[axis] == height * width and rows is not None and cols == rows + 1:
            return dataclasses.replace(value, axes=(rows, cols), ndim=len(out_shape))
    else:
        row_axis, col_axis = value.axes
        rows, cols = dim_of(height, before[row_axis]), dim_of(width, before[col_axis])
        if rows is not None and cols is not None:
            return dataclasses.replace(value, axes=(rows, cols), ndim=len(out_shape))
        merged = dim_of(height * width, before[col_axis]) if col_axis == row_axis + 1 else None
        if merged is not None:
            return dataclasses.replace(value, axes=(merged,), ndim=len(out_shape), start=0)
    raise _Refused(f"reshaping {in_shape} to {out_shape} mixes keyed positions into other axes")


def _permuted(node: fx.Node, ctx: _Context, order: list[int]) -> Keyed:
    """permute / transpose: the keyed axes move with their dims."""
    value = ctx.layouts[node.args[0]]
    if value.flat:
        raise _Refused("moving the axes of flat keyed features")
    order = [d % value.ndim for d in order]
    return dataclasses.replace(value, axes=tuple(order.index(a) for a in value.axes))


def _split(node: fx.Node, ctx: _Context, dim: int) -> Keyed:
    """chunk / split / unbind along an axis that is not keyed: every part keeps the order."""
    value = ctx.layouts[node.args[0]]
    if dim % value.ndim in value.axes:
        raise _Refused(f"splitting along dim {dim}, which holds keyed positions")
    return value


def _softmax(node: fx.Node, ctx: _Context, dim: int | None) -> Keyed:
    """Softmax along a plain axis runs position by position; along the token axis it is
    permutation-equivariant (attention scores over keyed tokens)."""
    value = ctx.layouts[node.args[0]]
    if dim is None or (value.flat and dim % value.ndim == 1):
        raise _Refused("softmax over flat keyed features mixes positions and channels")
    dim %= value.ndim
    if dim in value.axes and not value.tokens:
        raise _Refused(f"softmax along dim {dim}, one of the map's two keyed axes, depends on the order")
    return value


def _layer_norm(node: fx.Node, ctx: _Context, normalized: int) -> Keyed:
    """LayerNorm over the last `normalized` dims: those must not hold keyed positions."""
    value = ctx.layouts[node.args[0]]
    if value.flat or any(a >= value.ndim - normalized for a in value.axes):
        raise _Refused(f"layer norm over the last {normalized} dims of {value.describe()} mixes keyed positions")
    return value


def _attention(node: fx.Node, ctx: _Context, query, key, val, token_dim: int) -> Keyed | None:
    """Attention(P q, Q k, Q v) = P Attention(q, k, v): equivariant in the query tokens' order,
    invariant in the key tokens' order when keys and values share it."""
    layouts = [ctx.layouts.get(x) if isinstance(x, fx.Node) else None for x in (query, key, val)]
    for value in layouts:
        if value is not None and not (value.tokens and value.axes[0] == token_dim % value.ndim):
            raise _Refused(f"attention over dim {token_dim} of {value.describe()}")
    if (layouts[1] is None) != (layouts[2] is None):
        raise _Refused("attention whose keys and values are not both keyed (or both plain)")
    if layouts[1] is not None:
        if layouts[1].start != layouts[2].start:
            raise _Refused("attention whose keys and values have different token layouts")
        ctx.classes.union(layouts[1].cls, layouts[2].cls)
    return layouts[0]


def _module_rule(node: fx.Node, ctx: _Context) -> Keyed | None:
    module = ctx.gm.get_submodule(node.target)
    value = ctx.layouts.get(node.args[0]) if node.args else None
    if isinstance(module, nn.MultiheadAttention):
        if node.kwargs.get("attn_mask") is not None or node.kwargs.get("key_padding_mask") is not None:
            raise _Refused("attention masks over keyed tokens have no keyed form here")
        query, key, val = (*node.args, None, None, None)[:3]
        query, key, val = (
            node.kwargs.get(name, default) for name, default in (("query", query), ("key", key), ("value", val))
        )
        return _attention(node, ctx, query, key, val, 1 if module.batch_first else 0)
    if not isinstance(value, Keyed):
        raise _Refused("its keyed input is not its first argument")
    if isinstance(module, rules.WINDOW_MODULES):
        return _partitioned(node, ctx, value)
    if isinstance(module, nn.Linear):
        return _linear(node, ctx, value, module)
    if isinstance(module, nn.LayerNorm):
        return _layer_norm(node, ctx, len(module.normalized_shape))
    if isinstance(module, nn.Flatten | nn.Unflatten):
        return _reshaped(node, ctx)
    if isinstance(module, rules.ELEMENTWISE_MODULES):
        return _pointwise(node, ctx)
    if isinstance(module, rules.POINTWISE_MODULES):
        return _pointwise(node, ctx, per_channel=True)
    if isinstance(module, nn.Softmax | nn.LogSoftmax):
        return _softmax(node, ctx, module.dim)
    out_shape = _shape(node)
    _nchw_input(node, ctx)
    op = module_op(module, _shape(node.args[0])[-2:], out_shape[-2:])
    if op is None:
        raise _Refused("privcam has no keyed form of this op")
    if isinstance(module, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d) and out_shape[-2:] == (1, 1):
        return _spatial(node, ctx, None)
    if op.conv is not None:
        _check_single_call(ctx.gm, node)
    return _spatial(node, ctx, op)


def _function_rule(node: fx.Node, ctx: _Context) -> Keyed | None:
    target = node.target
    if target in rules.WINDOW_FUNCTIONS:
        return _windowed(node, ctx, rules.WINDOW_FUNCTIONS[target])
    if target in rules.ATTENTION_FUNCTIONS:
        if _args(node, ("key", None), ("value", None), ("attn_mask", None))[2] is not None:
            raise _Refused("attention masks over keyed tokens have no keyed form here")
        return _attention(node, ctx, node.args[0], *_args(node, ("key", None), ("value", None)), -2)
    if target is operator.getitem:
        return _getitem(node, ctx)
    if target is getattr and node.args[1] in ("shape", "dtype", "device"):
        return None
    if not isinstance(ctx.layouts.get(node.args[0]), Keyed) and target not in rules.CAT_FUNCTIONS:
        return _pointwise(node, ctx) if target in rules.POINTWISE_FUNCTIONS else _refuse_plain_first(node)
    if target in rules.POINTWISE_FUNCTIONS:
        return _pointwise(node, ctx)
    if target in rules.CAT_FUNCTIONS:
        return _cat(node, ctx)
    if target in rules.RESHAPE_FUNCTIONS:
        return _reshaped(node, ctx)
    if target is torch.permute:
        return _permuted(node, ctx, list(_args(node, ("dims", None))[0]))
    if target is torch.transpose:
        return _permuted(node, ctx, _swap(node, ctx))
    if target in rules.SPLIT_FUNCTIONS:
        return _split(node, ctx, _args(node, *rules.SPLIT_FUNCTIONS[target])[-1])
    if target in rules.SOFTMAX_FUNCTIONS:
        return _softmax(node, ctx, _args(node, ("dim", None))[0])
    if target in rules.LAYER_NORM_FUNCTIONS:
        return _layer_norm(node, ctx, len(_args(node, ("normalized_shape", ()))[0]))
    if target in rules.REDUCE_FUNCTIONS:
        return _reduce(node, ctx, *_args(node, ("dim", None), ("keepdim", False)))
    if target in rules.LINEAR_FUNCTIONS:
        raise _Refused("functional linear on keyed features; use nn.Linear so the weights can be keyed")
    if target in CONV_FUNCTIONS:
        return _functional_conv(node, ctx)
    if target in FUNCTION_OPS:
        if target in GLOBAL_POOL_FUNCTIONS and _shape(node)[-2:] == (1, 1):
            return _spatial(node, ctx, None)
        computed = _node_args(node)[1:]
        if computed and target not in SIZE_FROM_SHAPE_FUNCTIONS:
            raise _Refused("its hyperparameters are computed at run time; pass constants")
        _nchw_input(node, ctx)
        args = [None if isinstance(a, fx.Node) else a for a in node.args[1:]]
        kwargs = {k: v for k, v in node.kwargs.items() if not isinstance(v, fx.Node)}
        return _spatial(node, ctx, FUNCTION_OPS[target](_shape(node.args[0])[-2:], _shape(node)[-2:], *args, **kwargs))
    raise _Refused("privcam has no keyed form of this op")


def _functional_conv(node: fx.Node, ctx: _Context) -> Keyed:
    """F.conv2d or F.conv_transpose2d whose weight and bias the model holds (get_attr nodes)."""
    weight, bias = _args(node, ("weight", None), ("bias", None))
    held = []
    for value in (weight, bias):
        if isinstance(value, fx.Node) and value.op != "get_attr":
            raise _Refused("its weight or bias is computed at run time; keep them as parameters or buffers")
        held.append(_attribute(ctx.gm, value.target) if isinstance(value, fx.Node) else value)
    if held[0] is None:
        raise _Refused("it has no weight")
    kwargs = {k: v for k, v in node.kwargs.items() if k not in ("weight", "bias")}
    if any(isinstance(a, fx.Node) for a in (*node.args[3:], *kwargs.values())):
        raise _Refused("its hyperparameters are computed at run time; pass constants")
    op = CONV_FUNCTIONS[node.target](_shape(node.args[0])[-2:], _shape(node)[-2:], *held, *node.args[3:], **kwargs)
    return _spatial(node, ctx, op)


def _attribute(gm: fx.GraphModule, target: str) -> torch.Tensor:
    module_path, _, name = target.rpartition(".")
    return getattr(gm.get_submodule(module_path) if module_path else gm, name)


# shifted_window_attention's arguments after the input, in order
_WINDOW_ARGUMENTS = ("qkv_weight", "proj_weight", "relative_position_bias", "window_size", "num_heads", "shift_size")


def _windowed(node: fx.Node, ctx: _Context, kind: str) -> Keyed:
    """Swin's window attention (the output keeps the input's order) or patch merging (a new
    order for the half-size map): both take a keyed channels-last map and plain weights."""
    value = ctx.layouts.get(node.args[0])
    if not isinstance(value, Keyed) or len(ctx.keyed_inputs(node)) > 1:
        raise _Refused("only its input may be keyed")
    if value.flat or value.axes != (1, 2) or value.ndim != 4:
        raise _Refused(f"it takes a channels-last (B, H, W, C) map; its input is {value.describe()}")
    ctx.window_ops[node] = kind
    if kind == "attention":
        return value
    hw = ((value.hw[0] + 1) // 2, (value.hw[1] + 1) // 2)
    return Keyed(ctx.classes.new(node, hw), hw, axes=(1, 2), ndim=4)


def _partitioned(node: fx.Node, ctx: _Context, value: Keyed) -> Keyed:
    """MaxViT's block or grid attention: a keyed (B, C, H, W) map in, the same order out."""
    if len(ctx.keyed_inputs(node)) > 1 or len(node.args) + len(node.kwargs) > 1:
        raise _Refused("it takes one keyed map alone")
    _nchw_input(node, ctx)
    ctx.window_ops[node] = "partition"
    return value


def _refuse_plain_first(node: fx.Node) -> None:
    raise _Refused("its keyed input is not its first argument")


def _swap(node: fx.Node, ctx: _Context) -> list[int]:
    """The dim order of transpose(x, a, b)."""
    ndim = ctx.layouts[node.args[0]].ndim
    a, b = (d % ndim for d in _args(node, ("dim0", 0), ("dim1", 1)))
    order = list(range(ndim))
    order[a], order[b] = order[b], order[a]
    return order


def _method_rule(node: fx.Node, ctx: _Context) -> Keyed | None:
    name = node.target
    if name in rules.SHAPE_METHODS:
        return None
    if not isinstance(ctx.layouts.get(node.args[0]), Keyed):
        return _pointwise(node, ctx) if name in rules.POINTWISE_METHODS else _refuse_plain_first(node)
    if name in rules.POINTWISE_METHODS:
        return _pointwise(node, ctx)
    if name in rules.REDUCE_METHODS:
        return _reduce(node, ctx, *_args(node, ("dim", None), ("keepdim", False)))
    if name in rules.RESHAPE_METHODS:
        return _reshaped(node, ctx)
    if name == "permute":
        dims = node.args[1] if len(node.args) == 2 and isinstance(node.args[1], list | tuple) else node.args[1:]
        return _permuted(node, ctx, list(node.kwargs.get("dims", dims)))
    if name == "transpose":
        return _permuted(node, ctx, _swap(node, ctx))
    if name in rules.SPLIT_METHODS:
        return _split(node, ctx, _args(node, *rules.SPLIT_METHODS[name])[-1])
    if name == "softmax":
        return _softmax(node, ctx, _args(node, ("dim", None))[0])
    raise _Refused("privcam has no keyed form of this op")


def _args(node: fx.Node, *spec: tuple[str, Any]) -> list[Any]:
    """Positional-or-keyword arguments after the input, by name with defaults."""
    return [
        node.args[i] if len(node.args) > i else node.kwargs.get(name, default)
        for i, (name, default) in enumerate(spec, 1)
    ]


def _cat(node: fx.Node, ctx: _Context) -> Keyed:
    """Concatenation: along a plain axis, of values in one order; along the token axis, of keyed
    tokens with plain ones (a class token in front moves where the keyed tokens start)."""
    tensors = node.args[0]
    dim = _args(node, ("dim", 0))[0]
    keyed = [t for t in tensors if isinstance(ctx.layouts.get(t), Keyed)]
    first = ctx.layouts[keyed[0]]
    dim %= first.ndim
    if first.tokens and dim == first.axes[0]:
        if len(keyed) > 1:
            raise _Refused("it concatenates two sets of keyed tokens")
        before = tensors[: tensors.index(keyed[0])]
        return dataclasses.replace(first, start=first.start + sum(_shape(t)[dim] for t in before))
    if any(not isinstance(ctx.layouts.get(t), Keyed) and t not in ctx.uniform for t in tensors):
        raise _Refused("it concatenates keyed maps with plain ones that vary over space")
    if dim in first.axes or (first.flat and dim == 1):
        raise _Refused(f"concatenation along dim {dim}, which holds keyed positions")
    return _pointwise(node, ctx)


def _getitem(node: fx.Node, ctx: _Context) -> Keyed | None:
    """An element of a tuple of keyed values, or indexing: plain axes freely, the keyed block of a
    token axis whole (or a plain token outside it); a map's rows and columns only whole."""
    value = ctx.layouts[node.args[0]]
    source = node.args[0]
    if not isinstance(source.meta.get("tensor_meta"), TensorMetadata):
        if _shape(node) is None:
            return None  # a None in the tuple (attention weights not asked for)
        attention = source.op == "call_module" and isinstance(
            ctx.gm.get_submodule(source.target), nn.MultiheadAttention
        )
        if attention and node.args[1] != 0 and node.users:
            raise _Refused("attention weights over keyed tokens have no keyed form here")
        return value
    index = node.args[1] if isinstance(node.args[1], tuple) else (node.args[1],)
    if any(i is None for i in index) or sum(i is Ellipsis for i in index) > 1:
        raise _Refused("indexing a keyed value with None")
    if Ellipsis in index:
        at = index.index(Ellipsis)
        index = (*index[:at], *[slice(None)] * (value.ndim - len(index) + 1), *index[at + 1 :])
    kept, axes, start, plain = 0, [], value.start, False
    for dim in range(value.ndim):
        item = index[dim] if dim < len(index) else slice(None)
        if isinstance(item, fx.Node) or not isinstance(item, int | slice):
            raise _Refused("indexing with a tensor or a computed index")
        keyed_axis = dim in value.axes or (value.flat and dim == 1)
        if keyed_axis and item != slice(None):
            if not value.tokens:
                raise _Refused("indexing a keyed value along its keyed axes")
            start, plain = _token_index(item, value, _shape(source)[dim])
        if isinstance(item, slice):
            if keyed_axis:
                axes.append(kept)
            kept += 1
    if plain:
        return None
    return dataclasses.replace(value, axes=tuple(axes), ndim=kept, start=start)


def _token_index(item: int | slice, value: Keyed, size: int) -> tuple[int, bool]:
    """(where the keyed tokens start after indexing the token axis with `item`, whether the result
    holds no keyed token)."""
    first, stop = value.start, value.start + value.hw[0] * value.hw[1]
    if isinstance(item, int):
        if first <= item % size < stop:
            raise _Refused("selecting one keyed token depends on the order")
        return 0, True
    lo, hi, step = item.indices(size)
    if step == 1 and (hi <= first or lo >= stop):
        return 0, True
    if step == 1 and lo <= first and hi >= stop:
        return first - lo, False
    raise _Refused("slicing the token axis through the keyed tokens depends on the order")


def _linear(node: fx.Node, ctx: _Context, value: Keyed, module: nn.Linear) -> Keyed | None:
    if value.flat:
        _check_single_call(ctx.gm, node)
        ctx.folds[node] = (module, value)
        return None
    if value.ndim - 1 in value.axes:
        raise _Refused("nn.Linear on a spatial map acts along its keyed width axis")
    return value


def _check_single_call(gm: fx.GraphModule, node: fx.Node) -> None:
    calls = sum(1 for n in gm.graph.nodes if n.op == "call_module" and n.target == node.target)
    if calls > 1:
        raise _Refused("this module is called at several places; each keyed call needs its own weights")


_RULES: dict[str, Callable[[fx.Node, _Context], Keyed | None]] = {
    "call_module": _module_rule,
    "call_function": _function_rule,
    "call_method": _method_rule,
}


def _assign_permutations(classes: _Classes, key: Key, input_perm: np.ndarray) -> dict[int, np.ndarray]:
    """One permutation per class, from the label of its first node in graph order."""
    perms: dict[int, np.ndarray] = {}
    for cls in range(len(classes.parent)):
        root = classes.find(cls)
        if root in perms:
            continue
        node, hw = classes.origin[root], classes.hw[root]
        if node.op == "placeholder":
            perms[root] = input_perm
        else:
            perms[root] = permutation(key, f"net/{node.name}", hw[0] * hw[1])
    return perms


def _build_keyed_op(node: fx.Node, op: SpatialOp, perm_in, perm_out, backend: str) -> nn.Module:
    if op.kind in ("pixel_shuffle", "pixel_unshuffle"):
        in_hw = _shape(node.args[0])[-2:]
        return KeyedPixelShuffle(op.factor, in_hw, perm_in, perm_out, unshuffle=op.kind == "pixel_unshuffle")
    if op.kind == "conv":
        conv = op.conv
        if backend == "deform" and not op.transposed:  # a transposed conv is a gather in both backends
            pad = conv.padding
            symmetric = pad == op.conv_padding or (pad == "same" and _same_is_symmetric(conv))
            if pad != "valid" and not symmetric:
                raise KeyConversionError(
                    f"cannot key graph node {node.name!r}: the deform backend needs symmetric padding; "
                    "use backend='gather' for asymmetric 'same' padding"
                )
            return KeyedDeformConv2d(conv, op.stencil, perm_in, perm_out, op.conv_padding)
        return KeyedConv2d(conv, op.stencil, perm_in, perm_out)
    if op.kind == "max":
        return KeyedMaxPool2d(op.stencil, perm_in, perm_out)
    return KeyedWeightedSum2d(op.stencil, perm_in, perm_out)


def _same_is_symmetric(conv: nn.Conv2d) -> bool:
    return all(d * (k - 1) % 2 == 0 for k, d in zip(conv.kernel_size, conv.dilation, strict=True))


def _fold_linear(linear: nn.Linear, perm: np.ndarray, hw: tuple[int, int]) -> nn.Linear:
    """Linear on keyed flat features: column c*HW + j takes the plain column c*HW + perm[j]."""
    positions = hw[0] * hw[1]
    channels = linear.in_features // positions
    columns = (np.arange(channels)[:, None] * positions + perm[None, :]).reshape(-1)
    folded = copy.deepcopy(linear)
    with torch.no_grad():
        folded.weight.copy_(linear.weight[:, torch.from_numpy(columns).to(linear.weight.device)])
    return folded


def _use_permuted_parameter(gm: fx.GraphModule, node: fx.Node, parameter: fx.Node, value: Keyed, perm) -> None:
    """Point `node` at a copy of `parameter` in keyed order: position j of a keyed map takes the
    plain position perm[j]; keyed tokens take the plain tokens start + perm, others stay."""
    owner_name, _, name = parameter.target.rpartition(".")
    owner = gm.get_submodule(owner_name)
    tensor = getattr(owner, name)
    data = tensor.detach()
    data = data.reshape((1,) * (value.ndim - data.ndim) + tuple(data.shape))
    order = torch.tensor(perm, dtype=torch.long, device=data.device)
    if value.tokens:
        axis, size = value.axes[0], data.shape[value.axes[0]]
        start, stop = value.start, value.start + len(perm)
        index = torch.cat([torch.arange(start), start + order, torch.arange(stop, size)]).to(data.device)
        keyed = data.index_select(axis, index)
    else:
        rows, cols = value.axes
        shape = list(data.shape)
        shape[rows], shape[cols] = value.hw
        grid = data.expand(shape).movedim((rows, cols), (-2, -1))
        flat = grid.reshape(*grid.shape[:-2], -1).index_select(-1, order)
        keyed = flat.reshape(grid.shape).movedim((-2, -1), (rows, cols)).contiguous()
    keyed_name = f"keyed_{parameter.target.replace('.', '_')}_{node.name}"
    if isinstance(tensor, nn.Parameter):
        gm.register_parameter(keyed_name, nn.Parameter(keyed.clone(), requires_grad=tensor.requires_grad))
    else:
        gm.register_buffer(keyed_name, keyed.clone())
    with gm.graph.inserting_before(node):
        node.replace_input_with(parameter, gm.graph.get_attr(keyed_name))
    if not parameter.users:
        gm.graph.erase_node(parameter)
    if not any(n.op == "get_attr" and n.target == parameter.target for n in gm.graph.nodes):
        delattr(owner, name)  # the plain-order copy is no longer read


def _set_submodule(gm: fx.GraphModule, target: str, module: nn.Module) -> None:
    parent_name, _, name = target.rpartition(".")
    setattr(gm.get_submodule(parent_name) if parent_name else gm, name, module)


def _replace_with_module(gm: fx.GraphModule, node: fx.Node, module: nn.Module, keep_arguments: bool = False) -> None:
    """Point the node at `module`, in place of its module when it had one used only here. The
    module takes the node's input alone, or all its arguments (`keep_arguments`)."""
    if node.op == "call_module" and sum(1 for n in gm.graph.nodes if n.target == node.target) == 1:
        _set_submodule(gm, node.target, module)
        return
    name = f"keyed_{node.name}"
    gm.add_submodule(name, module)
    node.op, node.target = "call_module", name
    if not keep_arguments:
        node.args, node.kwargs = (node.args[0],), {}
