"""Keyed forms beyond (B, C, H, W) maps: channels-last axes, tokens, class tokens, position
embeddings, attention, channel shuffles, transposed convolutions, pixel shuffles and padding; each
tested against the plain op, whole vision transformers and modern CNNs too, and what stays refused."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models
from torchvision.models import MaxVit, SwinTransformer
from torchvision.models.maxvit import PartitionAttentionLayer
from torchvision.models.swin_transformer import (
    PatchMergingV2,
    SwinTransformerBlockV2,
    _patch_merging_pad,
    shifted_window_attention,
)
from torchvision.models.vision_transformer import VisionTransformer

from privcam.nets import KeyConversionError, create_model, to_keyed
from privcam.nets.ops.pixel_shuffle import KeyedPixelShuffle
from privcam.nets.ops.window_attention import (
    KeyedPartitionAttention,
    KeyedPatchMerging,
    KeyedWindowAttention,
    partition_positions,
)
from privcam.privacy import permutation, shuffle

from conftest import keyed_and_plain_outputs, randomize_batchnorm


def ready(model: nn.Module) -> nn.Module:
    """Eval mode, random BatchNorm statistics, and no all-zero parameter (torchvision starts
    ViT's head and class token at zero, which would make any output match)."""
    model = randomize_batchnorm(model).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            if not parameter.abs().sum():
                parameter.normal_(0, 0.02)
    return model


def assert_keyed_matches(model, key, input_size, backend="gather", batch=2):
    keyed = to_keyed(model, key, input_size, backend=backend)
    out, reference = keyed_and_plain_outputs(keyed, model, torch.randn(batch, *input_size))
    scale = reference.abs().max()
    assert (out - reference).abs().max() <= 1e-5 * scale, float((out - reference).abs().max() / scale)
    if reference.dim() == 2:
        assert torch.equal(out.argmax(1), reference.argmax(1))
    return keyed


FAMILIES = {
    "vit_tiny (zoo)": (lambda: create_model("vit_tiny"), (1, 28, 28)),
    "convnext_nano (zoo)": (lambda: create_model("convnext_nano"), (1, 28, 28)),
    "vit": (lambda: VisionTransformer(32, 8, 2, 2, 32, 64, num_classes=5), (3, 32, 32)),
    "convnext": (lambda: models.convnext_tiny(num_classes=5), (3, 32, 32)),
    "efficientnet": (lambda: models.efficientnet_b0(num_classes=5), (3, 32, 32)),
    "efficientnet_v2": (lambda: models.efficientnet_v2_s(num_classes=5), (3, 32, 32)),
    "shufflenet": (lambda: models.shufflenet_v2_x0_5(num_classes=5), (3, 32, 32)),
    # 9x7 patches: windows of 3 padded at the edges, shifted every second block, odd patch merging
    "swin": (lambda: SwinTransformer([4, 4], 16, [2, 2], [2, 2], [3, 3], num_classes=5), (3, 36, 28)),
    "swin_v2": (
        lambda: SwinTransformer(
            [4, 4],
            16,
            [2, 2],
            [2, 2],
            [3, 3],
            num_classes=5,
            block=SwinTransformerBlockV2,
            downsample_layer=PatchMergingV2,
        ),
        (3, 36, 28),
    ),
    # 32x32: maps of 8x8 and 4x4, block and grid partitions of 2x2 slots
    "maxvit": (lambda: MaxVit((32, 32), 8, 2, [16, 32], [1, 1], 8, 0.0, num_classes=5), (3, 32, 32)),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_modern_families_match_plain(family, key):
    build, input_size = FAMILIES[family]
    assert_keyed_matches(ready(build()), key, input_size)


def test_vit_keys_only_its_patch_embedding_and_position_embedding(key):
    model = ready(VisionTransformer(32, 8, 2, 2, 32, 64, num_classes=5))
    keyed = assert_keyed_matches(model, key, (3, 32, 32))
    names = dict(keyed.graph_module.named_parameters())
    embedding = [n for n in names if "pos_embedding" in n]
    assert len(embedding) == 1 and embedding[0].startswith("keyed_")
    plain = model.encoder.pos_embedding[0, 1:]
    assert not torch.equal(names[embedding[0]][0, 1:], plain)  # permuted
    assert torch.equal(names[embedding[0]][0, 0], model.encoder.pos_embedding[0, 0])  # class token's stays
    assert torch.equal(names[embedding[0]][0, 1:].sort(0).values, plain.sort(0).values)


class ChannelsLast(nn.Module):
    """ConvNeXt's block: channels-last LayerNorm and Linear, a reduction over channels."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, padding=1)
        self.norm = nn.LayerNorm(8)
        self.linear = nn.Linear(8, 8)

    def forward(self, x):
        y = self.linear(self.norm(self.conv(x).permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        y = F.layer_norm(y.transpose(1, 3), (8,)).transpose(1, 3)
        return y * y.mean(1, keepdim=True) + y.amax(dim=1).unsqueeze(1)


class Tokens(nn.Module):
    """Tokens both ways: a class token, a position embedding, attention (module and function),
    softmax over tokens, and the tokens back to a map for a convolution."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(3, 16, 2, stride=2)
        self.cls = nn.Parameter(torch.randn(1, 1, 16))
        self.position = nn.Parameter(torch.randn(1, 17, 16))
        self.attention = nn.MultiheadAttention(16, 2, batch_first=True)
        self.conv = nn.Conv2d(16, 4, 3, padding=1)

    def forward(self, x):
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(x.shape[0], -1, -1), tokens], dim=1) + self.position
        tokens = tokens + self.attention(tokens, tokens, tokens, need_weights=False)[0]
        heads = tokens.view(x.shape[0], 17, 2, 8).transpose(1, 2)
        tokens = tokens + F.scaled_dot_product_attention(heads, heads, heads).transpose(1, 2).reshape(-1, 17, 16)
        tokens = tokens * tokens.softmax(dim=1)
        grid = tokens[:, 1:].transpose(1, 2).reshape(-1, 16, 4, 4)
        return self.conv(grid), tokens[:, 0]


class Shuffle(nn.Module):
    """ShuffleNet's channel shuffle and chunk."""

    def forward(self, x):
        left, right = x.chunk(2, dim=1)
        x = torch.cat([left, right * 2], dim=1)
        b, c, h, w = x.size()
        return torch.transpose(x.view(b, 2, c // 2, h, w), 1, 2).contiguous().view(b, -1, h, w)


class SpatialBias(nn.Module):
    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.randn(1, 4, 8, 8))
        self.rows = nn.Parameter(torch.randn(8, 1))

    def forward(self, x):
        return x + self.bias + self.rows


@pytest.mark.parametrize("module", [ChannelsLast(), Shuffle(), SpatialBias()], ids=lambda m: type(m).__name__)
def test_axis_moves_and_parameters_over_space(module, key):
    assert_keyed_matches(ready(module), key, (4, 8, 8))


def channels_last_keyed(x: torch.Tensor, perm) -> torch.Tensor:
    """(B, H, W, C) plain -> keyed: positions moved as a (B, C, H, W) map's are."""
    return shuffle(x.permute(0, 3, 1, 2), perm).permute(0, 2, 3, 1)


@pytest.mark.parametrize(("hw", "shift"), [((8, 8), [2, 2]), ((9, 7), [1, 1]), ((9, 7), [0, 0]), ((3, 5), [1, 2])])
@pytest.mark.parametrize("cosine", [False, True], ids=["v1", "v2"])
def test_window_attention_op_matches_torchvision(hw, shift, cosine, key):
    torch.manual_seed(0)
    channels, heads, window = 8, 2, [3, 3]
    x = torch.randn(2, *hw, channels)
    args = (torch.randn(3 * channels, channels) / 3, torch.randn(channels, channels) / 3, torch.randn(1, heads, 9, 9))
    kwargs = {"qkv_bias": torch.randn(3 * channels), "proj_bias": torch.randn(channels), "training": False}
    if cosine:
        kwargs["logit_scale"] = torch.full((heads, 1, 1), 2.0)
    plain = shifted_window_attention(x, *args, window, heads, shift, **kwargs)
    perm = permutation(key, "test/in", hw[0] * hw[1])
    windows = permutation(key, "test/windows", -(-hw[0] // 3) * -(-hw[1] // 3))
    op = KeyedWindowAttention(hw, window, shift, perm, windows)
    keyed = op(channels_last_keyed(x, perm), *args, window, heads, shift, **kwargs)
    torch.testing.assert_close(keyed, channels_last_keyed(plain, perm), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["window", "grid"])
def test_partition_attention_op_matches_torchvision(kind, key):
    """MaxViT's block (window) and grid attention: partitions of 3x3 slots of a 9x9 map."""
    torch.manual_seed(0)
    layer = ready(PartitionAttentionLayer(8, 4, 3, kind, (9, 9), 2, nn.GELU, nn.LayerNorm, 0.0, 0.0, 0.0))
    perm = permutation(key, "test/in", 81)
    windows = permutation(key, "test/windows", partition_positions(layer, (9, 9)).shape[0])
    x = torch.randn(2, 8, 9, 9)
    with torch.no_grad():
        keyed = KeyedPartitionAttention(layer, (9, 9), perm, windows)(shuffle(x, perm))
        torch.testing.assert_close(keyed, shuffle(layer(x), perm), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("hw", [(8, 6), (9, 7)])
def test_patch_merging_and_pixel_shuffle_ops_match_torch(hw, key):
    x = torch.randn(2, *hw, 5)
    perm_in = permutation(key, "test/in", hw[0] * hw[1])
    out_hw = ((hw[0] + 1) // 2, (hw[1] + 1) // 2)
    perm_out = permutation(key, "test/out", out_hw[0] * out_hw[1])
    merged = KeyedPatchMerging(hw, perm_in, perm_out)(channels_last_keyed(x, perm_in))
    torch.testing.assert_close(merged, channels_last_keyed(_patch_merging_pad(x), perm_out))
    maps = torch.randn(2, 8, 4, 6)
    small, big = permutation(key, "test/small", 24), permutation(key, "test/big", 96)
    shuffled = KeyedPixelShuffle(2, (4, 6), small, big)(shuffle(maps, small))
    torch.testing.assert_close(shuffled, shuffle(F.pixel_shuffle(maps, 2), big))
    back = KeyedPixelShuffle(2, (8, 12), big, small, unshuffle=True)(shuffle(F.pixel_shuffle(maps, 2), big))
    torch.testing.assert_close(back, shuffle(maps, small))


def test_tokens_class_token_and_attention(key):
    model = ready(Tokens())
    keyed = to_keyed(model, key, (3, 8, 8))
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        (map_out, cls_out), (map_ref, cls_ref) = keyed(shuffle(x, keyed.input_permutation)), model(x)
    torch.testing.assert_close(cls_out, cls_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(map_out, shuffle(map_ref, keyed.output_permutation), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "layer",
    [
        nn.ConvTranspose2d(4, 6, 3),
        nn.ConvTranspose2d(4, 6, 4, stride=2, padding=1),
        nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1),
        nn.ConvTranspose2d(4, 6, 3, stride=3, padding=2, dilation=2, groups=2, bias=False),
        nn.PixelShuffle(2),
        nn.PixelUnshuffle(2),
        nn.AdaptiveAvgPool2d((3, 5)),
    ],
    ids=repr,
)
@pytest.mark.parametrize("backend", ["gather", "deform"])
def test_upsampling_ops_match_plain(layer, backend, key):
    model = ready(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), layer, nn.ReLU()))
    assert_keyed_matches(model, key, (4, 8, 10), backend=backend)


class FunctionalConv(nn.Module):
    """A convolution called through torch.nn.functional on weights the module holds; `scale`
    computes the weight at run time instead, which has no keyed form."""

    def __init__(self, transposed, c_in, c_out, kernel, groups, scale=False, **settings):
        super().__init__()
        shape = (c_in, c_out // groups) if transposed else (c_out, c_in // groups)
        self.weight = nn.Parameter(torch.randn(*shape, *kernel) / 3)
        self.register_buffer("bias", torch.randn(c_out))
        self.conv = F.conv_transpose2d if transposed else F.conv2d
        self.scale, self.groups, self.settings = scale, groups, settings

    def forward(self, x):
        weight = self.weight * 2 if self.scale else self.weight
        return self.conv(x, weight, self.bias, groups=self.groups, **self.settings)


@pytest.mark.parametrize(
    ("transposed", "c_out", "kernel", "groups", "settings"),
    [
        (False, 6, (3, 2), 1, {"stride": 2, "padding": 1}),
        (False, 4, (3, 3), 2, {"padding": "same", "dilation": 2}),
        (True, 6, (3, 3), 1, {"stride": 2, "padding": 1, "output_padding": 1}),
        (True, 6, (2, 3), 2, {"stride": (3, 2), "dilation": 2}),
    ],
)
def test_functional_convolutions_on_held_weights(transposed, c_out, kernel, groups, settings, key):
    model = ready(nn.Sequential(FunctionalConv(transposed, 4, c_out, kernel, groups, **settings), nn.ReLU()))
    assert_keyed_matches(model, key, (4, 7, 9))
    computed = FunctionalConv(transposed, 4, c_out, kernel, groups, scale=True, **settings)
    with pytest.raises(KeyConversionError, match="weight or bias is computed at run time"):
        to_keyed(computed, key, (4, 7, 9))


class Pad(nn.Module):
    def __init__(self, pad, mode):
        super().__init__()
        self.pad, self.mode = pad, mode

    def forward(self, x):
        return F.pad(x, self.pad, mode=self.mode)


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_in_every_mode(mode, key):
    assert_keyed_matches(ready(Pad((1, 2, 2, 0), mode)), key, (3, 6, 7))
    assert_keyed_matches(ready(Pad((-1, 1, 0, -2), "constant")), key, (3, 6, 7))


class Indexed(nn.Module):
    def forward(self, x):
        return x.flatten(2)[:, :, 5]


class Rolled(nn.Module):
    def forward(self, x):
        return torch.roll(x, 1, dims=3)


class Masked(nn.Module):
    def __init__(self):
        super().__init__()
        self.attention = nn.MultiheadAttention(3, 1, batch_first=True)

    def forward(self, x):
        tokens = x.flatten(2).transpose(1, 2)
        mask = torch.zeros(64, 64, dtype=torch.bool)
        return self.attention(tokens, tokens, tokens, attn_mask=mask)[0].mean(1)


class Windows(nn.Module):
    def forward(self, x):
        return x.reshape(x.shape[0], 3, 2, 4, 2, 4).permute(0, 2, 4, 1, 3, 5).mean((3, 4, 5))


class Transposed(nn.Module):
    def forward(self, x):
        return x.transpose(2, 3)


@pytest.mark.parametrize(
    ("module", "message"),
    [
        (Indexed(), r"node 'getitem'.*selecting one keyed token depends on the order"),
        (Rolled(), r"node 'roll', function roll: privcam has no keyed form"),
        (Masked(), r"attention masks over keyed tokens"),
        (Windows(), r"node 'reshape'.*mixes keyed positions into other axes"),
        (Transposed(), r"returns a map with rows and columns in dims \(3, 2\).*return a \(B, C, H, W\) map"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else "",
)
def test_unkeyable_layouts_are_named(module, message, key):
    with pytest.raises(KeyConversionError, match=message):
        to_keyed(module, key, (3, 8, 8))
