"""``timm:<name>``: any timm model as a feature extractor (``features_only``), e.g. ``timm:resnet18``.

The last feature stage feeds the classifier head; the last three stages, resized to input / 8 and
concatenated, feed the depth head (the layout of ``rfmeta_cnn``); ``stages`` gives every stage to learners
that build their own necks (MetaPattern's FPN). Images in [0, 1] are normalised with the model's own mean
and standard deviation (each group of three channels for ``rgb_hsv``) unless ``normalize`` is false.

Weights (``pretrained``): ``None`` (from scratch), a local file (a state dict, ``.pth`` read with
``weights_only=True`` or ``.safetensors``; its SHA-256 joins the run's identity), or ``"timm"`` (timm's own
download, where a model hub is reachable; offline, the error names the file to fetch). ``width`` scales the
channels of a ResNet-family model (stem and the four stages: the same depth and structure, narrower), so
small CPU configurations run the method's own network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from fasbench.errors import FasbenchError, UnknownNameError
from fasbench.interfaces import BackboneOutput
from fasbench.learners import BackboneModule, check_width, input_spec_for, scaled

DEPTH_STAGES = 3
MINIMUM_INPUT = 32
RESNET_CHANNELS = (64, 128, 256, 512)
HEAD_PREFIXES = ("fc.", "classifier.", "head.", "head_drop.", "last_linear.")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``path`` (``.safetensors``, or a torch file loaded with ``weights_only=True``), unwrapped
    from the usual ``{"state_dict": ...}`` / ``{"model": ...}`` containers."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise FasbenchError(
            f"pretrained weights {path} cannot be read as a state dict with weights_only=True ({error}); fasbench "
            "loads only tensors, never pickled objects: save them with torch.save(model.state_dict(), PATH)"
        ) from error
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise FasbenchError(f"pretrained weights {path} hold a {type(state).__name__}, not a state dict")
    return {key.removeprefix("module."): value for key, value in state.items()}


class TimmBackbone(BackboneModule):
    """A timm model's feature stages as a backbone (``timm:<model name>``; weights from a local file or timm)."""

    def __init__(
        self,
        variant: str,
        *,
        input_size: int = 256,
        color: str = "rgb",
        pretrained: str | None = None,
        width: float = 1.0,
        normalize: bool = True,
    ) -> None:
        import timm

        super().__init__()
        if variant not in timm.list_models():
            raise UnknownNameError("timm model", variant, timm.list_models(), hint="see timm.list_models()")
        self.variant = variant
        self.width = check_width(width)
        self.normalize = bool(normalize)
        self.input_spec = input_spec_for(input_size, color, minimum=MINIMUM_INPUT)
        options: dict[str, Any] = {"features_only": True, "in_chans": self.input_spec.channels}
        if self.width != 1.0:
            channels = tuple(scaled(c, self.width) for c in RESNET_CHANNELS)
            options.update(channels=channels, stem_width=scaled(64, self.width))
        if pretrained == "timm":
            options["pretrained"] = True
        try:
            self.body = timm.create_model(variant, **options)
        except TypeError as error:
            raise FasbenchError(
                f"timm:{variant} has no width multiplier (backbone.width={width!r}: only ResNet-family models scale "
                "their channels); set backbone.width=1.0"
            ) from error
        except (RuntimeError, ValueError, KeyError, OSError) as error:
            if pretrained == "timm":
                raise FasbenchError(
                    f"cannot download timm:{variant}'s pretrained weights ({type(error).__name__}: {error}). Offline, "
                    f"fetch them once where a hub is reachable (timm.create_model({variant!r}, pretrained=True); "
                    "torch.save(model.state_dict(), 'weights.pth')), copy the file here and pass "
                    "--cfg-options backbone.pretrained=/path/to/weights.pth"
                ) from error
            raise FasbenchError(f"cannot build timm:{variant} with {options}: {error}") from error
        self.weights = "timm" if pretrained == "timm" else None
        if pretrained not in (None, "timm"):
            self.weights = self._load(Path(pretrained).expanduser())
        channels = self.body.feature_info.channels()
        self.stage_channels = list(channels)
        self.depth_stages = list(range(max(0, len(channels) - DEPTH_STAGES), len(channels)))
        self.feature_channels = channels[-1]
        self.depth_channels = sum(channels[i] for i in self.depth_stages)
        config = self.body.pretrained_cfg
        repeats = self.input_spec.channels // 3
        mean = torch.tensor(config.get("mean", (0.5, 0.5, 0.5)), dtype=torch.float32).repeat(repeats)
        std = torch.tensor(config.get("std", (0.5, 0.5, 0.5)), dtype=torch.float32).repeat(repeats)
        self.register_buffer("mean", mean.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, -1, 1, 1), persistent=False)

    def _load(self, path: Path) -> str:
        """Load a local state dict into the body (head weights dropped, a 3-channel stem adapted to the input's
        channels as timm does); refuse one that does not match. Returns the file's SHA-256."""
        from timm.models import adapt_input_conv

        if not path.is_file():
            raise FasbenchError(
                f"pretrained weights {path} for timm:{self.variant} do not exist; fasbench never downloads weights "
                "at run time: fetch them once (e.g. timm.create_model(NAME, pretrained=True) where a hub is "
                "reachable, then torch.save(model.state_dict(), PATH)) and give that file's path"
            )
        state = {k: v for k, v in read_state_dict(path).items() if not k.startswith(HEAD_PREFIXES)}
        own = self.body.state_dict()
        for key, value in list(state.items()):
            if key in own and value.ndim == 4 and own[key].ndim == 4 and value.shape[1] != own[key].shape[1]:
                state[key] = adapt_input_conv(own[key].shape[1], value)
        mismatched = [k for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
        missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
        unexpected = [k for k in state if k not in own]
        if mismatched or missing or unexpected:
            first = (mismatched or missing or unexpected)[0]
            raise FasbenchError(
                f"pretrained weights {path} do not fit timm:{self.variant} (width {self.width}): {len(missing)} "
                f"missing, {len(unexpected)} unknown, {len(mismatched)} of another shape (e.g. {first!r}); they must "
                "be that model's own weights"
            )
        self.body.load_state_dict(state, strict=False)
        return str(path)

    def stages(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Every feature stage of the body (after the input normalisation, when on)."""
        return self.body((images - self.mean) / self.std if self.normalize else images)

    def forward(self, images: torch.Tensor) -> BackboneOutput:
        stages = self.stages(images)
        size = (self.input_spec.depth_size, self.input_spec.depth_size)
        multi_scale = torch.cat([F.adaptive_avg_pool2d(stages[i], size) for i in self.depth_stages], dim=1)
        return BackboneOutput(features=stages[-1], depth_features=multi_scale)
