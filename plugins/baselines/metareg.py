"""``metareg``: MetaReg (Balaji, Sankaranarayanan, Chellappa, "MetaReg: Towards Domain Generalization
using Meta-Regularization", NeurIPS 2018) on the RF-Meta networks.

Networks: the shared backbone (the paper's feature network F), one classifier head per source domain
(task networks T_i), a shared classifier head T (the final model, which scores), and the regulariser
``R_phi(theta) = sum phi_i |theta_i|``: a learned weighted L1 with one weight per parameter entry of a head.

One step, on one batch per source domain (backbone features computed once, on the pooled batch):
1. Meta step (Algorithm 1, meta-train/meta-test): draw domains a != b (the learner's seeded generator);
   from beta_1 = T_a, take ``meta_train_steps`` (l) differentiable SGD steps (``inner_lr``) on
   ``L_a(beta) + R_phi(beta)`` (each on domain a's one batch of the step: the paper samples a new batch
   per inner step); one ``meta_lr`` step of phi on ``L_b(beta_l)`` (second order, through the l steps).
   Features are detached: the meta step changes phi only.
2. Supervised step (one outer optimiser step): the mean over domains of each T_i's BCE on its own
   domain (trains F and every T_i, the paper's line 2-4), plus the final head's objective, BCE of T on
   all source frames + R_phi(T) with the current phi (held fixed), on detached features.

Deliberate differences: the paper trains T_i and F first and the final model afterwards, with F and
the learned phi fixed; here the final head is trained alongside, always with the current phi, so that
every checkpoint the runner evaluates (periodic evaluation, ``source_val`` and ``oracle`` selection)
scores with a trained final head. phi is kept
non-negative (projected after each meta step) so that R stays a regulariser. The outer optimiser is
RF-Meta's (Adam, lr 1e-3) and the meta optimiser is of the same kind (its betas, or its momentum for
SGD; no weight decay on phi) at ``meta_lr``, so rows differ by method only.

Defaults: the paper leaves the number of meta-train steps l, the learning rates and phi's
initialisation as experiment settings; fasbench's values are its own: l = 5, inner_lr 1e-3 (RF-Meta's
inner step), phi initialised to 0 (no prior: the regulariser is learnt from nothing; a uniform 1e-3
already matches the mean BCE gradient of the full-width head and shrinks it wholesale) and
meta_lr 1e-5 (Adam moves each phi by about that much per step). The RF-Meta paper publishes no
settings for MetaReg.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from fasbench_plugins.baselines.meta_steps import LossOfParams, metareg_meta_loss, weighted_l1
from torch import nn

from fasbench.interfaces import DomainBatch
from fasbench.learners import (
    COMMON_DEFAULTS,
    OPTIMIZER_DEFAULTS,
    OPTIMIZER_SEARCH_SPACE,
    ClassifierHead,
    NetworkLearner,
    bce,
    pool,
)
from fasbench.options import require_number
from fasbench.training import build_optimizer, functional_forward, named_parameters


class WeightedL1(nn.Module):
    """MetaReg's regulariser for one head architecture: a weight phi >= 0 per parameter entry of the head."""

    def __init__(self, head: nn.Module, init: float) -> None:
        super().__init__()
        self.names = [name for name, _ in head.named_parameters()]
        self.weights = nn.ParameterList([nn.Parameter(torch.full_like(p, init)) for p in head.parameters()])

    def by_name(self) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.weights, strict=True))

    def forward(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """R_phi(params) with phi held fixed (no gradient reaches phi)."""
        return weighted_l1((params[name] for name in self.names), (w.detach() for w in self.weights))

    @torch.no_grad()
    def project(self) -> None:
        """Clip phi at zero (a negative weight would reward large parameters)."""
        if len(self.weights):
            torch._foreach_clamp_min_(list(self.weights), 0.0)


class MetaReg(NetworkLearner):
    """MetaReg (Balaji et al., NeurIPS 2018): per-domain heads and a meta-learned weighted-L1 regulariser."""

    name = "metareg"
    min_domains = 2
    DEFAULTS = {
        **COMMON_DEFAULTS,
        **OPTIMIZER_DEFAULTS,
        "meta_train_steps": 5,
        "inner_lr": 1e-3,
        "meta_lr": 1e-5,
        "reg_init": 0.0,
    }
    SEARCH_SPACE = {
        **OPTIMIZER_SEARCH_SPACE,
        "meta_train_steps": ("int_uniform", 1, 10),
        "inner_lr": ("log_uniform", 1e-4, 1e-1),
        "meta_lr": ("log_uniform", 1e-5, 1e-2),
    }

    def check_hparams(self) -> None:
        hp = self.hparams
        require_number("hparams.meta_train_steps", hp["meta_train_steps"], minimum=1, integer=True)
        for name in ("inner_lr", "meta_lr", "reg_init"):
            require_number(f"hparams.{name}", hp[name])

    def build_extra(self) -> None:
        backbone, momentum = self.backbone, float(self.hparams["classifier_bn_momentum"])
        self.domain_heads = nn.ModuleList(
            [
                ClassifierHead(backbone.feature_channels, width=backbone.width, bn_momentum=momentum)
                for _ in range(self.num_domains)
            ]
        )
        self.regulariser = WeightedL1(self.classifier, float(self.hparams["reg_init"]))

    def networks(self) -> dict[str, nn.Module]:
        return {**super().networks(), "domain_heads": self.domain_heads, "regulariser": self.regulariser}

    def trainable(self) -> list[nn.Parameter]:
        return [p for name, module in self.networks().items() if name != "regulariser" for p in module.parameters()]

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        hp = self.hparams
        meta = build_optimizer(
            self.regulariser.parameters(),
            name=hp["optimizer"],
            lr=hp["meta_lr"],
            betas=hp["betas"],
            momentum=hp["momentum"],
        )
        return {"outer": self.outer_optimizer(self.trainable()), "meta": meta}

    def draw_pair(self) -> tuple[int, int]:
        """Positions of the meta-train domain a and the meta-test domain b != a (the learner's generator)."""
        a, b = torch.randperm(self.num_domains, generator=self.generator)[:2].tolist()
        return a, b

    @staticmethod
    def _head_loss(head: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> LossOfParams:
        return lambda params: bce(functional_forward(head, params, features, buffers="clone"), labels)

    def update(self, domain_batches: Sequence[DomainBatch]) -> dict[str, Any]:
        batches = self.checked(domain_batches)
        self.train_mode()
        a, b = self.draw_pair()
        pooled = pool(batches)
        with self.autocast():
            features = self.backbone(pooled.images).features
            per_domain = features.split([len(batch.labels) for batch in batches])
            head_a = self.domain_heads[a]
            meta_test = metareg_meta_loss(
                named_parameters(head_a),
                self.regulariser.by_name(),
                self._head_loss(head_a, per_domain[a].detach(), batches[a].labels),
                self._head_loss(head_a, per_domain[b].detach(), batches[b].labels),
                steps=self.hparams["meta_train_steps"],
                lr=self.hparams["inner_lr"],
            )
        self.outer_step(meta_test, "meta")
        self.regulariser.project()

        with self.autocast():
            domain_cls = torch.stack(
                [
                    bce(head(f), batch.labels)
                    for head, f, batch in zip(self.domain_heads, per_domain, batches, strict=True)
                ]
            ).mean()
            final_cls = bce(self.classifier(features.detach()), pooled.labels)
            penalty = self.regulariser(named_parameters(self.classifier))
        loss = domain_cls + final_cls + penalty
        self.observe({"meta_test": meta_test, "domain_cls": domain_cls, "final_cls": final_cls, "penalty": penalty})
        self.outer_step(loss)
        logs = {
            "loss": loss,
            "meta_test": meta_test,
            "domain_cls": domain_cls,
            "final_cls": final_cls,
            "penalty": penalty,
        }
        return {name: value.detach() for name, value in logs.items()}
