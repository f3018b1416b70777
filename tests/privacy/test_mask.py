"""The "masked" mode's value mask ("privcam-mask-v1"): golden vectors, the construction, exact removal,
and masked codes that are uniform whatever the scene."""

import hashlib
import multiprocessing

import numpy as np
import pytest
import torch
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from scipy import stats

from privcam.privacy import AdcFormat, Readout
from privcam.privacy import mask as mask_module
from privcam.privacy.mask import apply_mask, mask_rows, mask_tensor, mask_values, remove_mask, remove_mask_inputs

GOLDEN = [53176, 30895, 32470, 51210, 21035, 28176, 13177, 16387, 8197, 44591, 26752, 15152]


def test_golden_vector_and_construction(key):
    label = "readout/2x3/nonce/5"
    assert mask_values(key, label, 12, 16).tolist() == GOLDEN
    chacha_key = hashlib.shake_256(b"privcam-mask-v1\0" + key.secret + label.encode()).digest(32)
    stream = Cipher(algorithms.ChaCha20(chacha_key, bytes(16)), mode=None).encryptor().update(bytes(24))
    assert np.frombuffer(stream, "<u2").tolist() == GOLDEN
    assert mask_values(key, label, 12, 10).tolist() == [v % 1024 for v in GOLDEN]


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("count", [300_001, 2 * 4096 * 32 + 7])
def test_a_mask_made_in_parts_is_the_one_keystream(key, threads, count):
    label = "readout/big/nonce/9"
    chacha_key = hashlib.shake_256(b"privcam-mask-v1\0" + key.secret + label.encode()).digest(32)
    stream = Cipher(algorithms.ChaCha20(chacha_key, bytes(16)), mode=None).encryptor().update(bytes(2 * count))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        values = mask_values(key, label, count, 12)
    finally:
        torch.set_num_threads(before)
    assert values.shape == (count,) and np.array_equal(values, np.frombuffer(stream, "<u2") & 4095)
    other = "readout/big/nonce/10"
    try:
        torch.set_num_threads(threads)
        rows = mask_rows(key, [other, label, other], count, 12)  # a batch's frames, each in parts
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(rows[1], values) and np.array_equal(rows[0], rows[2])
    assert np.array_equal(rows[0], mask_values(key, other, count, 12))


_FORKED_KEY = []  # a key is never pickled: a forked child finds it here


def _mask_in_child(label: str, count: int) -> np.ndarray:
    return mask_values(_FORKED_KEY[0], label, count, 12)


def test_a_forked_process_makes_masks_in_parts_too(key, monkeypatch):
    """The parent's keystream threads do not exist in a forked child; the child must not wait on them."""
    monkeypatch.setattr(mask_module, "_parallel_parts", lambda: 2)  # in the child too, without OpenMP
    label, count = "readout/fork/nonce/1", 2 * 4096 * 32 + 7
    expected = mask_values(key, label, count, 12)  # the parent's pool now has threads
    _FORKED_KEY[:] = [key]
    with multiprocessing.get_context("fork").Pool(1) as pool:
        child = pool.apply_async(_mask_in_child, (label, count)).get(timeout=60)
    assert np.array_equal(child, expected)


def test_the_readout_mask_is_the_labelled_stream_in_keyed_order(key):
    readout = Readout(mode="masked", nonce=5)
    mask = readout.mask(key, 2, 3, 2, 10)
    assert mask.shape == (2, 3, 2) and mask.ravel().tolist() == mask_values(key, "readout/2x3/nonce/5", 12, 10).tolist()
    assert not np.array_equal(mask, Readout(mode="masked", nonce=6).mask(key, 2, 3, 2, 10))
    assert readout.mask(key, 2, 3, 2, 10) is mask and not mask.flags.writeable  # cached, so never changed
    assert not np.array_equal(readout.mask(key, 2, 3, 2, 12), mask)  # another bit depth, another entry
    with pytest.raises(ValueError, match="'per_frame' readout has no value mask"):
        Readout(mode="per_frame", nonce=5).mask(key, 2, 3, 2, 10)


def test_masking_is_undone_exactly_on_codes_and_on_network_inputs(key):
    adc = AdcFormat(bit_depth=12, black_level_dn=60)
    codes = np.random.default_rng(0).integers(0, 4096, (16, 20, 3), dtype=np.uint16)
    mask = Readout(mode="masked", nonce=1).mask(key, 16, 20, 3, 12)
    masked = apply_mask(codes, mask, 12)
    assert masked.max() < 4096 and np.array_equal(remove_mask(masked, mask, 12), codes)
    inputs = torch.from_numpy(adc.to_unit(masked.astype(np.float32))).permute(2, 0, 1)[None]
    expected = torch.from_numpy(adc.to_unit(codes.astype(np.float32))).permute(2, 0, 1)[None]
    assert torch.equal(remove_mask_inputs(inputs, mask_tensor(mask), adc), expected)


def test_masked_codes_are_uniform_whatever_the_scene(key):
    """A black frame and a white frame look the same once masked: uniform over the ADC's codes."""
    for value in (0, 1023):
        codes = np.full((64, 64, 1), value, np.uint16)
        masked = apply_mask(codes, Readout(mode="masked", nonce=value).mask(key, 64, 64, 1, 10), 10).ravel()
        counts = np.bincount(masked // 64, minlength=16)  # 16 bins of 64 codes
        assert stats.chisquare(counts).pvalue > 1e-3
