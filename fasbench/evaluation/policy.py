"""Threshold policies: where the decision threshold for HTER, APCER, BPCER and ACER comes from.

Every result names its policy, because the field's numbers differ mostly here:
``test_eer`` is what DG-FAS papers report (the target's own EER threshold, so HTER ~ EER; it peeks at
the test labels), ``source_val`` is the honest one (EER threshold of held-out source-domain data),
``fixed:<t>`` a threshold chosen in advance (``fixed:0.5`` for P(live)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fasbench.errors import FasbenchError, UnknownNameError
from fasbench.evaluation.roc import ScoreSample, equal_error_rate

POLICY_NAMES = ("test_eer", "source_val", "fixed:0.5")  # "fixed:" takes any number


@dataclass(frozen=True)
class ThresholdPolicy:
    """A parsed policy: its canonical name and, for ``fixed:``, the threshold."""

    name: str
    fixed_threshold: float | None = None

    @property
    def needs_source_val(self) -> bool:
        return self.name == "source_val"

    @property
    def description(self) -> str:
        if self.name == "test_eer":
            return (
                "threshold at the EER of the evaluated scores themselves (uses the test labels; how the DG-FAS "
                "literature reports HTER, kept for comparability)"
            )
        if self.name == "source_val":
            return "threshold at the EER of held-out source-domain validation scores (no target information)"
        return f"fixed threshold {self.fixed_threshold:g} on P(live)"


def parse_policy(text: str) -> ThresholdPolicy:
    """``"test_eer"``, ``"source_val"`` or ``"fixed:<number>"``; anything else is refused with a suggestion."""
    if text in ("test_eer", "source_val"):
        return ThresholdPolicy(text)
    prefix, sep, value = str(text).partition(":")
    if prefix == "fixed" and sep:
        try:
            threshold = float(value)
        except ValueError:
            threshold = math.nan
        if not math.isfinite(threshold):
            raise FasbenchError(f"threshold policy {text!r}: 'fixed:' needs a finite number, e.g. 'fixed:0.5'")
        return ThresholdPolicy(f"fixed:{threshold:g}", threshold)
    raise UnknownNameError("threshold policy", text, POLICY_NAMES, hint="'fixed:' takes any number")


def choose_threshold(policy: ThresholdPolicy, evaluated: ScoreSample, source_val: ScoreSample | None) -> float:
    """The threshold ``policy`` gives for ``evaluated`` (the EER threshold of the right set, or the fixed one)."""
    if policy.fixed_threshold is not None:
        return policy.fixed_threshold
    if policy.needs_source_val:
        if source_val is None:
            raise FasbenchError(
                "threshold policy 'source_val' needs held-out source-domain validation scores "
                "(evaluate(..., source_val=table); on the command line --source-val PATH)"
            )
        evaluated = source_val
    _, threshold = equal_error_rate(evaluated.curves)
    return float(threshold[0])
