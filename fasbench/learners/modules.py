"""Pieces backbones and heads share: ``BackboneModule`` (the backbone contract as a torch module), channel
scaling for small configurations, the RF-Meta reference's conv/BN/ReLU unit and its initialisation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from fasbench.errors import FasbenchError
from fasbench.interfaces import Backbone, InputSpec

COLORS = ("rgb", "rgb_hsv")
DEPTH_REDUCTION = 8  # depth maps are input_size / 8 (32 x 32 at 256 px, as the RF-Meta reference)


class BackboneModule(nn.Module, Backbone):
    """``fasbench.interfaces.Backbone`` as a ``torch.nn.Module``: what every network learner builds on.

    A subclass sets ``input_spec``, ``feature_channels``, ``depth_channels`` and ``width`` in its
    constructor and returns a ``BackboneOutput`` from ``forward``.
    """

    input_spec: InputSpec
    feature_channels: int
    depth_channels: int
    width: float = 1.0


def check_width(width: float) -> float:
    """A backbone's width multiplier, a number in (0, 4]."""
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= 4:
        raise FasbenchError(f"backbone width must be a number in (0, 4], got {width!r}")
    return float(width)


def input_spec_for(input_size: int, color: str, minimum: int = DEPTH_REDUCTION) -> InputSpec:
    """The input a backbone declares: square ``input_size`` (a multiple of 8), ``color`` encoding."""
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < minimum or input_size % 8:
        raise FasbenchError(f"backbone input_size must be a multiple of 8 and at least {minimum}, got {input_size!r}")
    if color not in COLORS:
        raise FasbenchError(f"backbone color must be one of {', '.join(COLORS)}, got {color!r}")
    return InputSpec(size=input_size, color=color, depth_size=input_size // DEPTH_REDUCTION)


def scaled(channels: int, width: float) -> int:
    """``channels`` times the width multiplier, at least one channel."""
    return max(1, round(channels * width))


def conv_bn_relu(in_channels: int, out_channels: int, bn_momentum: float = 0.1) -> list[nn.Module]:
    """The reference's unit: 3x3 convolution (stride 1, padding 1, with bias), BatchNorm, ReLU."""
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=True),
        nn.BatchNorm2d(out_channels, momentum=bn_momentum),
        nn.ReLU(inplace=True),
    ]


def reference_init_(module: nn.Module) -> nn.Module:
    """The RF-Meta reference's ``xavier`` initialisation (misc/utils.py ``weights_init_xavier``), in place.

    Convolutions: Xavier-normal weights (gain 1), biases keep PyTorch's default. Linear layers:
    Xavier-normal weights, zero biases. BatchNorm: zero biases and weights drawn uniformly from
    [0.02, 1]: the reference calls ``uniform(weight, 1.0, 0.02)``, which PyTorch 0.4 (its version)
    evaluated as ``1.0 + (0.02 - 1.0) * U(0, 1)``; current PyTorch refuses a reversed range.
    """
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.xavier_normal_(layer.weight, gain=1.0)
        elif isinstance(layer, nn.Linear):
            nn.init.xavier_normal_(layer.weight, gain=1.0)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.uniform_(layer.weight, 0.02, 1.0)
            nn.init.zeros_(layer.bias)
    return module


def build_backbone(config: Mapping[str, Any], plugins: Any = None) -> BackboneModule:
    """The backbone ``config`` names (``{"type": "rfmeta_cnn", "width": 0.25, ...}``), built through ``plugins``
    (the plugin registry the runner hands the learner; the installed plugins when None) and checked to be a
    ``BackboneModule``."""
    if plugins is None:
        from fasbench.plugins import installed_plugins

        plugins = installed_plugins()
    if not isinstance(config, Mapping) or "type" not in config:
        raise FasbenchError(f"a backbone config must be a mapping with a 'type' key, got {config!r}")
    backbone = plugins.build("backbones", config)
    if not isinstance(backbone, BackboneModule):
        raise FasbenchError(
            f"backbone {config['type']!r} is a {type(backbone).__name__}, not a torch module declaring its input, "
            "channels and width (subclass fasbench.learners.BackboneModule)"
        )
    return backbone
