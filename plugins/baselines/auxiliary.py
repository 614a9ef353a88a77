"""``auxiliary``: binary and depth supervision on the RF-Meta networks, without meta-learning.

The "Auxiliary" row of RF-Meta's comparison: depth supervision in the style of Liu, Jourabloo, Liu,
"Learning Deep Models for Face Anti-Spoofing: Binary or Auxiliary Supervision" (CVPR 2018), where live
faces regress a pseudo-depth map and spoofs an all-zero map. fasbench puts that supervision on the
RF-Meta networks: the depth estimator on the backbone's multi-scale features (MSE against
the 32 x 32 maps) plus the classifier's BCE, both on the pooled source frames, weighted
``cls + depth_weight * depth`` with RF-Meta's W_depth = 10. Liu et al.'s rPPG branch needs video
sequences and is not part of this row. The score is the classifier's P(live), as for every fasbench
learner (Liu et al. score with the depth map's norm). So this learner is RF-Meta with the meta-learning
removed (and the losses averaged over the pooled batch). Optimiser as RF-Meta's (Adam, lr 1e-3).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch.nn.functional as F

from fasbench.interfaces import DomainBatch
from fasbench.learners import (
    COMMON_DEFAULTS,
    OPTIMIZER_DEFAULTS,
    OPTIMIZER_SEARCH_SPACE,
    NetworkLearner,
    bce,
    pool,
)
from fasbench.options import require_number


class Auxiliary(NetworkLearner):
    """Auxiliary depth supervision (Liu et al., CVPR 2018 style): BCE + W_depth x depth MSE, no meta-learning."""

    name = "auxiliary"
    uses_depth = True
    DEFAULTS = {**COMMON_DEFAULTS, **OPTIMIZER_DEFAULTS, "depth_weight": 10.0}
    SEARCH_SPACE = {**OPTIMIZER_SEARCH_SPACE, "depth_weight": ("log_uniform", 1.0, 100.0)}

    def check_hparams(self) -> None:
        require_number("hparams.depth_weight", self.hparams["depth_weight"])

    def update(self, domain_batches: Sequence[DomainBatch]) -> dict[str, Any]:
        batch = pool(self.checked(domain_batches))
        self.train_mode()
        with self.autocast():
            output = self.backbone(batch.images)
            cls = bce(self.classifier(output.features), batch.labels)
            depth = F.mse_loss(self.depth_head(output.depth_features).float(), batch.depths.float())
        loss = cls + self.hparams["depth_weight"] * depth
        self.observe({"cls": cls, "depth": depth})
        self.outer_step(loss)
        return {"loss": loss.detach(), "cls": cls.detach(), "depth": depth.detach()}
