"""The built-in model-selection rules: ``last``, ``source_val``, ``oracle``, ``oracle_auc_hter``,
``last_k_mean`` (and ``last_k_mean:K``), ``oracle_last``. Each only chooses evaluations
(``fasbench.interfaces.SelectionRule``); the reported metrics are the mean of the chosen evaluations' metrics
(``fasbench.selection.apply_rule``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fasbench import hookimpl
from fasbench.errors import FasbenchError
from fasbench.interfaces import Evaluation, SelectionRule

if TYPE_CHECKING:
    from fasbench.plugins import Registrar


def _best(evaluations: Sequence[Evaluation], value: Any) -> list[int]:
    """The position of the lowest ``value``; ties go to the later evaluation."""
    best = min(range(len(evaluations)), key=lambda i: (value(evaluations[i]), -i))
    return [best]


class Last(SelectionRule):
    """The last evaluation (the end of training)."""

    name = "last"
    description = "the last checkpoint"

    def select(self, evaluations: Sequence[Evaluation]) -> list[int]:
        return [len(evaluations) - 1]


class BestSourceValidation(SelectionRule):
    """The checkpoint with the lowest source-validation EER (ties: the later one)."""

    name = "source_val"
    description = "the checkpoint with the best source-validation EER (ties to the later step)"
    needs_validation = True

    def select(self, evaluations: Sequence[Evaluation]) -> list[int]:
        return _best(evaluations, lambda e: e.source_val["EER"])


class Oracle(SelectionRule):
    """The checkpoint with the lowest target HTER (ties: the later one): peeks at the target's labels."""

    name = "oracle"
    description = "the checkpoint with the best target HTER (oracle: chosen on the target domain)"
    uses_target = True

    def select(self, evaluations: Sequence[Evaluation]) -> list[int]:
        return _best(evaluations, lambda e: e.target["HTER"])


class OracleAUCMinusHTER(SelectionRule):
    """The checkpoint with the highest target AUC - HTER (ties: the later one): SA-FAS's and GAC-FAS's code."""

    name = "oracle_auc_hter"
    description = "the checkpoint with the best target AUC - HTER (oracle; SA-FAS, GAC-FAS, SSAN)"
    uses_target = True

    def select(self, evaluations: Sequence[Evaluation]) -> list[int]:
        return _best(evaluations, lambda e: e.target["HTER"] - e.target["AUC"])


class LastKMean(SelectionRule):
    """The mean of the metrics of the last k evaluations (SA-FAS and GAC-FAS report k = 10)."""

    name = "last_k_mean"
    description = "the mean of the metrics of the last k evaluations (k = 10: SA-FAS, GAC-FAS)"

    def __init__(self, variant: str | None = None) -> None:
        try:
            self.k = int(variant) if variant else 10
        except ValueError:
            raise FasbenchError(f"last_k_mean:K needs a whole number K of evaluations, got {variant!r}") from None
        if self.k < 1:
            raise FasbenchError(f"last_k_mean:K needs K >= 1, got {self.k}")

    def select(self, evaluations: Sequence[Evaluation]) -> list[int]:
        return list(range(max(0, len(evaluations) - self.k), len(evaluations)))


class OracleLast(SelectionRule):
    """DomainBed's oracle: the last checkpoint, no early stopping; across a sweep's trials, the trial with the
    best target HTER (marked as an oracle)."""

    name = "oracle_last"
    description = "the last checkpoint; across sweep trials chosen on the target (DomainBed's oracle)"
    uses_target = True

    def select(self, evaluations: Sequence[Evaluation]) -> list[int]:
        return [len(evaluations) - 1]


RULES = (Last, BestSourceValidation, Oracle, OracleAUCMinusHTER, LastKMean, OracleLast)


@hookimpl
def fasbench_register(registry: Registrar) -> None:
    for rule in RULES:
        registry.add("selections", rule.name, rule)
    registry.add("selections", "last_k_mean:", LastKMean)  # last_k_mean:5 = the mean of the last 5
