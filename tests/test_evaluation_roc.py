"""ROC primitives (fasbench.evaluation.roc) against scikit-learn and hand-computed values."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score, roc_curve

from fasbench.errors import FasbenchError
from fasbench.evaluation import ScoreSample, equal_error_rate, error_rates_at, roc_auc, tpr_at_fpr

# Hand-built example: lives 0.9, 0.8, 0.4; spoofs 0.7, 0.4 (tied with a live), 0.2, 0.1.
SCORES = np.array([0.9, 0.8, 0.4, 0.7, 0.4, 0.2, 0.1])
LABELS = np.array([1, 1, 1, 0, 0, 0, 0])


def curves_of(scores, labels, weights=None):
    return ScoreSample(np.asarray(scores), np.asarray(labels), weights=weights).curves


def scored_sets(max_size=40, ties=True):
    """(scores, labels) with both classes; scores on a coarse grid to force ties, or continuous."""
    score = st.integers(0, 8).map(lambda v: v / 8) if ties else st.floats(0, 1, allow_nan=False)
    return (
        st.lists(st.tuples(score, st.integers(0, 1)), min_size=2, max_size=max_size)
        .filter(lambda rows: len({label for _, label in rows}) == 2)
        .map(lambda rows: (np.array([s for s, _ in rows]), np.array([lab for _, lab in rows])))
    )


def reference_eer(scores, labels):
    """EER by definition on scikit-learn's ROC points, in exact fractions: first point minimising |FAR - FRR|."""
    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    n_live, n_spoof = int(labels.sum()), int(len(labels) - labels.sum())
    best = None
    for f, t, threshold in zip(fpr[1:], tpr[1:], thresholds[1:], strict=True):  # [0] is the +inf origin
        far, frr = Fraction(round(f * n_spoof), n_spoof), 1 - Fraction(round(t * n_live), n_live)
        if best is None or abs(far - frr) < best[0]:
            best = (abs(far - frr), (far + frr) / 2, threshold)
    return float(best[1]), best[2]


def test_hand_computed_example():
    curves = curves_of(SCORES, LABELS)
    assert roc_auc(curves)[0] == pytest.approx(10.5 / 12)  # the tied pair counts one half
    eer, threshold = equal_error_rate(curves)
    assert eer[0] == pytest.approx(7 / 24) and threshold[0] == 0.7  # FAR 1/4, FRR 1/3 at 0.7
    far, frr = error_rates_at(curves, 0.4)  # >= accepts the tied live and spoof at 0.4
    assert (far[0], frr[0]) == (0.5, 0.0)
    far, frr = error_rates_at(curves, 0.45)
    assert far[0] == 0.25 and frr[0] == pytest.approx(1 / 3)
    assert tpr_at_fpr(curves, 0.25)[0] == pytest.approx(2 / 3)  # exactly on a point
    assert tpr_at_fpr(curves, 0.1)[0] == pytest.approx(2 / 3)  # flat segment
    assert tpr_at_fpr(curves, 0.375)[0] == pytest.approx(5 / 6)  # halfway between (1/4, 2/3) and (1/2, 1)
    assert tpr_at_fpr(curves, 0.0)[0] == pytest.approx(2 / 3)  # top of the vertical segment at FPR 0


def test_curve_points_are_scikit_learns():
    fpr, tpr, thresholds = roc_curve(LABELS, SCORES, drop_intermediate=False)
    curves = curves_of(SCORES, LABELS)
    np.testing.assert_allclose(curves.fpr[0], fpr)
    np.testing.assert_allclose(curves.tpr[0], tpr)
    np.testing.assert_array_equal(curves.thresholds, thresholds[1:])


@settings(max_examples=50, deadline=None)
@given(scored_sets(ties=True))
def test_auc_eer_tpr_against_scikit_learn_with_ties(data):
    scores, labels = data
    curves = curves_of(scores, labels)
    assert roc_auc(curves)[0] == pytest.approx(roc_auc_score(labels, scores))
    eer, threshold = equal_error_rate(curves)
    expected_eer, expected_threshold = reference_eer(scores, labels)
    assert eer[0] == pytest.approx(expected_eer) and threshold[0] == expected_threshold
    fpr, tpr, _ = roc_curve(labels, scores)
    for target in (0.01, 0.25, 0.5):
        assert tpr_at_fpr(curves, target)[0] == pytest.approx(np.interp(target, fpr, tpr))


@settings(max_examples=30, deadline=None)
@given(scored_sets(ties=False))
def test_auc_and_eer_against_scikit_learn_continuous(data):
    scores, labels = data
    curves = curves_of(scores, labels)
    assert roc_auc(curves)[0] == pytest.approx(roc_auc_score(labels, scores))
    assert equal_error_rate(curves)[0][0] == pytest.approx(reference_eer(scores, labels)[0])


@settings(max_examples=50, deadline=None)
@given(scored_sets(ties=True))
def test_hter_at_eer_threshold_equals_eer(data):
    scores, labels = data
    curves = curves_of(scores, labels)
    eer, threshold = equal_error_rate(curves)
    far, frr = error_rates_at(curves, threshold[0])
    assert (far[0] + frr[0]) / 2 == pytest.approx(eer[0])


def test_hter_equals_eer_on_separable_and_fully_tied_scores():
    separable = curves_of([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0])
    eer, threshold = equal_error_rate(separable)
    assert eer[0] == 0 and threshold[0] == 0.8 and error_rates_at(separable, 0.8) == (0, 0)
    tied = curves_of([0.5] * 5, [1, 0, 0, 1, 0])  # one threshold: everything accepted
    eer, threshold = equal_error_rate(tied)
    far, frr = error_rates_at(tied, threshold[0])
    assert eer[0] == 0.5 and (far[0], frr[0]) == (1.0, 0.0)


@settings(max_examples=30, deadline=None)
@given(scored_sets(ties=True, max_size=20), st.integers(0, 2**32 - 1))
def test_weighted_curves_equal_repeated_rows(data, seed):
    """A weighting (bootstrap multiplicities) gives what repeating each row that often gives."""
    scores, labels = data
    counts = np.random.default_rng(seed).integers(1, 4, size=(3, len(scores))).astype(float)
    weighted = curves_of(scores, labels, counts)
    for row, weights in enumerate(counts):
        rows = np.repeat(np.arange(len(scores)), weights.astype(int))
        assert roc_auc(weighted)[row] == pytest.approx(roc_auc_score(labels, scores, sample_weight=weights))
        plain = curves_of(scores[rows], labels[rows])
        assert equal_error_rate(weighted)[0][row] == pytest.approx(equal_error_rate(plain)[0][0])
        assert tpr_at_fpr(weighted, 0.3)[row] == pytest.approx(tpr_at_fpr(plain, 0.3)[0])


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        ([0.1, 0.2], [1, 1], "no spoof"),
        ([0.1, 0.2], [0, 0], "no live"),
        ([], [], "no frame was scored"),
        ([0.1, np.nan], [0, 1], "NaN or infinite"),
        ([0.1, np.inf], [0, 1], "NaN or infinite"),
        ([0.1, 0.2, 0.3], [0, 1], "differ in length"),
        ([0.1, 0.2], [0, 2], "neither 0 .spoof. nor 1 .live."),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(scores, labels, message):
    with pytest.raises(FasbenchError, match=message):
        ScoreSample(np.array(scores, dtype=float), np.array(labels))


def test_target_fpr_out_of_range_is_refused():
    with pytest.raises(FasbenchError, match=r"in \[0, 1\]"):
        tpr_at_fpr(curves_of(SCORES, LABELS), 1.5)
