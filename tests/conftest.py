import pytest
import torch

from privcam.privacy import Key

# A fixed test key: 00 01 02 ... 1f. Never a real secret.
TEST_KEY_HEX = bytes(range(32)).hex()


@pytest.fixture
def key() -> Key:
    return Key.from_hex(TEST_KEY_HEX)


@pytest.fixture
def other_key() -> Key:
    return Key(bytes(range(1, 33)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def randomize_batchnorm(model: torch.nn.Module, generator: torch.Generator | None = None) -> torch.nn.Module:
    """Give every BatchNorm random running statistics and affine parameters (eval-mode tests)."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                module.running_mean.uniform_(-0.2, 0.2, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.uniform_(-0.2, 0.2, generator=generator)
    return model


def keyed_and_plain_outputs(keyed, model, x):
    """(keyed output, plain output in the keyed output's order) for plain frames x (B, C, H, W)."""
    from privcam.privacy import shuffle

    with torch.no_grad():
        reference = model(x)
        out = keyed(shuffle(x, keyed.input_permutation))
    if keyed.output_permutation is not None:
        reference = shuffle(reference, keyed.output_permutation)
    return out, reference


def protect(codes: torch.Tensor, key: Key, stream, nonces, adc):
    """What a camera sends for integer codes (B, C, H, W): each frame shuffled in its readout order
    (and masked in the "masked" mode), as a KeyedFrames batch of network inputs. Returns (batch,
    the plain network inputs of the same codes)."""
    from privcam.privacy import KeyedFrames, shuffle
    from privcam.privacy.mask import mask_tensor

    frames = []
    for i, frame in enumerate(codes):
        readout = stream if nonces is None else stream.for_frame(nonces[i])
        keyed = shuffle(frame, readout.permutation(key, *frame.shape[-2:]))
        if readout.masked:
            mask = mask_tensor(readout.mask(key, *frame.shape[-2:], frame.shape[0], adc.bit_depth))
            keyed = torch.remainder(keyed + mask, 2**adc.bit_depth)
        frames.append(adc.to_unit(keyed))
    batch = KeyedFrames(torch.stack(frames).float(), stream, nonces, key.fingerprint, adc)
    return batch, adc.to_unit(codes).float()
