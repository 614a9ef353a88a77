"""``metapattern``: HFN + MP, Learning Meta Pattern for Face Anti-Spoofing (Cai et al., IEEE TIFS 2022).

Facts from the authors' code (RizhaoCai/MetaPattern_FAS at 7bfa51a, models/HFN_MP/network.py and trainer.py):

- Pattern extractor (PE): conv3x3 3->6 (bias) + BN + ReLU + conv3x3 6->3 (bias) + BN + sigmoid: the "meta
  pattern" MP, 3 x H x W in (0, 1). Its decoder twin has loss weight 0 in every released config: left out.
- Hierarchical fusion network (HFN): two FPN ResNet-50 streams (the ResNet-50 bodies from timm,
  ``features_only``), one on the image (fed in [0, 1], not normalised), one on MP (ImageNet-normalised).
  Per stream, 1x1 laterals c5/c4/c3 -> 256, 3x3 smoothing convs on p4 and p3, conv6 (3x3, stride 2) on c5 and
  conv7 (3x3, stride 2) on relu(p6). The streams are averaged at every level: p5 = mean of the laterals of
  c5; p4 = mean over the streams' smoothing of (nearest-upsampled p5 + mean lateral of c4); p3 likewise from
  p4 and c3 (256 x 32 x 32 at 256 px); p7 = mean of the streams' conv7(relu(conv6(c5))).
- Heads: map head on p3 (conv3x3 256->128 + ReLU + conv1x1 -> 1 + sigmoid, N(0, 0.01) weights, zero bias:
  a 32 x 32 map); classifier on p7 (global average pooling, dropout 0, linear 256 -> 2, index 1 = live).
  Map target: all ones for a live frame, all zeros for a spoof (a binary map, not depth).
- Score = (mean of the map + softmax(logits)[live]) / 2.
- Step (alternating, first order only): the source domains are shuffled into meta-train domains and one
  meta-test domain. Inner loop, ``inner_loops`` = 4 times, each on a new batch of 4 live + 4 spoof frames of
  the meta-test domain: L = MSE(map, target) + CE(logits, label); only the PE's optimiser steps. Then one
  batch of 4 + 4 from each meta-train domain: L = (MSE + CE) / 2; only the HFN's optimiser steps. (The
  authors' PE also receives gradients from the outer loss, which are zeroed before use: never applied.)
- Optimisers: SGD, momentum 0.9, no weight decay, no schedule: HFN lr 1e-3, PE lr 4e-3 (= 1e-3 x inner
  loops). Both streams start from the same ImageNet ResNet-50 weights, the FPN layers from the same fresh
  initialisation (the authors copy one set into both streams).

Where fasbench differs, and why:
- The data stream delivers ``batch_per_class`` = 16 live + 16 spoof frames per domain and step: the
  meta-test domain's are split into the 4 inner batches of 4 + 4, and each meta-train domain gives its first
  4 + 4 (the authors' loaders draw 4 + 4 per batch); the rest are not used. With another k the meta-test
  frames are split as evenly as possible (fewer than 4: inner step i takes frame i mod k), and the meta-train
  domains give ceil(k / 4) of each class.
- The image stream is fed RGB (the authors' frames reach the network in OpenCV's BGR order); the streams'
  ResNet-50 bodies are identical copies at the start also when trained from scratch.
- The authors train 1,000,000 iterations with no stopping rule and select the checkpoint with the best
  frame-level min-HTER on the target (oracle model and threshold): fasbench trains the benchmark's budget
  and reports every selection rule and threshold policy by name.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fasbench import hookimpl
from fasbench.errors import FasbenchError
from fasbench.interfaces import DomainBatch
from fasbench.learners import NetworkLearner, build_backbone, scaled
from fasbench.options import require_number
from fasbench.training import build_optimizer, set_train_mode

if TYPE_CHECKING:
    from fasbench.plugins import Registrar

FPN_CHANNELS = 256
MAP_HEAD_CHANNELS = 128
INNER_BATCH = 4  # live (and spoof) frames of each of the authors' batches


class PatternExtractor(nn.Module):
    """The meta-pattern extractor: image (RGB in [0, 1]) -> pattern in (0, 1), same size."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(inplace=True),
            nn.Conv2d(6, 3, 3, padding=1), nn.BatchNorm2d(3), nn.Sigmoid(),
        )  # fmt: skip

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)


class FPNLayers(nn.Module):
    """One stream's FPN layers: laterals of c5, c4, c3; smoothing of p4 and p3; conv6 and conv7."""

    def __init__(self, stage_channels: Sequence[int], channels: int) -> None:
        super().__init__()
        c3, c4, c5 = stage_channels
        self.lateral5, self.lateral4, self.lateral3 = (nn.Conv2d(c, channels, 1) for c in (c5, c4, c3))
        self.smooth4 = nn.Conv2d(channels, channels, 3, padding=1)
        self.smooth3 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv6 = nn.Conv2d(c5, channels, 3, stride=2, padding=1)
        self.conv7 = nn.Conv2d(channels, channels, 3, stride=2, padding=1)


def _up(top: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(top, size=like.shape[-2:], mode="nearest")


class FusionNetwork(nn.Module):
    """HFN: two FPN ResNet streams (image, meta pattern) averaged level by level; a map and a classifier head."""

    def __init__(self, image_stream: nn.Module, pattern_stream: nn.Module, dropout: float) -> None:
        super().__init__()
        self.image_stream, self.pattern_stream = image_stream, pattern_stream
        channels = scaled(FPN_CHANNELS, image_stream.width)
        self.image_fpn = FPNLayers(image_stream.stage_channels[-3:], channels)
        self.pattern_fpn = copy.deepcopy(self.image_fpn)  # both streams start from the same FPN weights
        hidden = scaled(MAP_HEAD_CHANNELS, image_stream.width)
        self.map_head = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(hidden, 1, 1), nn.Sigmoid()
        )
        for layer in self.map_head:
            if isinstance(layer, nn.Conv2d):
                nn.init.normal_(layer.weight, 0.0, 0.01)
                nn.init.zeros_(layer.bias)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels, 2)

    def forward(self, images: torch.Tensor, pattern: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(map B x 1 x h x w in (0, 1), logits B x 2)."""
        c3i, c4i, c5i = self.image_stream.stages(images)[-3:]
        c3p, c4p, c5p = self.pattern_stream.stages(pattern)[-3:]
        fi, fp = self.image_fpn, self.pattern_fpn
        p5 = (fi.lateral5(c5i) + fp.lateral5(c5p)) / 2
        merged4 = _up(p5, c4i) + (fi.lateral4(c4i) + fp.lateral4(c4p)) / 2
        p4 = (fi.smooth4(merged4) + fp.smooth4(merged4)) / 2
        merged3 = _up(p4, c3i) + (fi.lateral3(c3i) + fp.lateral3(c3p)) / 2
        p3 = (fi.smooth3(merged3) + fp.smooth3(merged3)) / 2
        p7 = (fi.conv7(F.relu(fi.conv6(c5i))) + fp.conv7(F.relu(fp.conv6(c5p)))) / 2
        logits = self.classifier(self.dropout(F.adaptive_avg_pool2d(p7, 1).flatten(1)))
        return self.map_head(p3), logits


class MetaPattern(NetworkLearner):
    """MetaPattern HFN+MP (Cai et al., TIFS 2022): a learnt pattern extractor and a two-stream fusion network."""

    name = "metapattern"
    BACKBONE = {"type": "timm:resnet50"}
    PAPER_WEIGHTS = "ImageNet ResNet-50 in both streams (torchvision's resnet50-19c8e357.pth in the authors' code)"
    min_domains = 2  # meta-train domains and one meta-test domain
    DEFAULTS = {
        "batch_per_class": 16,  # 4 inner batches of 4 live + 4 spoof from the meta-test domain (see the docstring)
        "amp": "none",
        "channels_last": False,
        "lr": 1e-3,  # the fusion network's SGD (the authors' META_LEARNING_RATE)
        "pattern_lr": 4e-3,  # the pattern extractor's SGD: lr x inner_loops, as the authors'
        "momentum": 0.9,
        "weight_decay": 0.0,
        "inner_loops": 4,
        "dropout": 0.0,
    }
    SEARCH_SPACE = {
        "lr": ("log_uniform", 1e-4, 1e-2),
        "pattern_lr": ("log_uniform", 4e-4, 4e-2),
        "inner_loops": ("int_uniform", 1, 8),
    }

    def check_hparams(self) -> None:
        hp = self.hparams
        for name in ("lr", "pattern_lr", "momentum", "weight_decay"):
            require_number(f"hparams.{name}", hp[name])
        require_number("hparams.inner_loops", hp["inner_loops"], minimum=1, integer=True)
        require_number("hparams.dropout", hp["dropout"], maximum=1.0)

    def build_networks(self) -> None:
        image_stream = build_backbone({**self.backbone_config, "normalize": False}, self.plugins)
        if image_stream.input_spec.color != "rgb" or not hasattr(image_stream, "stages"):
            raise FasbenchError(
                f"metapattern needs an RGB timm backbone with stages (e.g. timm:resnet50), got {self.backbone_config}"
            )
        pattern_stream = copy.deepcopy(image_stream)  # the same starting weights, as the authors' two streams
        pattern_stream.normalize = True  # only the pattern stream is ImageNet-normalised
        self.backbone = image_stream
        self.pattern = PatternExtractor()
        self.fusion = FusionNetwork(image_stream, pattern_stream, float(self.hparams["dropout"]))

    def networks(self) -> dict[str, nn.Module]:
        return {"pattern": self.pattern, "fusion": self.fusion}

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        hp = self.hparams
        sgd = {"name": "sgd", "momentum": hp["momentum"], "weight_decay": hp["weight_decay"]}
        return {
            "fusion": build_optimizer(self.fusion.parameters(), lr=hp["lr"], **sgd),
            "pattern": build_optimizer(self.pattern.parameters(), lr=hp["pattern_lr"], **sgd),
        }

    # -- one step ----------------------------------------------------------------------------------
    def draw_split(self) -> tuple[list[int], int]:
        """Positions of the meta-train domains and of the meta-test domain (the learner's own generator)."""
        order = torch.randperm(self.num_domains, generator=self.generator).tolist()
        return order[:-1], order[-1]

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.fusion(images, self.pattern(images))

    def loss(self, batch: DomainBatch) -> torch.Tensor:
        """MSE of the map against the binary live map + cross-entropy of the classifier (fp32)."""
        with self.autocast():
            live_map, logits = self.forward(batch.images)
        target = batch.labels.view(-1, 1, 1, 1).expand_as(live_map).to(torch.float32)
        return F.mse_loss(live_map.float(), target) + F.cross_entropy(logits.float(), batch.labels.long())

    def inner_batches(self, batch: DomainBatch) -> list[DomainBatch]:
        """The meta-test domain's k live + k spoof frames (the stream's order) as ``inner_loops`` batches, split
        as evenly as possible; with fewer frames than inner steps, step i takes frame i mod k of each class."""
        k, loops = len(batch.labels) // 2, self.hparams["inner_loops"]
        if k < loops:
            return [_frames([batch], [(i % k, i % k + 1)], k) for i in range(loops)]
        bounds = np.cumsum([0, *(len(part) for part in np.array_split(np.arange(k), loops))])
        return [_frames([batch], [(int(a), int(b))], k) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def outer_batch(self, batches: Sequence[DomainBatch]) -> DomainBatch:
        """The first ceil(k / inner_loops) live and spoof frames of every meta-train domain, as one batch."""
        k = len(batches[0].labels) // 2
        size = -(-k // self.hparams["inner_loops"])
        return _frames(batches, [(0, size)], k)

    def step_on(self, optimizer: str, loss: torch.Tensor) -> None:
        """One step of ``optimizer`` from the gradient of ``loss`` for its own parameters only."""
        chosen = self._optimizers[optimizer]
        parameters = [p for group in chosen.param_groups for p in group["params"]]
        grads = torch.autograd.grad(loss, parameters, allow_unused=True)
        for parameter, grad in zip(parameters, grads, strict=True):
            parameter.grad = grad
        chosen.step()

    def update(self, domain_batches: Sequence[DomainBatch]) -> dict[str, Any]:
        batches = self.checked(domain_batches)
        self.train_mode()
        meta_train, meta_test = self.draw_split()
        inner_losses = []
        for batch in self.inner_batches(batches[meta_test]):
            loss = self.loss(batch)
            self.step_on("pattern", loss)  # only the pattern extractor moves
            inner_losses.append(loss.detach())
        outer = self.loss(self.outer_batch([batches[i] for i in meta_train])) / 2
        self.step_on("fusion", outer)  # only the fusion network moves
        inner = torch.stack(inner_losses).mean()
        self.observe({"inner": inner, "outer": outer})
        return {"loss": inner + outer.detach(), "inner": inner, "outer": outer.detach()}

    def live_score(self, images: torch.Tensor) -> torch.Tensor:
        set_train_mode(self.networks().values(), False)
        with self.autocast():
            live_map, logits = self.forward(self._images(images))
        return (live_map.float().mean(dim=(1, 2, 3)) + torch.softmax(logits.float(), dim=1)[:, 1]) / 2


def _frames(batches: Sequence[DomainBatch], ranges: Sequence[tuple[int, int]], k: int) -> DomainBatch:
    """Live frames [a, b) and spoof frames [k + a, k + b) of each batch (k live then k spoof, the stream's
    order), as one batch: slices only, no index tensor, no host-device sync."""
    parts = [(batch, a, b) for batch in batches for a, b in ranges]

    def take(field: str) -> torch.Tensor:
        live = [getattr(batch, field)[a:b] for batch, a, b in parts]
        spoof = [getattr(batch, field)[k + a : k + b] for batch, a, b in parts]
        return torch.cat(live + spoof)

    return DomainBatch(take("images"), take("depths"), take("labels"), batches[0].domain if len(batches) == 1 else -1)


@hookimpl
def fasbench_register(registry: Registrar) -> None:
    registry.add("learners", MetaPattern.name, MetaPattern)


__all__ = ["FusionNetwork", "MetaPattern", "PatternExtractor"]
