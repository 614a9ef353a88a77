"""``BatchMetric``: a ``Metric`` computed for every weighting of a ``ScoreSample`` at once.

Bootstrap resamples are weightings of the same scores, so a batch metric gets all of them in one
vectorised call; ``compute`` (the plain ``Metric`` contract) is the one-weighting case. A metric that
only implements ``Metric.compute`` still works in ``evaluate``, its bootstrap just loops.
"""

from __future__ import annotations

import math
from abc import abstractmethod

import numpy as np

from fasbench.errors import FasbenchError
from fasbench.evaluation.roc import ScoreSample
from fasbench.interfaces import Metric


class BatchMetric(Metric):
    """Implement ``compute_batch``; ``compute`` follows from it."""

    @abstractmethod
    def compute_batch(self, sample: ScoreSample, *, threshold: float | None = None) -> np.ndarray:
        """One value per weighting of ``sample`` (shape B); a score >= threshold is accepted as live."""

    def compute(
        self,
        scores: np.ndarray,
        labels: np.ndarray,
        *,
        threshold: float | None = None,
        attack_types: np.ndarray | None = None,
    ) -> float:
        return float(self.compute_batch(ScoreSample(scores, labels, attack_types), threshold=threshold)[0])

    def checked_threshold(self, threshold: float | None) -> float:
        """``threshold`` as a float, refusing a missing or non-finite one with the metric's name."""
        if threshold is None or not math.isfinite(threshold):
            raise FasbenchError(
                f"metric {self.name!r} needs a finite decision threshold on P(live), got {threshold!r}; "
                "pass threshold=... or evaluate it under a threshold policy"
            )
        return float(threshold)
