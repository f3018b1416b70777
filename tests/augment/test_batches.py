"""Training batches: the `augment:` list applied to plain and to protected frames."""

import pytest
import torch

from privcam.augment.batches import BatchAugmentation, create_augmentation
from privcam.privacy import Readout, shuffle


def test_batch_augmentation_draws_the_same_parameters_keyed_and_plain(key):
    """With the same seed, keyed training batches are the protected versions of the plain ones."""
    readout = Readout(mode="paper")
    augs = [
        create_augmentation("RandomCrop", size=[16, 16], padding=2),
        create_augmentation("RandomHorizontalFlip"),
        create_augmentation("RandomRotation", degrees=20.0, p=0.5),
    ]
    x, labels = torch.rand(8, 1, 16, 16), torch.arange(8)
    torch.manual_seed(3)
    plain, plain_labels = BatchAugmentation(augs)(x, labels)
    torch.manual_seed(3)
    keyed, keyed_labels = BatchAugmentation(augs, key, readout)(shuffle(x, readout.permutation(key, 16, 16)), labels)
    assert torch.equal(plain_labels, keyed_labels)
    assert (keyed - shuffle(plain, readout.permutation(key, 16, 16))).abs().max().item() <= 1e-5
    with pytest.raises(ValueError, match="masks is not supported"):
        BatchAugmentation(augs, key, readout)(keyed, torch.zeros(8, 16, 16, dtype=torch.long))


def test_masks_follow_the_frames_on_plain_batches():
    augs = [create_augmentation("RandomAffine", degrees=30.0, p=1.0), create_augmentation("RandomHorizontalFlip")]
    masks = torch.randint(0, 4, (4, 4, 4)).repeat_interleave(4, 1).repeat_interleave(4, 2)  # 4x4 blocks
    frames = masks.unsqueeze(1).float()
    out, out_masks = BatchAugmentation(augs)(frames, masks)
    assert out_masks.dtype == masks.dtype and set(out_masks.unique().tolist()) <= {0, 1, 2, 3}
    agree = (out[:, 0].round() == out_masks.float()).float().mean()
    assert agree > 0.8  # bilinear frames and nearest masks differ only along edges
