"""to_keyed: turn a plain CNN into the equivalent network on keyed (shuffled) frames."""

from __future__ import annotations

import copy
import operator
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.fx as fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..privacy import AdcFormat, Key, Readout, permutation
from . import layout as rules
from .keyed_model import BuildStats, KeyedModel
from .ops.conv import KeyedConv2d
from .ops.deform_conv import KeyedDeformConv2d
from .ops.pool import KeyedMaxPool2d, KeyedWeightedSum2d
from .spatial_ops import (
    FUNCTION_OPS,
    GLOBAL_POOL_FUNCTIONS,
    SIZE_FROM_SHAPE_FUNCTIONS,
    SpatialOp,
    UnsupportedSpatialOp,
    module_op,
)

Backend = Literal["gather", "deform"]
KEYED_OPS = (KeyedConv2d, KeyedDeformConv2d, KeyedMaxPool2d, KeyedWeightedSum2d)
BACKENDS = ("gather", "deform")


class KeyConversionError(ValueError):
    """The model contains an op that privcam cannot run on keyed feature maps."""


@dataclass(frozen=True)
class Keyed:
    """A keyed value: a spatial map (flat=False) or flattened map (flat=True) of one permutation class."""

    cls: int
    hw: tuple[int, int]
    flat: bool = False


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
    layouts, spatial_ops, folds = _analyse(graph_module, classes)
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


def _trace(model: nn.Module) -> fx.GraphModule:
    try:
        return fx.symbolic_trace(copy.deepcopy(model))
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
    return ctx.layouts, ctx.spatial_ops, ctx.folds


@dataclass
class _Context:
    """What the rules read and record while the analysis walks the graph."""

    gm: fx.GraphModule
    classes: _Classes
    layouts: dict[fx.Node, Keyed | None]
    spatial_ops: dict[fx.Node, SpatialOp]
    folds: dict[fx.Node, tuple[nn.Linear, Keyed]]
    uniform: set[fx.Node] = field(default_factory=set)  # plain maps equal at every position

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
        if value.flat:
            raise KeyConversionError("the model returns flattened keyed features; return a map or a vector")
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


def _spatial(node: fx.Node, ctx: _Context, op: SpatialOp | None) -> Keyed | None:
    """A spatial op: its output gets a new permutation class; op None means it runs unchanged."""
    value = ctx.layouts[node.args[0]]
    if value.flat:
        raise _Refused("a spatial op cannot run on flattened features")
    out_hw = _shape(node)[-2:]
    if op is None:
        return None  # global pooling: a 1x1 map has one order
    ctx.spatial_ops[node] = op
    return Keyed(ctx.classes.new(node, out_hw), out_hw)


def _pointwise(node: fx.Node, ctx: _Context, flat_ok: bool = True) -> Keyed:
    keyed = ctx.keyed_inputs(node)
    first = keyed[0]
    for other in keyed[1:]:
        if other.flat != first.flat or other.hw != first.hw:
            raise _Refused("it combines keyed values of different shapes or kinds")
        ctx.classes.union(first.cls, other.cls)
    if first.flat and not flat_ok:
        raise _Refused("it has per-feature parameters and cannot run on flattened keyed features")
    trailing = 1 if first.flat else 2
    for operand in _node_args(node):
        shape = _shape(operand)
        spatial = shape is not None and any(s != 1 for s in shape[-trailing:])
        if ctx.layouts.get(operand) is None and spatial and operand not in ctx.uniform:
            raise _Refused(
                f"it combines the keyed map with {operand.name!r} of shape {shape}, which varies over "
                "space; that tensor would have to be in keyed order too"
            )
    return first


def _reduce(node: fx.Node, ctx: _Context, dims) -> None:
    value = ctx.layouts[node.args[0]]
    ndim = len(_shape(node.args[0]))
    if value.flat:
        raise _Refused("a reduction over flattened keyed features")
    if dims is None:
        return None
    dims = {d % ndim for d in (dims if isinstance(dims, list | tuple) else [dims])}
    if {ndim - 2, ndim - 1} <= dims:
        return None
    raise _Refused(f"reducing over dims {sorted(dims)} does not cover both spatial dims, so it depends on the order")


def _flatten(node: fx.Node, ctx: _Context, start_dim: int, end_dim: int) -> Keyed | None:
    value = ctx.layouts[node.args[0]]
    ndim = len(_shape(node.args[0]))
    if value.flat:
        return value
    if ndim == 4 and start_dim % ndim == 1 and end_dim % ndim == ndim - 1:
        return None if value.hw == (1, 1) else Keyed(value.cls, value.hw, flat=True)
    raise _Refused(f"flattening dims {start_dim}..{end_dim} mixes keyed positions into other axes")


def _module_rule(node: fx.Node, ctx: _Context) -> Keyed | None:
    module = ctx.gm.get_submodule(node.target)
    value = ctx.layouts.get(node.args[0]) if node.args else None
    if not isinstance(value, Keyed):
        raise _Refused("its keyed input is not its first argument")
    if isinstance(module, nn.Linear):
        return _linear(node, ctx, value, module)
    if isinstance(module, nn.Flatten):
        return _flatten(node, ctx, module.start_dim, module.end_dim)
    if isinstance(module, rules.ELEMENTWISE_MODULES):
        return _pointwise(node, ctx)
    if isinstance(module, rules.POINTWISE_MODULES):
        return _pointwise(node, ctx, flat_ok=False)
    if isinstance(module, nn.Softmax | nn.LogSoftmax) and module.dim in (1, -3) and not value.flat:
        return _pointwise(node, ctx)
    out_shape = _shape(node)
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
    if target in rules.POINTWISE_FUNCTIONS:
        return _pointwise(node, ctx)
    if target in rules.CAT_FUNCTIONS:
        return _cat(node, ctx)
    if target in rules.FLATTEN_FUNCTIONS:
        return _flatten(node, ctx, *_args(node, ("start_dim", 0), ("end_dim", -1)))
    if target in rules.REDUCE_FUNCTIONS:
        return _reduce(node, ctx, _args(node, ("dim", None))[0])
    if target in rules.LINEAR_FUNCTIONS:
        raise _Refused("functional linear on keyed features; use nn.Linear so the weights can be keyed")
    if target is getattr and node.args[1] in ("shape", "dtype", "device"):
        return None
    if target is operator.getitem:
        return _getitem(node, ctx)
    if target in FUNCTION_OPS:
        if target in GLOBAL_POOL_FUNCTIONS and _shape(node)[-2:] == (1, 1):
            return _spatial(node, ctx, None)
        computed = _node_args(node)[1:]
        if computed and target not in SIZE_FROM_SHAPE_FUNCTIONS:
            raise _Refused("its hyperparameters are computed at run time; pass constants")
        args = [None if isinstance(a, fx.Node) else a for a in node.args[1:]]
        kwargs = {k: v for k, v in node.kwargs.items() if not isinstance(v, fx.Node)}
        return _spatial(node, ctx, FUNCTION_OPS[target](_shape(node.args[0])[-2:], _shape(node)[-2:], *args, **kwargs))
    raise _Refused("privcam has no keyed form of this op")


def _method_rule(node: fx.Node, ctx: _Context) -> Keyed | None:
    name = node.target
    if name in rules.SHAPE_METHODS:
        return None
    if name in rules.POINTWISE_METHODS:
        return _pointwise(node, ctx)
    if name in rules.REDUCE_METHODS:
        return _reduce(node, ctx, _args(node, ("dim", None))[0])
    if name == "flatten":
        return _flatten(node, ctx, *_args(node, ("start_dim", 0), ("end_dim", -1)))
    if name in rules.RESHAPE_METHODS:
        in_shape, out_shape = _shape(node.args[0]), _shape(node)
        if len(in_shape) == 4 and out_shape == (in_shape[0], in_shape[1] * in_shape[2] * in_shape[3]):
            node.target = "reshape"  # keyed maps may be channels-last in memory, where .view() fails
            return _flatten(node, ctx, 1, -1)
        raise _Refused(f"reshaping {in_shape} to {out_shape} mixes keyed positions into other axes")
    raise _Refused("privcam has no keyed form of this op")


def _args(node: fx.Node, *spec: tuple[str, Any]) -> list[Any]:
    """Positional-or-keyword arguments after the input, by name with defaults."""
    return [
        node.args[i] if len(node.args) > i else node.kwargs.get(name, default)
        for i, (name, default) in enumerate(spec, 1)
    ]


def _cat(node: fx.Node, ctx: _Context) -> Keyed:
    tensors = node.args[0]
    dim = _args(node, ("dim", 0))[0]
    ndim = len(_shape(tensors[0]))
    if any(not isinstance(ctx.layouts.get(t), Keyed) and t not in ctx.uniform for t in tensors):
        raise _Refused("it concatenates keyed maps with plain ones that vary over space")
    if dim % ndim not in (0, 1):
        raise _Refused(f"concatenation along dim {dim} (only batch and channels keep the keyed order)")
    return _pointwise(node, ctx)


def _getitem(node: fx.Node, ctx: _Context) -> Keyed:
    value = ctx.layouts[node.args[0]]
    index = node.args[1] if isinstance(node.args[1], tuple) else (node.args[1],)
    leading = 1 if value.flat else 2
    if any(i is Ellipsis or i is None for i in index) or any(i != slice(None) for i in index[leading:]):
        raise _Refused("indexing a keyed value along its keyed axes")
    return value


def _linear(node: fx.Node, ctx: _Context, value: Keyed, module: nn.Linear) -> None:
    if not value.flat:
        raise _Refused("nn.Linear on a spatial map acts along its keyed width axis")
    _check_single_call(ctx.gm, node)
    ctx.folds[node] = (module, value)
    return None


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
    if op.kind == "conv":
        conv = op.conv
        if backend == "deform":
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


def _set_submodule(gm: fx.GraphModule, target: str, module: nn.Module) -> None:
    parent_name, _, name = target.rpartition(".")
    setattr(gm.get_submodule(parent_name) if parent_name else gm, name, module)


def _replace_with_module(gm: fx.GraphModule, node: fx.Node, module: nn.Module) -> None:
    """Point the node at `module`, in place of its module when it had one used only here."""
    if node.op == "call_module" and sum(1 for n in gm.graph.nodes if n.target == node.target) == 1:
        _set_submodule(gm, node.target, module)
        return
    name = f"keyed_{node.name}"
    gm.add_submodule(name, module)
    node.op, node.target = "call_module", name
    node.args, node.kwargs = (node.args[0],), {}
