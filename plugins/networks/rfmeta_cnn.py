"""``rfmeta_cnn``: the feature extractor of RF-Meta (Shao, Lan, Yuen, AAAI 2020).

Facts from the reference (rshaojimmy/AAAI2020-RFMetaFAS, models/DGFANet.py ``FeatExtractor``): a 3x3
conv stem to 64 channels (conv with bias, BatchNorm momentum 0.1, ReLU), then three identical blocks of
three 3x3 convs (128, 196, 128 channels, each with BatchNorm and ReLU) ending in a 2x max-pool. The
three block outputs, average-pooled to 32 x 32 and concatenated (384 channels), feed the depth
estimator; the last block's output (128 channels, 32 x 32 at 256 px) feeds the meta learner.

Where we differ, deliberately: the multi-scale outputs are pooled to the last block's size (input / 8)
rather than a fixed 32, identical at the reference's 256 px and consistent at smaller inputs; a
``width`` multiplier scales every channel count so small CPU configurations run the same code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fasbench.interfaces import BackboneOutput
from fasbench.learners import BackboneModule, check_width, conv_bn_relu, input_spec_for, reference_init_, scaled

STEM_CHANNELS = 64
BLOCK_CHANNELS = (128, 196, 128)


class DownBlock(nn.Sequential):
    """Three conv/BN/ReLU units, then a 2x max-pool (the reference's ``Downconv``)."""

    def __init__(self, in_channels: int, channels: tuple[int, int, int]) -> None:
        first, second, third = channels
        super().__init__(
            *conv_bn_relu(in_channels, first),
            *conv_bn_relu(first, second),
            *conv_bn_relu(second, third),
            nn.MaxPool2d(2),
        )


class RFMetaCNN(BackboneModule):
    """RF-Meta's feature extractor: conv stem + three conv blocks; multi-scale features for the depth head."""

    def __init__(self, *, width: float = 1.0, input_size: int = 256, color: str = "rgb_hsv") -> None:
        super().__init__()
        self.width = check_width(width)
        self.input_spec = input_spec_for(input_size, color)
        stem = scaled(STEM_CHANNELS, self.width)
        block = tuple(scaled(c, self.width) for c in BLOCK_CHANNELS)
        self.stem = nn.Sequential(*conv_bn_relu(self.input_spec.channels, stem))
        self.block1 = DownBlock(stem, block)
        self.block2 = DownBlock(block[-1], block)
        self.block3 = DownBlock(block[-1], block)
        self.feature_channels = block[-1]
        self.depth_channels = 3 * block[-1]
        reference_init_(self)

    def forward(self, images: torch.Tensor) -> BackboneOutput:
        out1 = self.block1(self.stem(images))
        out2 = self.block2(out1)
        out3 = self.block3(out2)
        size = out3.shape[-2:]
        multi_scale = torch.cat([F.adaptive_avg_pool2d(out1, size), F.adaptive_avg_pool2d(out2, size), out3], dim=1)
        return BackboneOutput(features=out3, depth_features=multi_scale)
