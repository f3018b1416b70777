"""torchvision's segmentation models (FCN, DeepLabV3, LRASPP) keyed: the dense output, revealed with the
output permutation, equals the plain model's."""

import pytest
import torch
from torchvision.models import segmentation

from privcam.nets import to_keyed
from privcam.privacy import shuffle, unshuffle


@pytest.mark.parametrize(
    "name", ["fcn_resnet50", "deeplabv3_resnet50", "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"]
)
def test_torchvision_segmentation_heads_convert(name, key):
    model = getattr(segmentation, name)(weights=None, weights_backbone=None, num_classes=3).eval()
    keyed = to_keyed(model, key, (3, 64, 64))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        reference = model(x)["out"]
        revealed = unshuffle(keyed(shuffle(x, keyed.input_permutation))["out"], keyed.output_permutation)
    assert (revealed - reference).abs().max() <= 1e-4 * max(1.0, float(reference.abs().max()))
