"""ROC primitives, vectorised over weightings of the same scores (one weighting per bootstrap resample).

Definitions used everywhere in fasbench (a score is P(live); a score >= threshold is accepted as live):

- FAR (false acceptance rate, = APCER over all attacks, = FPR) = weighted fraction of spoofs accepted;
- FRR (false rejection rate, = BPCER, = 1 - TPR) = weighted fraction of lives rejected;
- the ROC has one point per distinct score used as the threshold, plus the origin (threshold above every
  score), exactly the points of scikit-learn's ``roc_curve(..., drop_intermediate=False)``;
- EER: the ROC point (distinct score as threshold) minimising |FAR - FRR|, ties going to the highest
  threshold (the first such point, as ``argmin`` over scikit-learn's curve finds it); the EER reported is
  (FAR + FRR) / 2 there and the EER threshold is that score, so HTER at the EER threshold equals the EER;
- TPR at a target FPR: linear interpolation between ROC points, taking the highest TPR where the curve
  is vertical at exactly that FPR (``np.interp(target, fpr, tpr)`` on scikit-learn's curve).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from fasbench.errors import FasbenchError
from fasbench.evaluation.table import LIVE_ATTACK_TYPE, checked_scores


@dataclass(frozen=True)
class RocCurves:
    """ROC curves of B weightings: column 0 is the origin, column k >= 1 the threshold ``thresholds[k - 1]``."""

    thresholds: np.ndarray  # K distinct scores, descending
    accepted_live: np.ndarray  # B x (K + 1) weighted count of lives with score >= threshold
    accepted_spoof: np.ndarray  # B x (K + 1) weighted count of spoofs with score >= threshold
    n_live: np.ndarray  # B total live weight
    n_spoof: np.ndarray  # B total spoof weight

    @cached_property
    def fpr(self) -> np.ndarray:
        """B x (K + 1) false positive (false acceptance) rate at each ROC point."""
        return self.accepted_spoof / self.n_spoof[:, None]

    @cached_property
    def tpr(self) -> np.ndarray:
        """B x (K + 1) true positive (live acceptance) rate at each ROC point."""
        return self.accepted_live / self.n_live[:, None]

    def column_at(self, threshold: float) -> int:
        """The ROC column of ``threshold``: how many distinct scores are >= it."""
        return int(np.searchsorted(-self.thresholds, -threshold, side="right"))


class RankedScores:
    """The weight-free part of a sample: validated columns, the sort by score, tie groups, attack types.

    Computed once and shared by every weighting (bootstrap resample) of the same scores.
    """

    def __init__(self, score: np.ndarray, label: np.ndarray, attack_type: np.ndarray | None = None) -> None:
        self.score, self.label, self.attack_type = checked_scores(score, label, attack_type)

    @cached_property
    def groups(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(thresholds, live_rows, spoof_rows, lives_reached, spoofs_reached)``.

        Distinct scores descending; the rows of each class by descending score; per distinct score, how
        many lives and spoofs score at least that much.
        """
        order = np.argsort(-self.score, kind="stable")
        ordered = self.score[order]
        group_ends = np.append(np.flatnonzero(ordered[1:] != ordered[:-1]), len(ordered) - 1)
        is_live = self.label[order] == 1
        lives_reached = np.cumsum(is_live)[group_ends]
        spoofs_reached = (group_ends + 1) - lives_reached
        return ordered[group_ends], order[is_live], order[~is_live], lives_reached, spoofs_reached

    @cached_property
    def spoof_types(self) -> tuple[np.ndarray, np.ndarray]:
        """``(names, membership)``: the attack types of the spoofs and an n x T 0/1 matrix of who is which."""
        names, codes = np.unique(self.attack_type, return_inverse=True)
        keep = names != LIVE_ATTACK_TYPE
        membership = np.zeros((len(self.score), len(names)))
        membership[np.arange(len(self.score)), codes] = 1.0
        return names[keep], membership[:, keep]


class ScoreSample:
    """Scores, labels (1 = live) and attack types under B weightings of their rows.

    Row r of ``weights`` gives each score a multiplicity (a bootstrap resample: how often each video was
    drawn); without weights there is one weighting of ones. ``reweighted`` copies share the sort, so many
    resamples cost one sort.
    """

    def __init__(
        self,
        score: np.ndarray,
        label: np.ndarray,
        attack_type: np.ndarray | None = None,
        weights: np.ndarray | None = None,
    ) -> None:
        self._set(RankedScores(score, label, attack_type), weights)

    def _set(self, ranked: RankedScores, weights: np.ndarray | None) -> None:
        self.ranked = ranked
        self.score, self.label, self.attack_type = ranked.score, ranked.label, ranked.attack_type
        self.weights = self._checked_weights(weights)
        self._acceptance: dict[float, tuple[np.ndarray, np.ndarray]] = {}

    def reweighted(self, weights: np.ndarray) -> ScoreSample:
        """The same scores under other weightings (B x n), sharing the sort."""
        sample = ScoreSample.__new__(ScoreSample)
        sample._set(self.ranked, weights)
        return sample

    @property
    def n_weightings(self) -> int:
        return len(self.weights)

    def _checked_weights(self, weights: np.ndarray | None) -> np.ndarray:
        if weights is None:
            weights = np.ones((1, len(self.score)))
        weights = np.asarray(weights, dtype=np.float64)
        if weights.ndim != 2 or weights.shape[1] != len(self.score):
            raise FasbenchError(f"weights must have shape (B, {len(self.score)}), got {weights.shape}")
        if (weights < 0).any():
            raise FasbenchError("weights must be non-negative")
        is_live = (self.label == 1).astype(np.float64)
        for name, mask in (("live (label 1)", is_live), ("spoof (label 0)", 1 - is_live)):
            if not (weights @ mask > 0).all():
                present = "spoof" if name.startswith("live") else "live"
                raise FasbenchError(
                    f"the scores contain no {name} sample (only {present} ones, {len(self.score)} in all): "
                    "AUC, EER, HTER and the error rates need both live and spoof samples; check the labels or "
                    "the split that was scored"
                )
        return weights

    @cached_property
    def curves(self) -> RocCurves:
        """The weighted ROC curves (computed once per sample)."""
        thresholds, live_rows, spoof_rows, lives_reached, spoofs_reached = self.ranked.groups
        accepted = []
        for rows, reached in ((live_rows, lives_reached), (spoof_rows, spoofs_reached)):
            cumulative = np.zeros((self.n_weightings, len(rows) + 1))
            np.cumsum(self.weights[:, rows], axis=1, out=cumulative[:, 1:])
            accepted.append(cumulative[:, np.concatenate(([0], reached))])
        accepted_live, accepted_spoof = accepted
        return RocCurves(thresholds, accepted_live, accepted_spoof, accepted_live[:, -1], accepted_spoof[:, -1])

    def attack_acceptance(self, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """``(names, rates)``: per attack type, the weighted fraction accepted at ``threshold`` (B x T rates).

        A type with no weight in a weighting gets NaN there (cannot happen with type-stratified resampling).
        """
        if threshold not in self._acceptance:
            names, membership = self.ranked.spoof_types
            accepted = (self.score >= threshold)[:, None] * membership
            with np.errstate(invalid="ignore", divide="ignore"):
                self._acceptance[threshold] = names, (self.weights @ accepted) / (self.weights @ membership)
        return self._acceptance[threshold]


def roc_auc(curves: RocCurves) -> np.ndarray:
    """Area under each ROC curve (trapezoids; ties count one half, as ``roc_auc_score``)."""
    width = np.diff(curves.accepted_spoof, axis=1)
    height_sum = curves.accepted_live[:, 1:] + curves.accepted_live[:, :-1]
    return np.einsum("ij,ij->i", width, height_sum) / (2 * curves.n_live * curves.n_spoof)


def equal_error_rate(curves: RocCurves) -> tuple[np.ndarray, np.ndarray]:
    """``(eer, threshold)`` per weighting; see the module docstring for how discrete scores are handled.

    |FAR - FRR| is compared as |FA * P - FR * N| (exact for integer weights), so ties are true ties.
    """
    n_live, n_spoof = curves.n_live[:, None], curves.n_spoof[:, None]
    false_accepts = curves.accepted_spoof[:, 1:]
    false_rejects = n_live - curves.accepted_live[:, 1:]
    gap = np.abs(false_accepts * n_live - false_rejects * n_spoof)
    column = np.argmin(gap, axis=1)
    rows = np.arange(len(column))
    far = false_accepts[rows, column] / curves.n_spoof
    frr = false_rejects[rows, column] / curves.n_live
    return (far + frr) / 2, curves.thresholds[column]


def error_rates_at(curves: RocCurves, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """``(far, frr)`` per weighting when scores >= ``threshold`` are accepted as live."""
    column = curves.column_at(threshold)
    far = curves.accepted_spoof[:, column] / curves.n_spoof
    frr = 1 - curves.accepted_live[:, column] / curves.n_live
    return far, frr


def tpr_at_fpr(curves: RocCurves, target_fpr: float) -> np.ndarray:
    """TPR at ``target_fpr`` per weighting, interpolated linearly on the ROC (see the module docstring)."""
    if not 0 <= target_fpr <= 1:
        raise FasbenchError(f"a target false positive rate must be in [0, 1], got {target_fpr}")
    fpr, tpr = curves.fpr, curves.tpr
    below = (fpr <= target_fpr).sum(axis=1) - 1  # last point at or under the target (the origin always is)
    above = np.minimum(below + 1, fpr.shape[1] - 1)
    rows = np.arange(len(below))
    x0, x1, y0, y1 = fpr[rows, below], fpr[rows, above], tpr[rows, below], tpr[rows, above]
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(x1 > x0, (y1 - y0) / (x1 - x0), 0.0)
    return y0 + slope * (target_fpr - x0)
