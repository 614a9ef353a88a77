"""``binary_cnn``: the RF-Meta networks trained with plain binary cross-entropy on the pooled sources.

The "Binary CNN" row of RF-Meta's comparison (Shao, Lan, Yuen, AAAI 2020, Tables 1-3): no domain
labels, no depth, no meta-learning; every step is one Adam step on the BCE of all source frames at once
(the domains' k live + k spoof frames concatenated, so BatchNorm sees the pooled batch). The RF-Meta paper
does not publish the settings of its baselines; fasbench trains every baseline with RF-Meta's own
optimiser (Adam, lr 1e-3, betas 0.9/0.999) and k = 10 so that rows differ by method only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fasbench.interfaces import DomainBatch
from fasbench.learners import (
    COMMON_DEFAULTS,
    OPTIMIZER_DEFAULTS,
    OPTIMIZER_SEARCH_SPACE,
    NetworkLearner,
    bce,
    pool,
)


class BinaryCNN(NetworkLearner):
    """Binary CNN: backbone + classifier head, BCE on the pooled source domains (RF-Meta's B_CNN row)."""

    name = "binary_cnn"
    DEFAULTS = {**COMMON_DEFAULTS, **OPTIMIZER_DEFAULTS}
    SEARCH_SPACE = dict(OPTIMIZER_SEARCH_SPACE)

    def update(self, domain_batches: Sequence[DomainBatch]) -> dict[str, Any]:
        batch = pool(self.checked(domain_batches))
        self.train_mode()
        with self.autocast():
            cls = bce(self.binary_network(batch.images), batch.labels)
        self.observe({"cls": cls})
        self.outer_step(cls)
        return {"loss": cls.detach(), "cls": cls.detach()}
