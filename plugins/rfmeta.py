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

The networks, input checks, optimiser, scoring and checkpoints are those every fasbench learner shares
(``fasbench.learners.NetworkLearner``); this module holds the RF-Meta step.

Variants the paper ablates: ``first_order`` (the inner gradient is a constant: no second-order term)
and ``aggregation`` (no fine-grained split: the meta-train domains are merged into one meta-train set,
one inner step, one adapted meta learner on the meta-test domain).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from fasbench import hookimpl
from fasbench.errors import FasbenchError
from fasbench.interfaces import DomainBatch
from fasbench.learners import (
    COMMON_DEFAULTS,
    OPTIMIZER_DEFAULTS,
    OPTIMIZER_SEARCH_SPACE,
    NetworkLearner,
    pool,
)
from fasbench.options import require_flag, require_number
from fasbench.training import functional_forward, inner_sgd_step, named_parameters

if TYPE_CHECKING:
    from fasbench.plugins import Registrar

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


class RFMeta(NetworkLearner):
    """RF-Meta (Shao et al., AAAI 2020): depth-regularised, fine-grained meta-learning of the classifier."""

    name = "rfmeta"
    uses_depth = True
    min_domains = 2  # N-1 meta-train domains and one meta-test domain
    DEFAULTS = {
        **COMMON_DEFAULTS,
        **OPTIMIZER_DEFAULTS,
        "meta_step_size": 1e-3,
        "depth_weight": 10.0,
        "metatest_weight": 1.0,
        "classifier_bn_momentum": 1.0,  # the reference's --bn_momentum of the meta learner
        "first_order": False,
        "aggregation": False,
        "compile": False,
    }
    SEARCH_SPACE = {
        **OPTIMIZER_SEARCH_SPACE,
        "meta_step_size": ("log_uniform", 1e-4, 1e-1),
        "depth_weight": ("log_uniform", 1.0, 100.0),
    }

    def check_hparams(self) -> None:
        hp = self.hparams
        for name in ("meta_step_size", "depth_weight", "metatest_weight"):
            require_number(f"hparams.{name}", hp[name])
        for name in ("first_order", "aggregation", "compile"):
            require_flag(f"hparams.{name}", hp[name])

    def build_extra(self) -> None:
        compiled = self.hparams["compile"]
        if compiled and self.device.type == "cpu":
            raise FasbenchError(
                "hparams.compile is refused on the CPU: there its fp32 gradients can stray far beyond fp32 rounding "
                "(with one thread, 1.9e-3 of the largest gradient from the float64 truth where eager strays 3.4e-5; "
                "tests/test_rfmeta.py). Use it on CUDA, where benchmarks/gpu_check.sh measures the same agreement"
            )
        self.compile_networks(compiled)

    def compile_networks(self, compiled: bool = True) -> None:
        """torch.compile the backbone and the depth head (or undo it). torch.compile cannot differentiate twice
        through a compiled graph, so the meta learner (whose inner gradient is differentiated again) stays
        eager."""
        self._backbone_forward = torch.compile(self.backbone) if compiled else self.backbone
        self._depth_forward = torch.compile(self.depth_head) if compiled else self.depth_head

    # -- one step ----------------------------------------------------------------------------------
    def draw_split(self) -> tuple[list[int], int]:
        """Positions of the meta-train domains and of the meta-test domain (the learner's own generator)."""
        order = torch.randperm(self.num_domains, generator=self.generator).tolist()
        return order[:-1], order[-1]

    def compute_losses(
        self, domain_batches: Sequence[DomainBatch], meta_train: Sequence[int], meta_test: int
    ) -> RFMetaLosses:
        """The loss terms of one RF-Meta step for a given split (positions in ``domain_batches``)."""
        hp = self.hparams
        batches = self.checked(domain_batches)
        train_sets = [batches[i] for i in meta_train]
        if hp["aggregation"]:
            train_sets = [pool(train_sets)]
        params = named_parameters(self.classifier)
        cls_train, dep_train, adapted = [], [], []
        with self.autocast():
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
        self.train_mode()
        meta_train, meta_test = self.draw_split()
        losses = self.compute_losses(domain_batches, meta_train, meta_test)
        loss, logs = losses.objective(self.hparams["depth_weight"], self.hparams["metatest_weight"])
        self.observe({name: logs[name] for name in LOSS_NAMES})
        self.outer_step(loss)
        return logs


def step_gradients(learner: RFMeta, batches: Sequence[DomainBatch]) -> tuple[float, dict[str, torch.Tensor]]:
    """The loss and the gradient of every parameter of one RF-Meta step (split drawn by the learner), without
    the optimiser step."""
    learner.train_mode()
    meta_train, meta_test = learner.draw_split()
    losses = learner.compute_losses(batches, meta_train, meta_test)
    loss, _ = losses.objective(learner.hparams["depth_weight"], learner.hparams["metatest_weight"])
    named = {
        f"{network_name}.{name}": parameter
        for network_name, network in learner.networks().items()
        for name, parameter in network.named_parameters()
    }
    return float(loss.detach()), dict(zip(named, torch.autograd.grad(loss, list(named.values())), strict=True))


def compile_gradient_errors(backbone: dict[str, Any], device: Any, per_class: int = 2, seed: int = 0) -> dict:
    """How far one step's fp32 gradients are from the float64 truth, eager and compiled (``compile_networks``,
    what ``hparams.compile`` does), as fractions of the largest true gradient; and compiled against eager
    in float64 (the same mathematics: rounding only). Compile keeps the gradients to fp32 rounding when its
    error is of the order of eager's (``agrees``: under 1e-4 and under 10x eager's)."""
    from fasbench.testing import random_domain_batches

    def gradients(dtype: torch.dtype, compiled: bool) -> dict[str, torch.Tensor]:
        learner = RFMeta(backbone=backbone, num_domains=3, hparams={"batch_per_class": per_class}, seed=seed,
                         device=device)  # fmt: skip
        for network in learner.networks().values():
            network.to(dtype)
        learner.compile_networks(compiled)
        batches = [
            DomainBatch(b.images.to(device, dtype), b.depths.to(device, dtype), b.labels.to(device, dtype), b.domain)
            for b in random_domain_batches(learner, 3, per_class, seed)
        ]
        return step_gradients(learner, batches)[1]

    truth = gradients(torch.float64, False)
    scale = max(float(g.abs().max()) for g in truth.values())

    def error(found: dict[str, torch.Tensor]) -> float:
        return max(float((found[name].double() - truth[name]).abs().max()) for name in truth) / scale

    eager, compiled = error(gradients(torch.float32, False)), error(gradients(torch.float32, True))
    return {
        "eager_fp32": eager,
        "compiled_fp32": compiled,
        "compiled_fp64": error(gradients(torch.float64, True)),
        "largest_gradient": scale,
        "agrees": compiled < min(1e-4, 10 * eager),
    }


@hookimpl
def fasbench_register(registry: Registrar) -> None:
    registry.add("learners", "rfmeta", RFMeta)
