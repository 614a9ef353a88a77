"""The heads every learner puts on a backbone: a depth estimator and a one-logit classifier.

Facts from the RF-Meta reference (models/DGFANet.py): ``DepthEstmator`` is three 3x3 conv/BN/ReLU
units 384 -> 128 -> 64 -> 1 (BatchNorm and ReLU on the one-channel output too, so predicted depth is
>= 0). ``FeatEmbedder``, the paper's meta learner, is three conv blocks to 128, 256 and 512 channels
(3x3 conv with bias, BatchNorm, ReLU; 2x max-pool after the first two), global average pooling and a
linear layer to one logit; its BatchNorm momentum is a setting (``--bn_momentum``, 1 in main.py).

Where we differ: max-pooling uses ``ceil_mode`` (identical on the even sizes of the reference, and
defined on the 1-pixel maps of tiny configurations); ``width`` scales the channel counts.
"""

from __future__ import annotations

import torch
from torch import nn

from fasbench.learners.modules import BackboneModule, conv_bn_relu, reference_init_, scaled

DEPTH_CHANNELS = (128, 64)
CLASSIFIER_CHANNELS = (128, 256, 512)


class DepthHead(nn.Sequential):
    """Depth estimator: multi-scale backbone features (B x D x d x d) -> depth map (B x 1 x d x d), >= 0."""

    def __init__(self, in_channels: int, *, width: float = 1.0) -> None:
        first, second = (scaled(c, width) for c in DEPTH_CHANNELS)
        super().__init__(*conv_bn_relu(in_channels, first), *conv_bn_relu(first, second), *conv_bn_relu(second, 1))
        reference_init_(self)


class ClassifierHead(nn.Module):
    """One-logit classifier (the reference's ``FeatEmbedder``, RF-Meta's meta learner): B x C x h x w -> B.

    Its parameters are what RF-Meta adapts in the inner step (through ``torch.func.functional_call``),
    and the classifier every baseline shares.
    """

    def __init__(self, in_channels: int, *, width: float = 1.0, bn_momentum: float = 0.1, outputs: int = 1) -> None:
        super().__init__()
        self.outputs = outputs
        first, second, third = (scaled(c, width) for c in CLASSIFIER_CHANNELS)
        self.features = nn.Sequential(
            *conv_bn_relu(in_channels, first, bn_momentum),
            nn.MaxPool2d(2, ceil_mode=True),
            *conv_bn_relu(first, second, bn_momentum),
            nn.MaxPool2d(2, ceil_mode=True),
            *conv_bn_relu(second, third, bn_momentum),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.fc = nn.Linear(third, outputs)
        reference_init_(self)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """B logits (one output) or B x outputs."""
        logits = self.fc(self.features(features))
        return logits.squeeze(1) if self.outputs == 1 else logits


def build_heads(
    backbone: BackboneModule, *, classifier_bn_momentum: float = 0.1, outputs: int = 1
) -> tuple[DepthHead, ClassifierHead]:
    """A depth head and a classifier head (``outputs`` logits) sized for ``backbone`` (channels and width)."""
    depth = DepthHead(backbone.depth_channels, width=backbone.width)
    classifier = ClassifierHead(
        backbone.feature_channels, width=backbone.width, bn_momentum=classifier_bn_momentum, outputs=outputs
    )
    return depth, classifier
