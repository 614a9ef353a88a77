"""``safas``: SA-FAS, Rethinking Domain Generalization for Face Anti-spoofing: Separability and Alignment (Sun, Liu,
Liu, Qian, Jiang, Li. CVPR 2023).

Facts from the authors' code (sunyiyou/SAFAS at commit 72436d4; train.py, networks/resnet_lgt.py, loss/__init__.py):

- Network (resnet_lgt.py): the whole ResNet-18 (conv1 .. layer4) from ImageNet (resnet18-5c106cde.pth), global
  average pooling -> a 512-d feature f. No bottleneck, no dropout, no projection head (``self.proj`` is built but
  commented out of the forward).
- Heads: one logistic regression per source domain (fc0, fc1, fc2). The default ``--normfc False`` builds
  ``LogisticRegression``: a 1 x 512 weight and a bias with nn.Linear's initialisation, p = sigmoid((w.f + b) x
  scale), ``--scale 1``. The paper calls the heads normalised; the code's ``--normfc True`` path normalises the
  1 x 512 weight along dim 0, which turns every entry into sign(w_j), not a unit vector. fasbench runs the
  released default: plain, un-normalised heads. Score = P(live) = the mean of the heads' sigmoids (label 1 = live).
- Two views of every frame (train.py, ``--train_rotation True``, ``--train_scale_min 0.2``): two independent draws
  of RandomRotation(+-180, black fill) -> RandomResizedCrop(256, scale (0.2, 1), ratio 1) -> RandomHorizontalFlip
  -> ImageNet normalisation. One forward on [view 1; view 2], labels and domains repeated.
- Classification (``binary_func_sep``): head i sees only the frames of source domain i (both views), nn.BCELoss
  mean over them; cls = (BCE0 + BCE1 + BCE2) / 3 (a head without frames adds 0).
- SupCon (``supcon_loss``, Khosla et al.'s "all" mode) on F.normalize(f) with the two views, classes = domain x
  label (``UUID * 10 + label``): every view is an anchor, its positives are the other views of its class (its own
  other view among them), its denominator all other views; temperature 0.1 (``--temperature``), base temperature
  0.07 hard-coded (a factor 0.1 / 0.07 on the loss). Total = cls + 0.1 x SupCon (``--feat_loss_weight``).
- PG-IRM (``update_weight_v4``, ``--align v4``, ``--alpha 0.995``, ``--align_epoch 20``): after every
  ``optimizer.step()`` from epoch 20 on (0-based), under no_grad, from the heads' weights of that moment, all at
  once: beta_i = w_i / (||w_i|| + 1e-10); the partner of head i is the other head with the lowest cosine
  beta_i.beta_j (ties: the lower index); w_i <- ||w_i|| x u(alpha beta_i + (1 - alpha) beta_partner), u(x) =
  x / (||x|| + 1e-10). Biases, momentum buffers and the backbone are left alone. With two heads
  (``update_weight_d2``) the partner is the other head.
- Optimiser: one SGD over every parameter, lr 0.005 (``--base_lr``), momentum 0.9, weight decay 5e-4;
  StepLR(40 epochs, x 0.5) stepped once per epoch; 100 epochs of 96 videos a batch. For I_C_M_to_O the epochs and
  the StepLR step are tripled (300, 120); the PG-IRM start stays at epoch 20.

Where fasbench differs, and why:

- The stream is balanced: ``batch_per_class`` = 16 live + 16 spoof frames per source domain and step (96 frames
  with three sources, 192 views). The authors draw 96 videos, one random frame each, from the pooled sources with
  no domain or class balancing, so their heads see varying numbers of frames.
- Frames come from fasbench's cache (fixed face crops) and are augmented on the device
  (``fasbench.learners.augment.rotated_resized_crop``: rotation, crop and flip in one bilinear ``grid_sample``
  where torchvision resamples twice, nearest for the rotation and bilinear for the crop). Scoring is deterministic
  (the whole cached frame); the authors' test is a random-position 90 % crop of a random frame of each video.
- fasbench runs are step-based: an "epoch" is ``epoch_steps`` = 50 steps (**inferred**: the benchmark's 5,000
  steps over the authors' 100 epochs), so PG-IRM starts at step 1,000 and the lr halves at steps 2,000 and 4,000.
  The lr is derived from the step counter at every update, so a resumed run continues bit-exactly.
- I_C_M_to_O: the authors train 300 epochs with the StepLR step at 120 (PG-IRM still from epoch 20);
  registry.yaml keeps that schedule within the same budget: epochs of 17 steps, the lr step at 120 epochs
  (PG-IRM from step 340, the lr halves at steps 2,040 and 4,080).
- The BCE is computed from the logit (``binary_cross_entropy_with_logits``): the authors' value, except where their
  BCELoss clamps log(p) at -100. The heads are the rows of one Linear(C, domains), each initialised as the
  authors' Linear(C, 1). The authors' learnt-scale branch (``--scale none``) and their unused parameters
  (fc_scale, bn_scale, proj: in their optimiser, never in the loss) are left out.
- The SA-FAS Table 1 numbers come from a hyper-parameter search whose settings are unknown (sunyiyou/SAFAS issue
  #3; gridsearch_lgt.py samples lr {0.01, 0.015, 0.02}, alpha {0.99, 0.999}, feature weight {0.4, 0.5, 0.6}, T
  {0.1, 0.07}, logit scale {0.5, 1}, PG-IRM start {0, 10, 20}, rotation off, none of them train.py's defaults):
  DEFAULTS are train.py's, SEARCH_SPACE covers the grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from fasbench import hookimpl
from fasbench.errors import FasbenchError
from fasbench.interfaces import DomainBatch
from fasbench.learners import NetworkLearner, build_backbone, pool
from fasbench.learners.augment import rotated_resized_crop
from fasbench.options import require_flag, require_number
from fasbench.training import build_optimizer, set_train_mode

if TYPE_CHECKING:
    from fasbench.plugins import Registrar

BASE_TEMPERATURE = 0.07  # hard-coded in the authors' supcon_loss
EPS = 1e-10  # the authors' normaliser: x / (||x|| + 1e-10)


def supervised_contrastive(
    features: torch.Tensor, classes: torch.Tensor, temperature: float, base_temperature: float = BASE_TEMPERATURE
) -> torch.Tensor:
    """SupCon ("all" mode) of two views per frame: ``features`` 2B x C as [view 1 of every frame; view 2], L2-
    normalised here; ``classes`` B, one per frame. Every view is an anchor; its positives are the other views of
    its class, its denominator all the other views. Mean over anchors of -(T / T_base) x the mean log-probability
    of the positives (the authors subtract each row's maximum first; logsumexp is stable without it)."""
    unit = F.normalize(features, dim=1)
    classes = torch.cat([classes, classes])
    logits = unit @ unit.T / temperature
    itself = torch.eye(len(logits), dtype=torch.bool, device=logits.device)
    log_prob = logits - torch.logsumexp(logits.masked_fill(itself, float("-inf")), dim=1, keepdim=True)
    positive = (classes[:, None] == classes[None, :]) & ~itself
    mean_positive = (log_prob * positive).sum(1) / positive.sum(1)  # every anchor has its other view as a positive
    return -(temperature / base_temperature) * mean_positive.mean()


def per_head_bce(logits: torch.Tensor, head: torch.Tensor, labels: torch.Tensor, heads: int) -> torch.Tensor:
    """The authors' classification loss: head i's BCE on the rows whose ``head`` is i (``logits`` N x heads, row r
    read at column head[r]), mean over those rows, then the sum over heads / ``heads`` (a head without rows adds 0).
    No boolean indexing: no host-device sync."""
    own = logits.gather(1, head[:, None]).squeeze(1)
    losses = F.binary_cross_entropy_with_logits(own, labels.to(own.dtype), reduction="none")
    sums = losses.new_zeros(heads).index_add(0, head, losses)
    counts = losses.new_zeros(heads).index_add(0, head, torch.ones_like(losses))
    return (sums / counts.clamp(min=1)).sum() / heads


@torch.no_grad()
def align_heads_(weight: torch.Tensor, alpha: float) -> None:
    """PG-IRM in place on ``weight`` (heads x C, one row per head), every row from the same old rows: each row turns
    towards its least-cosine partner, w_i <- ||w_i|| x u(alpha beta_i + (1 - alpha) beta_partner); norms kept."""
    norm = weight.norm(dim=1, keepdim=True)
    beta = weight / (norm + EPS)
    cosine = (beta @ beta.T).fill_diagonal_(float("inf"))
    partner = cosine.argmin(dim=1)  # the first minimum: ties go to the lower index, as the authors' min()
    mixed = alpha * beta + (1 - alpha) * beta[partner]
    weight.copy_(mixed / (mixed.norm(dim=1, keepdim=True) + EPS) * norm)


class SAFAS(NetworkLearner):
    """SA-FAS (Sun et al., CVPR 2023): per-domain logistic heads, domain x class SupCon on two views, PG-IRM."""

    name = "safas"
    BACKBONE = {"type": "timm:resnet18"}
    PAPER_WEIGHTS = "ImageNet ResNet-18, the whole body (torchvision's resnet18-5c106cde.pth in the authors' code)"
    min_domains = 2  # PG-IRM aligns one head per source domain with another
    DEFAULTS = {
        "batch_per_class": 16,  # 3 sources x 32 = the authors' 96 frames a step (balanced here, see the docstring)
        "amp": "none",
        "channels_last": False,
        "lr": 0.005,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "lr_gamma": 0.5,
        "lr_step_epochs": 40,
        "epoch_steps": 50,  # inferred: the benchmark's 5,000 steps over the authors' 100 epochs
        "supcon_weight": 0.1,
        "temperature": 0.1,
        "logit_scale": 1.0,
        "pg_irm": True,
        "alpha": 0.995,
        "align_start_epoch": 20,
        "rotation_degrees": 180.0,
        "crop_scale": [0.2, 1.0],
        "flip": 0.5,
    }
    SEARCH_SPACE = {  # the authors' grid (gridsearch_lgt.py) as ranges, train.py's defaults included
        "lr": ("log_uniform", 0.005, 0.02),
        "alpha": ("uniform", 0.99, 0.999),
        "supcon_weight": ("uniform", 0.1, 0.6),
        "temperature": ("uniform", 0.07, 0.1),
        "logit_scale": ("uniform", 0.5, 1.0),
        "align_start_epoch": ("int_uniform", 0, 20),
        "rotation_degrees": ("choice", [0.0, 180.0]),
    }

    def check_hparams(self) -> None:
        hp = self.hparams
        for name in ("lr", "momentum", "weight_decay", "lr_gamma", "supcon_weight"):
            require_number(f"hparams.{name}", hp[name])
        for name in ("epoch_steps", "lr_step_epochs"):
            require_number(f"hparams.{name}", hp[name], minimum=1, integer=True)
        require_number("hparams.align_start_epoch", hp["align_start_epoch"], integer=True)
        for name in ("temperature", "logit_scale"):
            if require_number(f"hparams.{name}", hp[name]) == 0:
                raise FasbenchError(f"hparams.{name} must be > 0, got {hp[name]!r}")
        require_flag("hparams.pg_irm", hp["pg_irm"])
        require_number("hparams.alpha", hp["alpha"], maximum=1.0)
        require_number("hparams.rotation_degrees", hp["rotation_degrees"], maximum=180.0)
        require_number("hparams.flip", hp["flip"], maximum=1.0)
        scale = hp["crop_scale"]
        if not isinstance(scale, (list, tuple)) or len(scale) != 2:
            raise FasbenchError(f"hparams.crop_scale must be [low, high] area fractions, got {scale!r}")
        low, high = (require_number("hparams.crop_scale", value, maximum=1.0) for value in scale)
        if not 0 < low <= high:
            raise FasbenchError(f"hparams.crop_scale must have 0 < low <= high <= 1, got {scale!r}")

    def build_networks(self) -> None:
        self.backbone = build_backbone(self.backbone_config, self.plugins)
        # One row per source domain: each row initialised as nn.Linear(C, 1) (the same bounds, 1 / sqrt(C)).
        self.heads = nn.Linear(self.backbone.feature_channels, self.num_domains)

    def networks(self) -> dict[str, nn.Module]:
        return {"backbone": self.backbone, "heads": self.heads}

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        hp = self.hparams
        return {
            "outer": build_optimizer(
                self.trainable(),
                name="sgd",
                lr=hp["lr"],
                momentum=hp["momentum"],
                weight_decay=hp["weight_decay"],
            )
        }

    # -- pieces of a step --------------------------------------------------------------------------
    def learning_rate(self, step: int) -> float:
        """StepLR on "epochs" of ``epoch_steps``: lr x gamma^(epoch // lr_step_epochs), epoch = step // epoch_steps."""
        hp = self.hparams
        return hp["lr"] * hp["lr_gamma"] ** (step // (hp["epoch_steps"] * hp["lr_step_epochs"]))

    def aligning(self, step: int) -> bool:
        """Whether PG-IRM follows the optimiser step at ``step`` (0-based, as the authors' epochs)."""
        hp = self.hparams
        return hp["pg_irm"] and step >= hp["align_start_epoch"] * hp["epoch_steps"]

    def views(self, images: torch.Tensor) -> torch.Tensor:
        """[view 1; view 2] of ``images``, each an independent random rotation, resized crop and flip."""
        hp = self.hparams
        low, high = hp["crop_scale"]
        if hp["rotation_degrees"] == 0 and low == high == 1 and hp["flip"] == 0:
            views = [images, images]  # every augmentation off: no identity resampling
        else:
            options = {
                "degrees": float(hp["rotation_degrees"]),
                "scale": (float(low), float(high)),
                "ratio": (1.0, 1.0),
                "p_flip": float(hp["flip"]),
            }
            views = [rotated_resized_crop(images, self.generator, **options) for _ in range(2)]
        return self._images(torch.cat(views))  # channels_last again, when asked for

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The pooled feature f (B x C, fp32)."""
        with self.autocast():
            stage = self.backbone(images).features
        return stage.float().mean(dim=(2, 3))

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Every head's logit (w.f + b) x logit_scale, B x heads, in fp32."""
        return self.heads(features) * self.hparams["logit_scale"]

    def compute_losses(self, batches: Sequence[DomainBatch]) -> dict[str, torch.Tensor]:
        """cls, supcon and their weighted total for one step (the views drawn from the learner's generator)."""
        domain = self.domain_indices(batches)
        pooled = pool(batches)
        images, labels = pooled.images, pooled.labels
        features = self.features(self.views(images))
        both = torch.cat([labels, labels])
        cls = per_head_bce(self.logits(features), torch.cat([domain, domain]), both, self.num_domains)
        classes = domain * 2 + labels.long()  # the (domain, label) pairs
        supcon = supervised_contrastive(features, classes, self.hparams["temperature"])
        return {"loss": cls + self.hparams["supcon_weight"] * supcon, "cls": cls, "supcon": supcon}

    def update(self, domain_batches: Sequence[DomainBatch]) -> dict[str, Any]:
        batches = self.checked(domain_batches)
        self.train_mode()
        self.set_learning_rate(self.learning_rate(self.step))
        losses = self.compute_losses(batches)
        self.observe({"cls": losses["cls"], "supcon": losses["supcon"]})
        self.outer_step(losses["loss"])
        if self.aligning(self.step):
            align_heads_(self.heads.weight, self.hparams["alpha"])
        return {name: value.detach() for name, value in losses.items()}

    def live_score(self, images: torch.Tensor) -> torch.Tensor:
        set_train_mode(self.networks().values(), False)
        return torch.sigmoid(self.logits(self.features(self._images(images)))).mean(dim=1)


@hookimpl
def fasbench_register(registry: Registrar) -> None:
    registry.add("learners", SAFAS.name, SAFAS)


__all__ = ["SAFAS", "align_heads_", "per_head_bce", "supervised_contrastive"]
