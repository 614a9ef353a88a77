"""``rfmeta``: Regularized Fine-grained Meta Face Anti-spoofing (Shao, Lan, Yuen, AAAI 2020).

One step (the paper's Eq. 1-3 as its public code computes them, rshaojimmy/AAAI2020-RFMetaFAS
core/train.py): the source domains are shuffled and split into N-1 meta-train domains and one
meta-test domain. On each meta-train domain the feature extractor, depth estimator and meta learner
(the classifier head) give a classification loss (BCE on the logit) and a depth loss (MSE), and the meta
learner alone takes a differentiable SGD step of size ``meta_step_size`` on that classification loss.
On the meta-test domain: the depth loss and the classification loss of every adapted meta learner.
One Adam step on all three networks minimises

    sum_i cls_i + W_depth * sum_i dep_i + W_metatest * (sum_i cls_test(adapted_i) + W_depth * dep_test)

with sums (not means) over domains, as the reference. Facts kept from the reference: Adam (lr 1e-3,
betas 0.9/0.999, no weight decay: main.py defines ``--weight_decay 5e-5`` but never passes it to Adam),
alpha = 1e-3, W_depth = 10, W_metatest = 1, k = 10 live + 10 spoof frames per domain, the meta
learner's BatchNorm momentum 1 (``--bn_momentum``), score = sigmoid(logit) per frame.

BatchNorm, deliberately: every forward runs in training mode with the batch's own statistics, as the
reference. The meta-train forwards are ordinary module calls, so they update the running statistics
(the meta learner's, with momentum 1, end up those of the last meta-train domain, which evaluation
then uses, as in the reference). The adapted meta-test forwards go through ``functional_call`` on
cloned buffers: they update nothing, exactly like the reference's adapted forward, which writes into
the running statistics of a cloned state dict.

Deliberate differences: the reference shuffles the frames inside each domain batch, which changes no
loss (BatchNorm statistics and mean losses ignore order), so we do not; the domain split comes from
the learner's own seeded generator (the reference uses python's global ``random``).

Variants the paper ablates: ``first_order`` (the inner gradient is a constant: no second-order term)
and ``aggregation`` (no fine-grained split: the meta-train domains are merged into one meta-train set,
one inner step, one adapted meta learner on the meta-test domain).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from fasbench_plugins.networks import build_backbone, build_heads

from fasbench import hookimpl
from fasbench.errors import FasbenchError
from fasbench.interfaces import DomainBatch, InputSpec, Learner
from fasbench.training import (
    AMP_MODES,
    OPTIMIZERS,
    FiniteLossGuard,
    autocast,
    build_optimizer,
    capture_rng_state,
    functional_forward,
    inner_sgd_step,
    named_parameters,
    require_choice,
    require_flag,
    require_number,
    restore_rng_state,
    seed_everything,
    seeded_generator,
    set_train_mode,
)

if TYPE_CHECKING:
    from fasbench.registry import Registrar

LOSS_NAMES = ("cls_train", "dep_train", "cls_test", "dep_test")


@dataclass
class RFMetaLosses:
    """The loss terms of one step (with their graphs) and the adapted meta-learner parameters."""

    cls_train: torch.Tensor  # sum over meta-train sets of the BCE of the meta learner
    dep_train: torch.Tensor  # sum over meta-train sets of the depth MSE
    cls_test: torch.Tensor  # sum over adapted meta learners of the BCE on the meta-test domain
    dep_test: torch.Tensor  # depth MSE on the meta-test domain
    adapted: list[dict[str, torch.Tensor]]  # one parameter dict per meta-train set

    def objective(self, depth_weight: float, metatest_weight: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The outer loss and the detached logs (0-dim tensors: no device sync)."""
        meta_train = self.cls_train + depth_weight * self.dep_train
        meta_test = self.cls_test + depth_weight * self.dep_test
        loss = meta_train + metatest_weight * meta_test
        logs = {"loss": loss, "meta_train": meta_train, "meta_test": meta_test}
        logs.update({name: getattr(self, name) for name in LOSS_NAMES})
        return loss, {name: value.detach() for name, value in logs.items()}


class RFMeta(Learner):
    """RF-Meta (Shao et al., AAAI 2020): depth-regularised, fine-grained meta-learning of the classifier."""

    name = "rfmeta"
    DEFAULTS = {
        "optimizer": "adam",
        "lr": 1e-3,
        "betas": [0.9, 0.999],
        "momentum": 0.9,  # SGD only
        "weight_decay": 0.0,
        "meta_step_size": 1e-3,
        "depth_weight": 10.0,
        "metatest_weight": 1.0,
        "batch_per_class": 10,
        "classifier_bn_momentum": 1.0,
        "first_order": False,
        "aggregation": False,
        "amp": "none",
        "channels_last": False,
        "compile": False,
    }
    SEARCH_SPACE = {
        "lr": ("log_uniform", 1e-4, 1e-2),
        "meta_step_size": ("log_uniform", 1e-4, 1e-1),
        "depth_weight": ("log_uniform", 1.0, 100.0),
    }

    def __init__(
        self,
        *,
        backbone: Mapping[str, Any],
        num_domains: int,
        hparams: Mapping[str, Any] | None = None,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ) -> None:
        super().__init__(hparams)
        self._check_hparams(num_domains)
        self.num_domains = num_domains
        self.device = torch.device(device)
        hp = self.hparams
        seed_everything(seed)
        self.backbone = build_backbone(backbone)
        self.depth_head, self.classifier = build_heads(
            self.backbone, classifier_bn_momentum=float(hp["classifier_bn_momentum"])
        )
        memory_format = torch.channels_last if hp["channels_last"] else torch.preserve_format
        for network in self.networks:
            network.to(device=self.device, memory_format=memory_format)
        self.optimizer = build_optimizer(
            (p for network in self.networks for p in network.parameters()),
            name=hp["optimizer"],
            lr=hp["lr"],
            betas=hp["betas"],
            momentum=hp["momentum"],
            weight_decay=hp["weight_decay"],
        )
        self._split_generator = seeded_generator(seed)
        self._finite_guard = FiniteLossGuard()
        # torch.compile cannot differentiate twice through a compiled graph, so the meta learner (whose
        # inner gradient is differentiated again) stays eager; the backbone and depth head are compiled.
        self._backbone_forward = torch.compile(self.backbone) if hp["compile"] else self.backbone
        self._depth_forward = torch.compile(self.depth_head) if hp["compile"] else self.depth_head

    def _check_hparams(self, num_domains: int) -> None:
        hp = self.hparams
        if isinstance(num_domains, bool) or not isinstance(num_domains, int) or num_domains < 2:
            raise FasbenchError(f"rfmeta needs at least two source domains (one meta-test), got {num_domains!r}")
        require_choice("hparams.optimizer", hp["optimizer"], OPTIMIZERS)
        require_choice("hparams.amp", hp["amp"], AMP_MODES)
        for name in ("lr", "momentum", "weight_decay", "meta_step_size", "depth_weight", "metatest_weight"):
            require_number(f"hparams.{name}", hp[name])
        require_number("hparams.classifier_bn_momentum", hp["classifier_bn_momentum"])
        require_number("hparams.batch_per_class", hp["batch_per_class"], minimum=1, integer=True)
        for name in ("first_order", "aggregation", "channels_last", "compile"):
            require_flag(f"hparams.{name}", hp[name])

    # -- the networks ------------------------------------------------------------------------------
    @property
    def networks(self) -> tuple[torch.nn.Module, ...]:
        """Feature extractor, depth estimator, meta learner (all trained by the outer step)."""
        return (self.backbone, self.depth_head, self.classifier)

    @property
    def input_spec(self) -> InputSpec:
        return self.backbone.input_spec

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.optimizer]

    def _images(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True)
        if self.hparams["channels_last"]:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    # -- one step ----------------------------------------------------------------------------------
    def draw_split(self) -> tuple[list[int], int]:
        """Positions of the meta-train domains and of the meta-test domain (the learner's own generator)."""
        order = torch.randperm(self.num_domains, generator=self._split_generator).tolist()
        return order[:-1], order[-1]

    def compute_losses(
        self, domain_batches: Sequence[DomainBatch], meta_train: Sequence[int], meta_test: int
    ) -> RFMetaLosses:
        """The loss terms of one RF-Meta step for a given split (positions in ``domain_batches``)."""
        hp = self.hparams
        batches = [self._checked(batch) for batch in domain_batches]
        train_sets = [batches[i] for i in meta_train]
        if hp["aggregation"]:
            train_sets = [_concatenate(train_sets)]
        params = named_parameters(self.classifier)
        cls_train, dep_train, adapted = [], [], []
        with autocast(self.device, hp["amp"]):
            for batch in train_sets:
                output = self._backbone_forward(batch.images)
                depth = self._depth_forward(output.depth_features)
                dep_train.append(F.mse_loss(depth.to(batch.depths.dtype), batch.depths))
                logits = self.classifier(output.features)
                cls = F.binary_cross_entropy_with_logits(logits.to(batch.labels.dtype), batch.labels)
                cls_train.append(cls)
                adapted.append(inner_sgd_step(params, cls, hp["meta_step_size"], first_order=hp["first_order"]))
            test = batches[meta_test]
            output = self._backbone_forward(test.images)
            depth = self._depth_forward(output.depth_features)
            dep_test = F.mse_loss(depth.to(test.depths.dtype), test.depths)
            cls_test = [
                F.binary_cross_entropy_with_logits(
                    functional_forward(self.classifier, fast, output.features).to(test.labels.dtype), test.labels
                )
                for fast in adapted
            ]
        return RFMetaLosses(
            cls_train=torch.stack(cls_train).sum(),
            dep_train=torch.stack(dep_train).sum(),
            cls_test=torch.stack(cls_test).sum(),
            dep_test=dep_test,
            adapted=adapted,
        )

    def update(self, domain_batches: Sequence[DomainBatch]) -> dict[str, Any]:
        if len(domain_batches) != self.num_domains:
            raise FasbenchError(
                f"rfmeta was built for {self.num_domains} source domains but update() got {len(domain_batches)} batches"
            )
        set_train_mode(self.networks, True)
        meta_train, meta_test = self.draw_split()
        losses = self.compute_losses(domain_batches, meta_train, meta_test)
        loss, logs = losses.objective(self.hparams["depth_weight"], self.hparams["metatest_weight"])
        self._finite_guard.observe({name: logs[name] for name in LOSS_NAMES}, self.step + 1)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return logs

    def _checked(self, batch: DomainBatch) -> DomainBatch:
        spec = self.input_spec
        want_images = (spec.channels, spec.size, spec.size)
        if tuple(batch.images.shape[1:]) != want_images:
            raise FasbenchError(
                f"domain {batch.domain}: images are {tuple(batch.images.shape)}, the backbone wants B x "
                f"{' x '.join(map(str, want_images))} ({spec.color} at {spec.size} px)"
            )
        if tuple(batch.depths.shape[1:]) != (1, spec.depth_size, spec.depth_size):
            raise FasbenchError(
                f"domain {batch.domain}: depth maps are {tuple(batch.depths.shape)}, the backbone wants B x 1 x "
                f"{spec.depth_size} x {spec.depth_size}"
            )
        if batch.labels.shape != batch.images.shape[:1]:
            raise FasbenchError(
                f"domain {batch.domain}: {len(batch.images)} images but labels of shape {batch.labels.shape}"
            )
        depths, labels = (_floating(t).to(self.device, non_blocking=True) for t in (batch.depths, batch.labels))
        return DomainBatch(self._images(batch.images), depths, labels, batch.domain)

    # -- scoring and checkpoints -------------------------------------------------------------------
    @torch.no_grad()
    def score(self, images: torch.Tensor) -> torch.Tensor:
        set_train_mode(self.networks, False)
        with autocast(self.device, self.hparams["amp"]):
            logits = self.classifier(self._backbone_forward(self._images(images)).features)
        return torch.sigmoid(logits.float())

    def state_dict(self) -> dict[str, Any]:
        return {
            "networks": {
                "backbone": self.backbone.state_dict(),
                "depth_head": self.depth_head.state_dict(),
                "classifier": self.classifier.state_dict(),
            },
            "optimizer": self.optimizer.state_dict(),
            "rng": capture_rng_state({"split": self._split_generator}),
            "step": self.step,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        missing = sorted({"networks", "optimizer", "rng", "step"} - set(state))
        if missing:
            raise FasbenchError(f"not an rfmeta checkpoint: it lacks {', '.join(missing)}")
        networks = state["networks"]
        self.backbone.load_state_dict(networks["backbone"])
        self.depth_head.load_state_dict(networks["depth_head"])
        self.classifier.load_state_dict(networks["classifier"])
        self.optimizer.load_state_dict(state["optimizer"])
        restore_rng_state(state["rng"], {"split": self._split_generator})
        self.step = int(state["step"])


def _floating(values: torch.Tensor) -> torch.Tensor:
    """Targets as floats (float32 unless already floating: tests run the step in float64)."""
    return values if values.is_floating_point() else values.float()


def _concatenate(batches: Sequence[DomainBatch]) -> DomainBatch:
    """Several domains' batches as one (the ``aggregation`` variant's single meta-train set)."""
    return DomainBatch(
        torch.cat([b.images for b in batches]),
        torch.cat([b.depths for b in batches]),
        torch.cat([b.labels for b in batches]),
        domain=-1,
    )


@hookimpl
def fasbench_register(registry: Registrar) -> None:
    registry.add("learners", "rfmeta", RFMeta)
