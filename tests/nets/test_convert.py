"""Whole networks converted with to_keyed, and what the converter refuses."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from privcam.nets import KeyConversionError, create_model, list_models, load_keyed, to_keyed
from privcam.privacy import AdcFormat, Key, KeyMismatchError, Readout, ReadoutError, shuffle, unshuffle

from conftest import keyed_and_plain_outputs, protect, randomize_batchnorm

ARCHITECTURES = [
    ("vgg16_bn_cifar", {}, (3, 32, 32)),
    ("resnet18", {"num_classes": 10}, (3, 64, 64)),
    ("resnet18", {"num_classes": 10}, (3, 32, 96)),
    ("resnet50", {"num_classes": 10}, (3, 64, 64)),
    ("mobilenet_v2", {}, (3, 32, 32)),
    ("unet_small", {}, (3, 32, 32)),
    ("unet_small", {"num_classes": 3}, (3, 24, 40)),
]


def plain_model(name, kwargs, input_size):
    """Random weights, random BN statistics, eval mode, logits scaled to order 1."""
    model = randomize_batchnorm(create_model(name, **kwargs)).eval()
    last = [m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)][-1]
    with torch.no_grad():
        scale = model(torch.randn(4, *input_size)).abs().max()
        last.weight /= scale
        if last.bias is not None:
            last.bias /= scale
    return model


@pytest.mark.parametrize("backend", ["gather", "deform"])
@pytest.mark.parametrize(("name", "kwargs", "input_size"), ARCHITECTURES)
def test_architectures_match_plain(name, kwargs, input_size, backend, key):
    model = plain_model(name, kwargs, input_size)
    keyed = to_keyed(model, key, input_size, backend=backend)
    out, reference = keyed_and_plain_outputs(keyed, model, torch.randn(3, *input_size))
    assert 0.3 < reference.abs().max() <= 1.5  # logits of order 1
    assert (out - reference).abs().max() <= 1e-4
    assert (keyed.output_permutation is not None) == name.startswith("unet")


def test_backends_agree_and_batch_size_does_not_matter(key):
    model = plain_model("resnet18", {"num_classes": 10}, (3, 32, 32))
    gather = to_keyed(model, key, (3, 32, 32), backend="gather")
    deform = to_keyed(model, key, (3, 32, 32), backend="deform")
    frames = shuffle(torch.randn(5, 3, 32, 32), gather.input_permutation)
    with torch.no_grad():
        batched = gather(frames)
        assert (batched - deform(frames)).abs().max() <= 1e-4
        for i in range(5):
            assert (gather(frames[i : i + 1]) - batched[i : i + 1]).abs().max() <= 1e-5


def test_batchnorm_folding_keeps_outputs(key):
    model = plain_model("vgg16_bn_cifar", {}, (3, 32, 32))
    keyed = to_keyed(model, key, (3, 32, 32), fold_batchnorm=True)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in keyed.modules())
    out, reference = keyed_and_plain_outputs(keyed, model, torch.randn(2, 3, 32, 32))
    assert (out - reference).abs().max() <= 1e-4
    with pytest.raises(ValueError, match="eval mode"):
        to_keyed(model.train(), key, (3, 32, 32), fold_batchnorm=True)


def test_input_permutation_follows_readout(key):
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1))
    for readout in [
        Readout(mode="paper"),
        Readout(unit="quad", mode="paper"),
        Readout(unit="block", block=4, mode="per_frame", nonce=5),
    ]:
        keyed = to_keyed(model, key, (1, 16, 16), readout=readout)
        assert keyed.readout == readout
        assert np.array_equal(keyed.input_permutation, readout.permutation(key, 16, 16))
        out, reference = keyed_and_plain_outputs(keyed, model, torch.randn(2, 1, 16, 16))
        torch.testing.assert_close(out, reference)
    with pytest.raises(ReadoutError, match="needs the frame's nonce"):
        to_keyed(model, key, (1, 16, 16), readout=Readout(mode="per_frame"))
    with pytest.raises(ReadoutError, match="divisible by 2"):
        to_keyed(model, key, (1, 15, 16), readout=Readout(unit="quad", mode="paper"))
    with pytest.raises(TypeError, match="privcam Readout"):
        to_keyed(model, key, (1, 16, 16), readout="quad")


def test_conversion_leaves_the_model_alone(key):
    model = create_model("resnet18", num_classes=10).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    keyed = to_keyed(model, key, (3, 32, 32))
    assert model.training and keyed.training
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_rebuilt_from_plain_weights_and_key_is_identical(key):
    model = plain_model("unet_small", {}, (3, 16, 16))
    a, b = to_keyed(model, key, (3, 16, 16)), to_keyed(model, key, (3, 16, 16))
    assert np.array_equal(a.output_permutation, b.output_permutation)
    for (name, x), (_, y) in zip(a.named_buffers(), b.named_buffers(), strict=True):
        assert torch.equal(x, y), name
    frames = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(a(frames), b(frames))


def diverse_classifier() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 8 * 8, 10),
    ).eval()


def smooth_images(n: int, size: int = 16) -> torch.Tensor:
    """Images with spatial structure (upsampled noise), so that order matters to the classifier."""
    return F.interpolate(torch.randn(n, 1, 4, 4), size=(size, size), mode="bilinear", align_corners=False)


def test_wrong_key_agrees_no_more_than_chance(key, other_key):
    model = diverse_classifier()
    keyed = to_keyed(model, key, (1, 16, 16))
    images = smooth_images(2000)
    with torch.no_grad():
        plain = model(images).argmax(1)
        right = keyed(shuffle(images, keyed.input_permutation)).argmax(1)
        wrong = keyed(shuffle(images, Readout(mode="paper").permutation(other_key, 16, 16))).argmax(1)
    assert torch.equal(right, plain)
    p = torch.bincount(plain, minlength=10).double() / len(plain)
    q = torch.bincount(wrong, minlength=10).double() / len(wrong)
    chance = float((p * q).sum())  # agreement expected if the predictions were independent
    agreement = float((wrong == plain).double().mean())
    margin = 4 * (chance * (1 - chance) / len(plain)) ** 0.5
    assert len(torch.unique(plain)) >= 4, "the test classifier must predict several classes"
    assert agreement <= chance + margin, (agreement, chance)


def test_flatten_linear_is_folded(key):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 3, 3, stride=2, padding=1)
            self.fc = nn.Linear(3 * 5 * 4, 6)
            self.fc2 = nn.Linear(6, 2)

        def forward(self, x):
            y = F.relu(self.conv(x))
            y = F.dropout(y.view(y.size(0), -1), 0.5, self.training)
            return self.fc2(torch.relu(self.fc(y)))

    model = Net().eval()
    keyed = to_keyed(model, key, (2, 10, 8))
    out, reference = keyed_and_plain_outputs(keyed, model, torch.randn(4, 2, 10, 8))
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=1e-5)
    assert not torch.equal(keyed.graph_module.fc.weight, model.fc.weight)


def test_residual_on_the_input_and_channel_ops(key):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)
            self.gate = nn.Conv2d(4, 8, 1)

        def forward(self, x):
            y = x + self.conv(x)
            s = torch.sigmoid(y.mean((2, 3), keepdim=True))
            z = torch.cat([y * s, y[:, :2], x[:, 2:]], dim=1)
            return self.gate(y) + z

    model = Net().eval()
    keyed = to_keyed(model, key, (4, 12, 12))
    assert np.array_equal(keyed.output_permutation, keyed.input_permutation)
    out, reference = keyed_and_plain_outputs(keyed, model, torch.randn(2, 4, 12, 12))
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=1e-5)


class _Roll(nn.Module):
    def forward(self, x):
        return torch.roll(x, 1, dims=3)


class _ComputedBias(nn.Module):
    def forward(self, x):
        return x + torch.linspace(0, 1, x.shape[-1])  # computed at run time, so not permuted at conversion


class _RowMean(nn.Module):
    def forward(self, x):
        return x.mean(2)


class _SharedConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return self.conv(self.conv(x))


@pytest.mark.parametrize(
    ("module", "message"),
    [
        (_Roll(), r"node 'roll', function roll: privcam has no keyed form"),
        (_ComputedBias(), r"node 'add'.*'linspace' of shape \(8,\), which varies over space"),
        (_RowMean(), r"node 'mean'.*does not cover both spatial dims"),
        (nn.Sequential(nn.Linear(8, 4)), r"node '_0', module '0' \(Linear\).*width axis"),
        (_SharedConv(), r"node 'conv'.*called at several places"),
        (nn.Sequential(nn.Upsample(scale_factor=2, mode="bicubic")), r"mode 'bicubic' has no keyed form"),
        (nn.Sequential(nn.MaxPool2d(2, return_indices=True)), r"return_indices"),
    ],
)
def test_unkeyable_ops_are_named(module, message, key):
    with pytest.raises(KeyConversionError, match=message):
        to_keyed(module, key, (3, 8, 8))


def test_bad_arguments(key):
    model = nn.Sequential(nn.Conv2d(3, 3, 3))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        to_keyed(model, key, (8, 8))
    with pytest.raises(ValueError, match="backend must be one of"):
        to_keyed(model, key, (3, 8, 8), backend="fast")
    with pytest.raises(TypeError, match="privcam Key"):
        to_keyed(model, "secret", (3, 8, 8))
    with pytest.raises(KeyConversionError, match=r"does not run on an input of size \(1, 8, 8\)"):
        to_keyed(model, key, (1, 8, 8))


def test_forward_checks_its_input(key):
    keyed = to_keyed(nn.Sequential(nn.Conv2d(3, 3, 3)), key, (3, 8, 8))
    with pytest.raises(ValueError, match=r"expected keyed frames of shape \(B, 3, 8, 8\), got \(1, 3, 8, 9\)"):
        keyed(torch.zeros(1, 3, 8, 9))
    with pytest.raises(TypeError, match="floating point"):
        keyed(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


def test_save_load_round_trip(tmp_path, key, other_key):
    model = plain_model("unet_small", {}, (3, 16, 16))
    keyed = to_keyed(model, key, (3, 16, 16), readout=Readout(unit="quad", mode="paper"))
    with torch.no_grad():
        for parameter in keyed.parameters():  # as if trained further in keyed form
            parameter.add_(0.01)
    path = keyed.save(tmp_path / "unet.keyed.pt")
    assert key.secret.hex() not in path.read_bytes().hex()
    loaded = load_keyed(path, create_model("unet_small"), key)
    assert loaded.readout == Readout(unit="quad", mode="paper") and loaded.key_fingerprint == key.fingerprint
    frames = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(frames), keyed.eval()(frames))
    with pytest.raises(KeyMismatchError, match=f"fingerprint {key.fingerprint}, not {other_key.fingerprint}"):
        load_keyed(path, create_model("unet_small"), other_key)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"corrupt\.pt is not a readable privcam-keyed-model/3 file"):
        load_keyed(corrupt, create_model("unet_small"), key)


def test_dense_output_reveals_with_the_key(key):
    model = plain_model("unet_small", {}, (3, 16, 16))
    keyed = to_keyed(model, key, (3, 16, 16))
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        revealed = unshuffle(keyed(shuffle(x, keyed.input_permutation)), keyed.output_permutation)
        torch.testing.assert_close(revealed, model(x), atol=1e-5, rtol=1e-5)


def test_zoo_registry():
    assert {"vgg16_bn_cifar", "resnet18", "resnet50", "mobilenet_v2", "unet_small"} <= set(list_models())
    with pytest.raises(ValueError, match="did you mean 'resnet18'"):
        create_model("resnet81")


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
def test_deform_backend_refuses_asymmetric_padding(key):
    model = nn.Sequential(nn.Conv2d(2, 2, 4, padding="same"))
    with pytest.raises(KeyConversionError, match="symmetric padding; use backend='gather'"):
        to_keyed(model, key, (2, 8, 8), backend="deform")
    keyed = to_keyed(model, key, (2, 8, 8), backend="gather")
    out, reference = keyed_and_plain_outputs(keyed, model.eval(), torch.randn(1, 2, 8, 8))
    torch.testing.assert_close(out, reference)


def test_untraceable_model_is_a_clear_error(key):
    class DataDependent(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(KeyConversionError, match=r"torch\.fx could not trace DataDependent"):
        to_keyed(DataDependent(), key, (1, 4, 4))


@pytest.mark.parametrize("backend", ["gather", "deform"])
@pytest.mark.parametrize("mode", ["per_frame", "masked"])
def test_a_batch_may_mix_nonces_and_masks(backend, mode, key):
    """Frames in different orders (and masks) run in one batch: each is unmasked and moved into the
    network's own order, and no table changes."""
    model = plain_model("resnet18", {"num_classes": 10}, (3, 32, 32))
    adc = AdcFormat(bit_depth=10, black_level_dn=64)
    stream = Readout(mode=mode)
    keyed = to_keyed(model, key, (3, 32, 32), readout=stream.for_frame(1), backend=backend, adc=adc)
    tables = {name: b.clone() for name, b in keyed.named_buffers()}
    codes = torch.randint(0, 1024, (5, 3, 32, 32)).float()
    batch, plain = protect(codes, key, stream, [3, 5, 3, 9, 1], adc)
    with torch.no_grad():
        out, reference = keyed(batch), model(plain)
    assert (out - reference).abs().max() <= 1e-4 * max(1.0, float(reference.abs().max()))
    assert all(torch.equal(b, tables[name]) for name, b in keyed.named_buffers())
    with torch.no_grad():  # a tensor in the network's own order (and mask) needs no KeyedFrames
        assert (keyed(batch.frames[4:5]) - reference[4:5]).abs().max() <= 1e-4 * max(1.0, float(reference.abs().max()))


def test_a_network_that_reuses_the_frame_order_reads_per_frame_batches(key):
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 3, padding=1)

        def forward(self, x):
            return (x + self.conv(x)).mean((2, 3))

    model = Residual().eval()
    adc = AdcFormat(bit_depth=8, black_level_dn=0)
    keyed = to_keyed(model, key, (2, 8, 8), readout=Readout(mode="masked", nonce=0), adc=adc)
    batch, plain = protect(torch.randint(0, 256, (3, 2, 8, 8)).float(), key, Readout(mode="masked"), [4, 5, 6], adc)
    with torch.no_grad():
        torch.testing.assert_close(keyed(batch), model(plain))


def test_frames_of_another_key_mode_unit_or_size_are_refused(key, other_key):
    model = plain_model("vgg16_bn_cifar", {}, (3, 32, 32))
    adc = AdcFormat(bit_depth=12, black_level_dn=60)
    keyed = to_keyed(model, key, (3, 32, 32), readout=Readout(mode="masked", nonce=0), adc=adc)
    codes = torch.randint(0, 4096, (2, 3, 32, 32)).float()
    with pytest.raises(
        KeyMismatchError, match=f"made with the key of fingerprint {other_key.fingerprint}, not {key.fingerprint}"
    ):
        keyed(protect(codes, other_key, Readout(mode="masked"), [1, 2], adc)[0])
    with pytest.raises(
        ReadoutError,
        match="these frames are in pixel readout, paper mode; this network reads frames in pixel readout, masked mode",
    ):
        keyed(protect(codes, key, Readout(mode="paper"), None, adc)[0])
    with pytest.raises(ReadoutError, match="quad readout"):
        keyed(protect(codes, key, Readout(unit="quad", mode="masked"), [1, 2], adc)[0])
    with pytest.raises(ValueError, match=r"expected frames of shape \(B, 3, 32, 32\)"):
        keyed(protect(codes[..., :16, :16], key, Readout(mode="masked"), [1, 2], adc)[0])
    with pytest.raises(ValueError, match="needs the frames' code format"):
        to_keyed(model, key, (3, 32, 32), readout=Readout(mode="masked", nonce=0))
    with pytest.raises(ReadoutError, match="'masked' readout needs the frame's nonce"):
        to_keyed(model, key, (3, 32, 32), readout=Readout(mode="masked"), adc=adc)


@pytest.mark.parametrize("backend", ["gather", "deform"])
def test_an_empty_batch_gives_an_empty_output_as_the_plain_model_does(backend):
    key = Key.generate()
    for arch, kwargs, size in [("small_cnn", {"num_classes": 10, "in_channels": 1}, (1, 28, 28)),
                               ("unet_small", {"num_classes": 3}, (3, 32, 32))]:  # fmt: skip
        model = create_model(arch, **kwargs).eval()
        keyed = to_keyed(model, key, size, backend=backend)
        empty = torch.zeros(0, *size)
        assert keyed(empty).shape == model(empty).shape
