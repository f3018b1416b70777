"""Single keyed ops against torch's own op: keyed(shuffle(x)) == shuffle(op(x)) for random settings."""

import copy
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

from privcam.nets import to_keyed
from privcam.privacy import Key

from conftest import keyed_and_plain_outputs

KEY = Key(bytes(range(32)))
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Functional(nn.Module):
    """Wraps a functional call with constant arguments so torch.fx records it as a call_function."""

    def __init__(self, fn, **kwargs) -> None:
        super().__init__()
        self.fn = partial(fn, **kwargs)

    def forward(self, x):
        return self.fn(x)


def assert_keyed_matches(module, input_size, batch, backend="gather", atol=1e-4):
    model = nn.Sequential(module).eval()  # a bare root module would be traced through its forward
    x = torch.randn(batch, *input_size)
    try:
        with torch.no_grad():
            model(x)
    except RuntimeError:
        assume(False)  # settings torch itself rejects
    keyed = to_keyed(model, KEY, input_size, backend=backend)
    out, reference = keyed_and_plain_outputs(keyed, model, x)
    assert out.shape == reference.shape
    torch.testing.assert_close(out, reference, atol=atol, rtol=1e-5)


@st.composite
def conv_settings(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    c_in = groups * draw(st.integers(1, 3))
    c_out = groups * draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding_mode = draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"]))
    if stride == (1, 1) and draw(st.booleans()):
        padding = draw(st.sampled_from(["same", "valid"]))
    else:
        padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    conv = nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation, groups, draw(st.booleans()), padding_mode)
    size = (c_in, draw(st.integers(4, 13)), draw(st.integers(4, 13)))
    return conv, size


@SETTINGS
@given(setting=conv_settings(), batch=st.integers(1, 3))
def test_conv2d_gather(setting, batch):
    conv, size = setting
    assert_keyed_matches(conv, size, batch, "gather")


@SETTINGS
@given(setting=conv_settings(), batch=st.integers(1, 3))
def test_conv2d_deform(setting, batch):
    conv, size = setting
    symmetric = all(d * (k - 1) % 2 == 0 for k, d in zip(conv.kernel_size, conv.dilation, strict=True))
    assume(conv.padding != "same" or symmetric)  # the deform backend refuses asymmetric padding
    assert_keyed_matches(conv, size, batch, "deform")


@pytest.mark.parametrize("backend", ["gather", "deform"])
@pytest.mark.parametrize(("c_in", "c_out", "groups"), [(6, 6, 6), (4, 8, 4), (6, 4, 2)])
def test_depthwise_and_grouped_conv(backend, c_in, c_out, groups):
    conv = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, groups=groups)
    assert_keyed_matches(conv, (c_in, 9, 10), 2, backend)


@SETTINGS
@given(
    kernel=st.integers(1, 4),
    stride=st.one_of(st.none(), st.integers(1, 3)),
    padding_fraction=st.integers(0, 2),
    dilation=st.integers(1, 2),
    ceil_mode=st.booleans(),
    functional=st.booleans(),
    hw=st.tuples(st.integers(3, 12), st.integers(3, 12)),
    batch=st.integers(1, 3),
)
def test_max_pool(kernel, stride, padding_fraction, dilation, ceil_mode, functional, hw, batch):
    padding = min(padding_fraction, kernel // 2)
    kwargs = dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode)
    model = Functional(F.max_pool2d, **kwargs) if functional else nn.MaxPool2d(**kwargs)
    assert_keyed_matches(model, (3, *hw), batch)


@SETTINGS
@given(
    kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    stride=st.one_of(st.none(), st.integers(1, 3)),
    padding=st.integers(0, 2),
    ceil_mode=st.booleans(),
    count_include_pad=st.booleans(),
    divisor_override=st.one_of(st.none(), st.integers(1, 5)),
    functional=st.booleans(),
    hw=st.tuples(st.integers(3, 12), st.integers(3, 12)),
    batch=st.integers(1, 3),
)
def test_avg_pool(kernel, stride, padding, ceil_mode, count_include_pad, divisor_override, functional, hw, batch):
    padding = min(padding, kernel[0] // 2, kernel[1] // 2)
    kwargs = dict(
        kernel_size=kernel,
        stride=stride,
        padding=padding,
        ceil_mode=ceil_mode,
        count_include_pad=count_include_pad,
        divisor_override=divisor_override,
    )
    model = Functional(F.avg_pool2d, **kwargs) if functional else nn.AvgPool2d(**kwargs)
    assert_keyed_matches(model, (2, *hw), batch)


@SETTINGS
@given(
    out=st.tuples(st.integers(1, 7), st.integers(1, 7)),
    mode=st.sampled_from(["avg", "max"]),
    functional=st.booleans(),
    hw=st.tuples(st.integers(1, 12), st.integers(1, 12)),
)
def test_adaptive_pool(out, mode, functional, hw):
    if functional:
        model = Functional(F.adaptive_avg_pool2d if mode == "avg" else F.adaptive_max_pool2d, output_size=out)
    else:
        model = nn.AdaptiveAvgPool2d(out) if mode == "avg" else nn.AdaptiveMaxPool2d(out)
    assert_keyed_matches(model, (2, *hw), 2)


@SETTINGS
@given(
    mode=st.sampled_from(["nearest", "nearest-exact", "bilinear"]),
    align_corners=st.booleans(),
    use_size=st.booleans(),
    scale=st.sampled_from([1, 2, 3, 1.5, 0.5]),
    size=st.tuples(st.integers(1, 15), st.integers(1, 15)),
    hw=st.tuples(st.integers(2, 9), st.integers(2, 9)),
    functional=st.booleans(),
)
def test_interpolate(mode, align_corners, use_size, scale, size, hw, functional):
    corners = align_corners if mode == "bilinear" else None
    target = {"size": size} if use_size else {"scale_factor": scale}
    if functional:
        model = Functional(F.interpolate, mode=mode, align_corners=corners, **target)
    else:
        model = nn.Upsample(mode=mode, align_corners=corners, **target)
    assert_keyed_matches(model, (2, *hw), 2)


@pytest.fixture(params=["numba", "torch"])
def gather_kernels(request, monkeypatch):
    """Both ways a CPU float map is gathered: the numba kernels, and torch's own gathers (which
    run on CUDA and for other dtypes)."""
    if request.param == "torch":
        from privcam.nets.ops import conv, pool, tokens

        for module in (conv, pool, tokens):
            monkeypatch.setattr(module, "NUMBA_DTYPES", ())
    return request.param


def test_gather_backend_gradients_match_plain(gather_kernels):
    """Training keyed models needs backward: weight and input gradients equal the plain ones
    (the depthwise convolution runs as the fused kernel, its reflect padding reads rows twice)."""
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 5, padding=2, groups=4, padding_mode="reflect"),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=2),
        nn.Upsample(scale_factor=2, mode="bilinear"),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 5),
    )
    keyed = to_keyed(model, KEY, (3, 16, 16))
    from privcam.privacy import shuffle, unshuffle

    x = torch.randn(3, 3, 16, 16, requires_grad=True)
    x_keyed = shuffle(x.detach(), keyed.input_permutation).requires_grad_()
    target = torch.randn(3, 5)
    ((model(x) - target) ** 2).sum().backward()
    ((keyed(x_keyed) - target) ** 2).sum().backward()
    plain_grads = dict(model.named_parameters())
    for name, parameter in keyed.graph_module.named_parameters():
        reference = plain_grads[name].grad
        if name == "8.weight":  # the folded Linear holds the plain columns in keyed order
            plain_weight = plain_grads[name].detach()
            columns = [int((plain_weight - parameter[:, [i]]).abs().sum(0).argmin()) for i in range(64)]
            assert sorted(columns) == list(range(64))
            reference = reference[:, columns]
        torch.testing.assert_close(parameter.grad, reference, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(unshuffle(x_keyed.grad, keyed.input_permutation), x.grad, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "first",
    [
        nn.Conv2d(3, 2, 3, padding=1),  # weight gradient from the output gradient's gather
        nn.Conv2d(3, 4, 3, padding=1),  # weight gradient from the input's gather
        nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"),  # autograd through the chunks
    ],
    ids=repr,
)
def test_weight_gradients_over_many_chunks(first, gather_kernels, monkeypatch):
    """Frames that need no gradient, gathered in many small chunks: the first layer's weight
    gradient, each way it is computed, and those of layers whose backward autograd records through
    the gathered chunks (groups) equal the plain ones, so no chunk autograd keeps is overwritten
    by the next."""
    from privcam.nets.ops import tokens
    from privcam.privacy import shuffle

    monkeypatch.setattr(tokens, "CPU_CHUNK_BYTES", 512)
    first = copy.deepcopy(first)
    channels = first.out_channels
    model = nn.Sequential(
        first,
        nn.ReLU(),
        nn.Conv2d(channels, 4, 3, padding=1, groups=2),
        nn.Conv2d(4, 4, 3, padding=1, groups=4),
    )
    keyed = to_keyed(model, KEY, (3, 10, 9))
    x = torch.randn(2, 3, 10, 9)
    target = torch.randn_like(model(x))
    ((model(x) - target) ** 2).sum().backward()
    ((keyed(shuffle(x, keyed.input_permutation)) - shuffle(target, keyed.output_permutation)) ** 2).sum().backward()
    for (name, parameter), reference in zip(keyed.graph_module.named_parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(parameter.grad, reference.grad, atol=1e-4, rtol=1e-4, msg=name)


@pytest.mark.parametrize(
    ("layer", "transposable"),
    [
        (nn.Conv2d(3, 5, 3, padding=1), True),
        (nn.Conv2d(3, 5, (3, 2), stride=2, padding=(1, 0), dilation=(2, 1)), True),
        (nn.ConvTranspose2d(3, 5, 3, stride=2, padding=1, output_padding=1), True),
        (nn.Conv2d(3, 5, 3, padding=1, padding_mode="reflect"), False),  # borders read twice: autograd's scatter
    ],
    ids=repr,
)
def test_keyed_conv_backward_as_gathers(layer, transposable, gather_kernels):
    """The backward of a keyed convolution (groups 1) runs as a convolution over the transposed
    table; its weight, bias and input gradients equal the plain ones."""
    from privcam.nets.ops.conv import KeyedConv2d
    from privcam.privacy import shuffle, unshuffle

    layer = copy.deepcopy(layer)  # one instance serves every parametrisation: fresh gradients
    model = nn.Sequential(layer)
    keyed = to_keyed(model, KEY, (3, 9, 8))
    x = torch.randn(2, 3, 9, 8, requires_grad=True)
    x_keyed = shuffle(x.detach(), keyed.input_permutation).requires_grad_()
    target = torch.randn_like(model(x))
    ((model(x) - target) ** 2).sum().backward()
    ((keyed(x_keyed) - shuffle(target, keyed.output_permutation)) ** 2).sum().backward()
    conv = next(m for m in keyed.modules() if isinstance(m, KeyedConv2d))
    assert (conv.transposed is not None) == transposable
    torch.testing.assert_close(unshuffle(x_keyed.grad, keyed.input_permutation), x.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(conv.bias.grad, layer.bias.grad, atol=1e-4, rtol=1e-4)
    if isinstance(layer, nn.Conv2d):
        torch.testing.assert_close(conv.weight.grad, layer.weight.grad, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    ("pool", "hw"),
    [
        (nn.MaxPool2d(2), (9, 10)),
        (nn.MaxPool2d(3, 2, padding=1), (9, 10)),
        (nn.MaxPool2d((2, 3), 1), (9, 10)),
        (nn.MaxPool2d((16, 17), 1), (18, 18)),  # 272 taps: wider than the kernel's uint8 winners
    ],
    ids=repr,
)
def test_keyed_max_pool_sends_each_gradient_to_the_plain_winner(pool, hw, gather_kernels):
    """Ties included (values 0..2): each output's gradient reaches the input nn.MaxPool2d picks."""
    from privcam.privacy import shuffle, unshuffle

    model = nn.Sequential(pool)
    keyed = to_keyed(model, KEY, (2, *hw))
    x = torch.randint(0, 3, (3, 2, *hw)).double().requires_grad_()
    x_keyed = shuffle(x.detach(), keyed.input_permutation).requires_grad_()
    out = model(x)
    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    (keyed(x_keyed) * shuffle(weights, keyed.output_permutation)).sum().backward()
    torch.testing.assert_close(unshuffle(x_keyed.grad, keyed.input_permutation), x.grad, rtol=0, atol=1e-12)


@pytest.mark.parametrize("channels", [1, 7, 16, 33])
@pytest.mark.parametrize("start", [0, 5, 300])
def test_gather_kernel_equals_indexing(channels, start):
    """The numba gather (blocks of rows, prefetching ahead) equals plain indexing over the map
    with a zero row, for chunks starting anywhere and rows of any length."""
    from privcam.nets.ops.tokens import _gather_rows

    generator = torch.Generator().manual_seed(channels)
    tokens = torch.randn(4, 70, channels, generator=generator)
    table = torch.randint(0, 71, (90, 9), generator=generator, dtype=torch.int32)  # 70: the zero row
    rows = 4 * 90 - start
    out = torch.full((rows, 9, channels), float("nan"))
    _gather_rows(tokens.numpy(), table.numpy(), start, out.numpy())
    padded = torch.cat([tokens, tokens.new_zeros(4, 1, channels)], 1)
    expected = padded[torch.arange(4)[:, None, None], table.long()[None]].reshape(-1, 9, channels)[start:]
    assert torch.equal(out, expected)


def test_keyed_conv_trains_a_bias_under_a_frozen_weight():
    """A first layer whose weight is frozen and bias trained (no gradient reaches the input or
    the weight) still records the bias's gradient, equal to the plain one."""
    from privcam.nets.ops.conv import KeyedConv2d
    from privcam.privacy import shuffle

    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1))
    model[0].weight.requires_grad_(False)
    keyed = to_keyed(model, KEY, (3, 9, 8))
    conv = next(m for m in keyed.modules() if isinstance(m, KeyedConv2d))
    conv.weight.requires_grad_(False)
    x = torch.randn(2, 3, 9, 8)
    model(x).square().sum().backward()
    keyed(shuffle(x, keyed.input_permutation)).square().sum().backward()
    torch.testing.assert_close(conv.bias.grad, model[0].bias.grad, atol=1e-4, rtol=1e-4)
