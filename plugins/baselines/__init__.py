"""Baseline learners on the RF-Meta networks: ``binary_cnn``, ``auxiliary``, ``mldg``, ``reptile``, ``metareg``.

Each is one module; they share ``fasbench.learners.NetworkLearner`` with ``rfmeta``
(networks, checks, scoring, checkpoints) and the algorithm cores in ``meta_steps``. Paper defaults and
their sources: each module's docstring and registry.yaml ``learners``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fasbench_plugins.baselines.auxiliary import Auxiliary
from fasbench_plugins.baselines.binary_cnn import BinaryCNN
from fasbench_plugins.baselines.metareg import MetaReg
from fasbench_plugins.baselines.mldg import MLDG
from fasbench_plugins.baselines.reptile import Reptile

from fasbench import hookimpl

if TYPE_CHECKING:
    from fasbench.plugins import Registrar

LEARNERS = (BinaryCNN, Auxiliary, MLDG, Reptile, MetaReg)
__all__ = ["LEARNERS", "MLDG", "Auxiliary", "BinaryCNN", "MetaReg", "Reptile"]


@hookimpl
def fasbench_register(registry: Registrar) -> None:
    for learner in LEARNERS:
        registry.add("learners", learner.name, learner)
