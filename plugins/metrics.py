"""Built-in metrics: AUC, EER, HTER, TPR_at_FPR:<rate>, and ISO/IEC 30107-3 APCER, BPCER, ACER.

Pure numpy, vectorised over bootstrap resamples (``BatchMetric``). Every definition (FAR, FRR, EER on
discrete scores, TPR interpolation) is the one in ``fasbench.evaluation.roc``; a score >= threshold is
accepted as live. Values are fractions in [0, 1], not percentages.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

import numpy as np

from fasbench import hookimpl
from fasbench.errors import FasbenchError
from fasbench.evaluation import BatchMetric, ScoreSample, equal_error_rate, error_rates_at, roc_auc, tpr_at_fpr

if TYPE_CHECKING:
    from fasbench.plugins import Registrar


class AUC(BatchMetric):
    """Area under the ROC curve of P(live) (ties count one half, as scikit-learn's roc_auc_score)."""

    name = "AUC"
    higher_is_better = True

    def compute_batch(self, sample: ScoreSample, *, threshold: float | None = None) -> np.ndarray:
        return roc_auc(sample.curves)


class EER(BatchMetric):
    """Equal error rate: (FAR + FRR) / 2 at the distinct score minimising |FAR - FRR| (threshold-free)."""

    name = "EER"
    higher_is_better = False

    def compute_batch(self, sample: ScoreSample, *, threshold: float | None = None) -> np.ndarray:
        return equal_error_rate(sample.curves)[0]


class HTER(BatchMetric):
    """Half total error rate (FAR + FRR) / 2 at the policy's threshold (FAR: spoofs accepted; FRR: lives rejected)."""

    name = "HTER"
    higher_is_better = False

    def compute_batch(self, sample: ScoreSample, *, threshold: float | None = None) -> np.ndarray:
        far, frr = error_rates_at(sample.curves, self.checked_threshold(threshold))
        return (far + frr) / 2


class TPRAtFPR(BatchMetric):
    """True live acceptance rate at a false acceptance rate, e.g. TPR_at_FPR:1% (linear ROC interpolation).

    A family: the variant after ':' is the FPR, as a percentage ('1%', '0.1%') or a fraction ('0.05').
    """

    name = "TPR_at_FPR:"
    higher_is_better = True
    DEFAULT_VARIANTS = ("1%", "0.1%")

    def __init__(self, variant: str = "1%") -> None:
        self.target_fpr = _rate(variant)
        self.name = f"TPR_at_FPR:{variant}"

    def compute_batch(self, sample: ScoreSample, *, threshold: float | None = None) -> np.ndarray:
        return tpr_at_fpr(sample.curves, self.target_fpr)


class APCER(BatchMetric):
    """ISO/IEC 30107-3 APCER: the worst attack type's fraction of attacks accepted as live at the threshold.

    Attack types come from the scores file; without them all spoofs are one type (APCER = FAR).
    """

    name = "APCER"
    higher_is_better = False

    def compute_batch(self, sample: ScoreSample, *, threshold: float | None = None) -> np.ndarray:
        _, rates = sample.attack_acceptance(self.checked_threshold(threshold))
        return rates.max(axis=1)


class BPCER(BatchMetric):
    """ISO/IEC 30107-3 BPCER: the fraction of bona fide (live) samples rejected at the threshold (= FRR)."""

    name = "BPCER"
    higher_is_better = False

    def compute_batch(self, sample: ScoreSample, *, threshold: float | None = None) -> np.ndarray:
        return error_rates_at(sample.curves, self.checked_threshold(threshold))[1]


class ACER(BatchMetric):
    """ISO/IEC 30107-3 ACER: (APCER + BPCER) / 2 at the threshold, APCER being the worst attack type's."""

    name = "ACER"
    higher_is_better = False

    def compute_batch(self, sample: ScoreSample, *, threshold: float | None = None) -> np.ndarray:
        threshold = self.checked_threshold(threshold)
        return (
            APCER().compute_batch(sample, threshold=threshold) + BPCER().compute_batch(sample, threshold=threshold)
        ) / 2


def _rate(variant: str) -> float:
    """'1%' -> 0.01, '0.05' -> 0.05 (exactly as written, via Decimal); must lie in (0, 1)."""
    text = str(variant).strip()
    try:
        value = Decimal(text[:-1]) / 100 if text.endswith("%") else Decimal(text)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or not 0 < value < 1:
        raise FasbenchError(
            f"TPR_at_FPR needs a false positive rate in (0, 1) after ':', such as 'TPR_at_FPR:1%' or "
            f"'TPR_at_FPR:0.001', got {variant!r}"
        )
    return float(value)


@hookimpl
def fasbench_register(registry: Registrar) -> None:
    for metric in (AUC, EER, HTER, TPRAtFPR, APCER, BPCER, ACER):
        registry.add("metrics", metric.name, metric)
