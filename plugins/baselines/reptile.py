"""``reptile``: Reptile (Nichol, Achiam, Schulman, "On First-Order Meta-Learning Algorithms", 2018) across sources.

Each step draws one source domain (the learner's own seeded generator), takes ``inner_steps`` plain SGD
steps (``inner_lr``) of the classifier's BCE on that domain's batch, from theta to phi, over the whole
network (backbone + classifier), and moves theta towards phi: ``theta + outer_step_size * (phi - theta)``
(the paper's Algorithm 1). The outer move is an SGD step on the "gradient" theta - phi, so the
data-parallel runner averages the phis across ranks like any gradient. Every inner step reuses the
domain's one batch of the step (the runner gives one batch per domain and step). BatchNorm running
statistics are those the inner steps leave (they are buffers, not interpolated).

Defaults (fasbench's reading of the paper, which has no domain-generalization setting): Algorithm 1
writes the inner loop as SGD, and the authors' SGD example that accompanies the paper (sine-wave
regression, one task per outer step) uses 5 inner SGD steps of size 0.02 and an outer step size of 0.1,
annealed linearly to 0 (``epsilon_t = epsilon * (1 - t / budget)`` at step t of the run's budget); those
are the defaults here (``anneal: false`` keeps epsilon constant; so does a learner stepped without a
budget). The paper's few-shot experiments (Appendix A) use an Adam inner loop
(lr 1e-3, beta1 = 0) and epsilon = 1 with 5 tasks averaged per outer step; with one domain per step
epsilon = 1 would be plain sequential training. On the RF-Meta networks, SGD at 1e-3 barely moved
(toy check: AUC 0.69 after 40 steps against 0.95 at 0.02). The RF-Meta paper publishes no settings for
Reptile.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from fasbench_plugins.baselines.meta_steps import reptile_outer_gradient

from fasbench.interfaces import DomainBatch
from fasbench.learners import COMMON_DEFAULTS, NetworkLearner, bce
from fasbench.options import require_flag, require_number
from fasbench.training import build_optimizer


class Reptile(NetworkLearner):
    """Reptile (Nichol et al. 2018): k SGD steps on one sampled domain, then interpolate towards them."""

    name = "reptile"
    DEFAULTS = {**COMMON_DEFAULTS, "inner_steps": 5, "inner_lr": 0.02, "outer_step_size": 0.1, "anneal": True}
    SEARCH_SPACE = {
        "inner_steps": ("int_uniform", 1, 10),
        "inner_lr": ("log_uniform", 1e-4, 1e-1),
        "outer_step_size": ("log_uniform", 1e-2, 1.0),
    }

    def check_hparams(self) -> None:
        hp = self.hparams
        require_number("hparams.inner_steps", hp["inner_steps"], minimum=1, integer=True)
        require_number("hparams.inner_lr", hp["inner_lr"])
        require_number("hparams.outer_step_size", hp["outer_step_size"])
        require_flag("hparams.anneal", hp["anneal"])

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"outer": build_optimizer(self.trainable(), name="sgd", lr=self.hparams["outer_step_size"])}

    def outer_step_size(self) -> float:
        """epsilon for the coming step: annealed linearly from ``outer_step_size`` to 0 over the budget."""
        epsilon = float(self.hparams["outer_step_size"])
        if not self.hparams["anneal"] or self.budget is None:
            return epsilon
        return epsilon * max(0.0, 1.0 - self.step / self.budget)

    def draw_domain(self) -> int:
        """The position of the domain this step adapts to (the learner's own generator)."""
        return int(torch.randint(self.num_domains, (1,), generator=self.generator))

    def update(self, domain_batches: Sequence[DomainBatch]) -> dict[str, Any]:
        batch = self.checked(domain_batches)[self.draw_domain()]
        self.train_mode()

        def inner_loss() -> torch.Tensor:
            with self.autocast():
                return bce(self.binary_network(batch.images), batch.labels)

        hp = self.hparams
        last = reptile_outer_gradient(self.trainable(), inner_loss, steps=hp["inner_steps"], lr=hp["inner_lr"])
        self.observe({"inner": last})
        outer = self._optimizers["outer"]
        for group in outer.param_groups:
            group["lr"] = self.outer_step_size()
        outer.step()
        return {"loss": last, "domain": torch.tensor(batch.domain)}
