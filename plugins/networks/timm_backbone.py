"""``timm:<name>``: any timm model as a feature extractor (``features_only``), e.g. ``timm:resnet18``.

The last feature stage feeds the classifier head; the last three stages, resized to input / 8 and
concatenated, feed the depth head (the layout of ``rfmeta_cnn``). Images in [0, 1] are normalised with
the model's own mean and standard deviation (each group of three channels for ``rgb_hsv``).

Pretrained weights come only from a local file the user names (``pretrained_file``): nothing is
downloaded at run time.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from fasbench.errors import FasbenchError, UnknownNameError
from fasbench.interfaces import BackboneOutput
from fasbench.learners import BackboneModule, input_spec_for

DEPTH_STAGES = 3
MINIMUM_INPUT = 32


class TimmBackbone(BackboneModule):
    """A timm model's feature stages as a backbone (``timm:<model name>``; weights from a local file only)."""

    def __init__(
        self,
        variant: str,
        *,
        input_size: int = 256,
        color: str = "rgb",
        pretrained_file: str | None = None,
        width: float = 1.0,
    ) -> None:
        import timm

        super().__init__()
        if width != 1.0:
            raise FasbenchError(
                f"timm:{variant} has no width multiplier (got backbone.width={width!r}); set backbone.width=1.0 "
                "(a CPU preset such as cpu_demo narrows rfmeta_cnn only: add --preset none or override it)"
            )
        if variant not in timm.list_models():
            raise UnknownNameError("timm model", variant, timm.list_models(), hint="see timm.list_models()")
        self.input_spec = input_spec_for(input_size, color, minimum=MINIMUM_INPUT)
        options = {"features_only": True, "in_chans": self.input_spec.channels}
        if pretrained_file is not None:
            path = Path(pretrained_file).expanduser()
            if not path.is_file():
                raise FasbenchError(
                    f"pretrained_file {str(path)!r} for timm:{variant} does not exist; fasbench never downloads "
                    "weights at run time: download them once (e.g. the model's .safetensors or .pth) and give its path"
                )
            options.update(pretrained=True, pretrained_cfg_overlay={"file": str(path)})
        try:
            self.body = timm.create_model(variant, **options)
        except (RuntimeError, ValueError, KeyError) as error:
            raise FasbenchError(f"cannot build timm:{variant} with {options}: {error}") from error
        channels = self.body.feature_info.channels()
        self.depth_stages = list(range(max(0, len(channels) - DEPTH_STAGES), len(channels)))
        self.feature_channels = channels[-1]
        self.depth_channels = sum(channels[i] for i in self.depth_stages)
        config = self.body.pretrained_cfg
        repeats = self.input_spec.channels // 3
        mean = torch.tensor(config.get("mean", (0.5, 0.5, 0.5)), dtype=torch.float32).repeat(repeats)
        std = torch.tensor(config.get("std", (0.5, 0.5, 0.5)), dtype=torch.float32).repeat(repeats)
        self.register_buffer("mean", mean.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, -1, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> BackboneOutput:
        stages = self.body((images - self.mean) / self.std)
        size = (self.input_spec.depth_size, self.input_spec.depth_size)
        multi_scale = torch.cat([F.adaptive_avg_pool2d(stages[i], size) for i in self.depth_stages], dim=1)
        return BackboneOutput(features=stages[-1], depth_features=multi_scale)
