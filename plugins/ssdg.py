"""``ssdg``: SSDG-R, Single-Side Domain Generalization for Face Anti-Spoofing (Jia, Zhang, Shan, Chen. CVPR 2020).

Facts from the authors' code (taylover-pei/SSDG-CVPR2020; models/DGFAS.py, loss/hard_triplet_loss.py,
loss/AdLoss.py, experiment/*/config.py and train_ssdg_full.py, utils/utils.py):

- Network (``DG_model('resnet18')``): conv1 .. layer3 of an ImageNet ResNet-18 (resnet18-5c106cde.pth); layer4 of
  a *fresh* ResNet-18 (``Feature_Embedder_ResNet18`` builds ``resnet18(pretrained=False)``); global average
  pooling; bottleneck Linear(512, 512) (weights N(0, 0.005), bias 0.1) -> ReLU -> Dropout(0.5); then the feature
  f / (sqrt(||f||) x sqrt(2)) (``norm_flag``, the norm clamped at 1e-12). The classifier is Linear(512, 2)
  (N(0, 0.01), bias 0) whose weight is L2-normalised along dim 0 (each input column of the 2 x 512 matrix) *in
  place* before every forward (``weight.data = l2_norm(weight, axis=0)``). Score = softmax(logits)[1] (1 = live).
- Single-side adversarial learning: one discriminator (``ad_net_real``) Linear(512, 512) (N(0, 0.01), bias 0) ->
  ReLU -> Dropout(0.5) -> Linear(512, domains) (N(0, 0.3), bias 0) behind a gradient reversal layer sees only the
  live features; its loss is the cross entropy of the source-domain index. The reversal scales the gradient by
  -(2 / (1 + exp(-10 i / 4000)) - 1), i = the number of forwards so far (1 in the first step).
- Asymmetric triplet loss (``HardTripletLoss(margin=0.1, hardest=False)``) on the normalised features, classes:
  every live frame one class (0), the spoofs of source domain d their own (d + 1). ``hardest=False`` is the
  batch-all form: every valid (anchor, positive, negative) with distinct indices, relu(d(a, p) - d(a, n) + 0.1),
  summed and divided by the number of positive terms (+1e-16); Euclidean distances from the Gram matrix, a zero
  distance kept at exactly 0 with a finite gradient. The paper's text says hard triplets; the released code
  runs batch-all: ``triplet_mining`` "all" (default) or "hardest" (per anchor the farthest positive and the
  nearest negative, relu(...) averaged over anchors: ``hardest=True``).
- Loss: CE(classifier) + lambda_triplet x triplet + lambda_adreal x adversarial: (1, 0.5) in O_C_I_to_M,
  O_M_I_to_C, O_C_M_to_I; (2, 0.1) in I_C_M_to_O.
- Optimiser: one SGD over the network and the discriminator, momentum 0.9, weight decay 5e-4, init_lr 0.01 with
  ``adjust_learning_rate(lr_epoch_1=0, ...)``: the "epoch" starts at 1, so the lr is 0.01 x 0.1 = 1e-3 from the
  first step and 1e-4 once epoch > lr_epoch_2 (an epoch = 10 iterations): from iteration 1,500 (lr_epoch_2 150:
  O_C_I_to_M, I_C_M_to_O) or 500 (lr_epoch_2 50: O_M_I_to_C, O_C_M_to_I). 4,000 iterations.
- Data: 10 live and 10 spoof frames of each source a step (``batch_size = 10`` per loader, six loaders),
  RandomHorizontalFlip, ImageNet normalisation.

Where fasbench differs, and why:

- Frames come from fasbench's cache (fixed face crops); the flip is drawn from the learner's generator and done
  on the device (``fasbench.learners.augment.flip``).
- The discriminator runs on every feature and its cross entropy is averaged over the live ones (a 0/1 weight)
  instead of slicing out the live rows: the same loss and gradients without a host-device sync; its dropout
  draws masks for the spoof rows too (different random numbers, the same distribution). Dropout masks come
  from the learner's generator (on the CPU, copied over), not torch's global RNG: a step depends on the seed
  and the step only.
- The reversal weight comes from the step counter (step + 1 = the authors' i) and the lr from it as well
  (``lr_drop_step``), so a resumed run continues bit-exactly; the per-protocol values are in registry.yaml.
- The layer4 re-initialisation (``reinit_last_stage``) applies when the backbone loaded weights (from scratch it
  is fresh already): torchvision's ResNet initialisation (Kaiming-normal fan-out convolutions, BN weight 1 and
  bias 0). The score uses the normalised classifier weight without writing it back (scoring changes nothing).
- The authors train 4,000 iterations; fasbench trains the benchmark's budget (5,000 steps by default:
  ``--budget 4000`` for theirs). The reversal weight keeps their 4,000-iteration ramp (``grl_max_iter``).
- The authors select the checkpoint with the best target HTER and threshold at the target EER (``--mode ssdg``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from fasbench import hookimpl
from fasbench.errors import FasbenchError
from fasbench.interfaces import DomainBatch
from fasbench.learners import NetworkLearner, build_backbone, pool
from fasbench.learners.augment import flip
from fasbench.options import require_choice, require_flag, require_number
from fasbench.training import build_optimizer, set_train_mode

if TYPE_CHECKING:
    from fasbench.plugins import Registrar

TRIPLET_MINING = ("all", "hardest")
DISTANCE_EPS = 1e-16  # the authors' epsilon under the square root of a zero distance and in the batch-all mean


class GradientReversal(torch.autograd.Function):
    """Identity forward; the gradient times -``coefficient`` backward."""

    @staticmethod
    def forward(ctx: Any, inputs: torch.Tensor, coefficient: float) -> torch.Tensor:
        ctx.coefficient = coefficient
        return inputs.view_as(inputs)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.coefficient * grad, None


def reversal_coefficient(iteration: int, max_iter: float, alpha: float = 10.0) -> float:
    """The authors' GRL weight 2 / (1 + exp(-alpha i / max_iter)) - 1 (0 at i = 0, towards 1)."""
    return 2.0 / (1.0 + math.exp(-alpha * iteration / max_iter)) - 1.0


def scaled_norm(features: torch.Tensor) -> torch.Tensor:
    """The authors' feature normalisation: f / (sqrt(max(||f||, 1e-12)) x sqrt(2))."""
    return features / (features.norm(dim=1, keepdim=True).clamp(min=1e-12).sqrt() * math.sqrt(2))


def column_normalized(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` (outputs x inputs) with every column (one input's weights to the outputs) of unit L2 norm."""
    return weight / weight.norm(dim=0, keepdim=True)


def pairwise_distances(features: torch.Tensor) -> torch.Tensor:
    """Euclidean distances from the Gram matrix (negative rounding clipped to 0); a zero distance stays exactly 0
    with a finite gradient (the square root is taken of 1e-16 there and the result masked)."""
    gram = features @ features.T
    squared = F.relu(gram.diagonal()[:, None] - 2 * gram + gram.diagonal()[None, :])
    zero = (squared == 0).to(squared.dtype)
    return torch.sqrt(squared + zero * DISTANCE_EPS) * (1 - zero)


def triplet_loss(features: torch.Tensor, classes: torch.Tensor, margin: float, mining: str = "all") -> torch.Tensor:
    """The authors' HardTripletLoss on ``features`` (N x C) of integer ``classes`` (N).

    "all": the mean of relu(d(a, p) - d(a, n) + margin) over the valid triplets (a, p, n distinct, p of a's class,
    n not) whose term is positive (sum / (count + 1e-16)). "hardest": per anchor, the farthest positive and the
    nearest negative, relu(...) averaged over every anchor (an anchor without a positive counts d(a, p) = 0)."""
    distances = pairwise_distances(features)
    same = classes[:, None] == classes[None, :]
    distinct = ~torch.eye(len(classes), dtype=torch.bool, device=classes.device)
    if mining == "hardest":
        positive = (distances * (same & distinct)).amax(dim=1)
        farthest = distances.amax(dim=1, keepdim=True)
        negative = (distances + farthest * same).amin(dim=1)  # the authors' offset pushes non-negatives out
        return F.relu(positive - negative + margin).mean()
    terms = distances[:, :, None] - distances[:, None, :] + margin  # [a, p, n]
    valid = (same & distinct)[:, :, None] & ~same[:, None, :] & distinct[:, None, :] & distinct[None, :, :]
    terms = F.relu(terms * valid)
    return terms.sum() / ((terms > DISTANCE_EPS).sum() + DISTANCE_EPS)


def dropout(values: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Inverted dropout with the mask drawn from ``generator`` (the learner's own: its steps do not depend on what
    else used torch's global RNG, and a resumed run draws the same masks); identity without a generator."""
    if generator is None or p == 0:
        return values
    keep = torch.rand(values.shape, generator=generator) >= p
    return values * keep.to(device=values.device, dtype=values.dtype, non_blocking=True) / (1 - p)


class Embedder(nn.Module):
    """Global average pooling -> Linear(C, dim) (N(0, 0.005), bias 0.1) -> ReLU -> Dropout -> scaled_norm."""

    def __init__(self, channels: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.fc = nn.Linear(channels, dim)
        nn.init.normal_(self.fc.weight, 0.0, 0.005)
        nn.init.constant_(self.fc.bias, 0.1)
        self.p = dropout

    def forward(self, stage: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``generator``: dropout's masks (training); None: no dropout (scoring)."""
        return scaled_norm(dropout(F.relu(self.fc(stage.float().mean(dim=(2, 3)))), self.p, generator))


class Discriminator(nn.Module):
    """Linear(dim, dim) (N(0, 0.01)) -> ReLU -> Dropout -> Linear(dim, domains) (N(0, 0.3)), zero biases."""

    def __init__(self, dim: int, domains: int, dropout: float) -> None:
        super().__init__()
        self.hidden = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, domains)
        for layer, std in ((self.hidden, 0.01), (self.out, 0.3)):
            nn.init.normal_(layer.weight, 0.0, std)
            nn.init.zeros_(layer.bias)
        self.p = dropout

    def forward(self, features: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.out(dropout(F.relu(self.hidden(features)), self.p, generator))


def torchvision_resnet_init_(module: nn.Module) -> None:
    """torchvision's ResNet initialisation, in place: Kaiming-normal (fan-out, ReLU) convolutions, BN 1 and 0."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)


class SSDG(NetworkLearner):
    """SSDG-R (Jia et al., CVPR 2020): single-side adversarial learning on live features, asymmetric triplets."""

    name = "ssdg"
    BACKBONE = {"type": "timm:resnet18"}
    PAPER_WEIGHTS = "ImageNet ResNet-18 up to layer3, layer4 fresh (torchvision's resnet18-5c106cde.pth)"
    min_domains = 2  # the discriminator tells source domains apart
    DEFAULTS = {
        "batch_per_class": 10,  # the authors' batch_size: 10 live + 10 spoof frames of each source a step
        "amp": "none",
        "channels_last": False,
        "lr": 1e-3,  # init_lr 0.01 x 0.1: lr_epoch_1 = 0 drops it before the first step
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "lr_gamma": 0.1,
        "lr_drop_step": 500,  # 10 x lr_epoch_2 (50; 150 in O_C_I_to_M and I_C_M_to_O: registry.yaml)
        "embedding": 512,
        "dropout": 0.5,
        "triplet_weight": 1.0,
        "triplet_margin": 0.1,
        "triplet_mining": "all",
        "adversarial_weight": 0.5,
        "grl_max_iter": 4000,
        "grl_alpha": 10.0,
        "flip": 0.5,
        "reinit_last_stage": True,
    }
    SEARCH_SPACE = {
        "lr": ("log_uniform", 1e-4, 1e-2),
        "triplet_weight": ("uniform", 0.5, 2.0),
        "adversarial_weight": ("uniform", 0.1, 1.0),
    }

    def check_hparams(self) -> None:
        hp = self.hparams
        for name in ("lr", "momentum", "weight_decay", "lr_gamma", "triplet_weight", "triplet_margin"):
            require_number(f"hparams.{name}", hp[name])
        require_number("hparams.adversarial_weight", hp["adversarial_weight"])
        for name in ("lr_drop_step", "embedding"):
            require_number(f"hparams.{name}", hp[name], minimum=1, integer=True)
        for name in ("grl_max_iter", "grl_alpha"):
            if require_number(f"hparams.{name}", hp[name]) == 0:
                raise FasbenchError(f"hparams.{name} must be > 0, got {hp[name]!r}")
        require_number("hparams.dropout", hp["dropout"], maximum=1.0)
        require_number("hparams.flip", hp["flip"], maximum=1.0)
        require_choice("hparams.triplet_mining", hp["triplet_mining"], TRIPLET_MINING)
        require_flag("hparams.reinit_last_stage", hp["reinit_last_stage"])

    def build_networks(self) -> None:
        hp = self.hparams
        self.backbone = build_backbone(self.backbone_config, self.plugins)
        if hp["reinit_last_stage"] and getattr(self.backbone, "weights", None) is not None:
            self.last_stage().apply(torchvision_resnet_init_)
        dim = int(hp["embedding"])
        self.embedder = Embedder(self.backbone.feature_channels, dim, float(hp["dropout"]))
        self.classifier = nn.Linear(dim, 2)
        nn.init.normal_(self.classifier.weight, 0.0, 0.01)
        nn.init.zeros_(self.classifier.bias)
        self.discriminator = Discriminator(dim, self.num_domains, float(hp["dropout"]))

    def last_stage(self) -> nn.Module:
        """The backbone's last feature stage (ResNet's layer4), which the authors take from a fresh network."""
        body = getattr(self.backbone, "body", None)
        info = getattr(body, "feature_info", None)
        if info is None:
            raise FasbenchError(
                f"ssdg re-initialises the last stage of pretrained weights, but backbone "
                f"{self.backbone_config.get('type')} has no timm feature stages; use a timm:* backbone or set "
                "hparams.reinit_last_stage=false"
            )
        return body.get_submodule(info.module_name()[-1])

    def networks(self) -> dict[str, nn.Module]:
        return {
            "backbone": self.backbone,
            "embedder": self.embedder,
            "classifier": self.classifier,
            "discriminator": self.discriminator,
        }

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        hp = self.hparams
        return {
            "outer": build_optimizer(
                self.trainable(), name="sgd", lr=hp["lr"], momentum=hp["momentum"], weight_decay=hp["weight_decay"]
            )
        }

    # -- pieces of a step --------------------------------------------------------------------------
    def learning_rate(self, step: int) -> float:
        """lr until ``lr_drop_step``, lr x gamma from there (0-based steps)."""
        hp = self.hparams
        return hp["lr"] * (hp["lr_gamma"] if step >= hp["lr_drop_step"] else 1.0)

    def reversal(self, step: int) -> float:
        """The gradient reversal weight at 0-based ``step`` (the authors' counter is step + 1)."""
        return reversal_coefficient(step + 1, self.hparams["grl_max_iter"], self.hparams["grl_alpha"])

    def embed(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The normalised feature (B x embedding, fp32); dropout's masks from ``generator`` (None: no dropout)."""
        with self.autocast():
            stage = self.backbone(images).features
        return self.embedder(stage, generator)

    def compute_losses(self, batches: Sequence[DomainBatch]) -> dict[str, torch.Tensor]:
        """cls, triplet, adversarial and their weighted total (the flips from the learner's generator)."""
        hp = self.hparams
        domain = self.domain_indices(batches)
        pooled = pool(batches)
        images, labels = pooled.images, pooled.labels.long()
        if hp["flip"] > 0:
            images = self._images(flip(images, self.generator, float(hp["flip"])))
        features = self.embed(images, self.generator)
        with torch.no_grad():  # the authors' in-place column normalisation before the forward
            self.classifier.weight.copy_(column_normalized(self.classifier.weight))
        cls = F.cross_entropy(self.classifier(features), labels)
        classes = torch.where(labels == 1, 0, domain + 1)  # all live one class, each domain's spoofs their own
        triplet = triplet_loss(features, classes, float(hp["triplet_margin"]), hp["triplet_mining"])
        reversed_features = GradientReversal.apply(features, self.reversal(self.step))
        per_frame = F.cross_entropy(self.discriminator(reversed_features, self.generator), domain, reduction="none")
        live = labels.to(per_frame.dtype)
        adversarial = (per_frame * live).sum() / live.sum().clamp(min=1)
        loss = cls + hp["triplet_weight"] * triplet + hp["adversarial_weight"] * adversarial
        return {"loss": loss, "cls": cls, "triplet": triplet, "adversarial": adversarial}

    def update(self, domain_batches: Sequence[DomainBatch]) -> dict[str, Any]:
        batches = self.checked(domain_batches)
        self.train_mode()
        self.set_learning_rate(self.learning_rate(self.step))
        losses = self.compute_losses(batches)
        self.observe({name: value for name, value in losses.items() if name != "loss"})
        self.outer_step(losses["loss"])
        return {name: value.detach() for name, value in losses.items()}

    def live_score(self, images: torch.Tensor) -> torch.Tensor:
        set_train_mode(self.networks().values(), False)
        features = self.embed(self._images(images))
        logits = F.linear(features, column_normalized(self.classifier.weight), self.classifier.bias)
        return torch.softmax(logits.float(), dim=1)[:, 1]


@hookimpl
def fasbench_register(registry: Registrar) -> None:
    registry.add("learners", SSDG.name, SSDG)


__all__ = [
    "SSDG",
    "GradientReversal",
    "column_normalized",
    "pairwise_distances",
    "reversal_coefficient",
    "triplet_loss",
]
