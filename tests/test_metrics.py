"""The built-in metric plugins: registration, hand-computed values, ISO/IEC 30107-3 rates, the Metric contract."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from fasbench.errors import FasbenchError, UnknownNameError
from fasbench.evaluation import default_metric_names
from fasbench.interfaces import Metric
from fasbench.plugins import installed_plugins

# Lives 0.9, 0.8, 0.4; spoofs 0.7 (print), 0.4, 0.2, 0.1 (replay).
SCORES = np.array([0.9, 0.8, 0.4, 0.7, 0.4, 0.2, 0.1])
LABELS = np.array([1, 1, 1, 0, 0, 0, 0])
ATTACKS = np.array(["live", "live", "live", "print", "replay", "replay", "replay"])


def metric(name: str) -> Metric:
    return installed_plugins().build("metrics", {"type": name})


def test_built_in_metrics_are_registered_with_their_directions():
    plugins = installed_plugins()
    assert {"AUC", "EER", "HTER", "TPR_at_FPR:", "APCER", "BPCER", "ACER"} <= set(plugins.names("metrics"))
    assert {"TPR_at_FPR:1%", "TPR_at_FPR:0.1%"} <= set(default_metric_names(plugins))
    higher = {name: metric(name).higher_is_better for name in ("AUC", "TPR_at_FPR:1%", "EER", "HTER", "ACER")}
    assert higher == {"AUC": True, "TPR_at_FPR:1%": True, "EER": False, "HTER": False, "ACER": False}


@pytest.mark.parametrize(
    ("name", "threshold", "expected"),
    [
        ("AUC", None, 10.5 / 12),
        ("EER", None, 7 / 24),  # at 0.7: FAR 1/4, FRR 1/3
        ("HTER", 0.5, (1 / 4 + 1 / 3) / 2),
        ("HTER", 0.4, (2 / 4 + 0) / 2),
        ("TPR_at_FPR:37.5%", None, 5 / 6),
        ("TPR_at_FPR:0.375", None, 5 / 6),
        ("APCER", 0.5, 1.0),  # print: 1 of 1 accepted; replay: 0 of 3 (FAR would be 1/4)
        ("APCER", 0.3, 1.0),
        ("APCER", 0.75, 0.0),
        ("BPCER", 0.5, 1 / 3),
        ("ACER", 0.5, (1 + 1 / 3) / 2),
        ("ACER", 0.35, (1 + 0) / 2),  # replay: 1 of 3 accepted, print still 1 of 1
    ],
)
def test_hand_computed_values(name, threshold, expected):
    value = metric(name).compute(SCORES, LABELS, threshold=threshold, attack_types=ATTACKS)
    assert value == pytest.approx(expected)


def test_apcer_without_attack_types_is_the_false_acceptance_rate():
    assert metric("APCER").compute(SCORES, LABELS, threshold=0.5) == pytest.approx(1 / 4)


def test_auc_matches_scikit_learn_on_random_scores():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 500)
    scores = np.round(rng.random(500) * 0.7 + 0.3 * labels, 2)  # ties on purpose
    assert metric("AUC").compute(scores, labels) == pytest.approx(roc_auc_score(labels, scores))


def test_threshold_metrics_refuse_a_missing_threshold():
    for name in ("HTER", "APCER", "BPCER", "ACER"):
        with pytest.raises(FasbenchError, match=f"metric '{name}' needs a finite decision threshold"):
            metric(name).compute(SCORES, LABELS)


def test_bad_names_and_rates_are_refused():
    with pytest.raises(FasbenchError, match="false positive rate in \\(0, 1\\)"):
        metric("TPR_at_FPR:150%")
    with pytest.raises(FasbenchError, match="got 'one'"):
        metric("TPR_at_FPR:one")
    with pytest.raises(UnknownNameError, match="did you mean 'HTER'"):
        metric("HTRE")


def test_fpr_variants_are_parsed_exactly():
    assert metric("TPR_at_FPR:0.1%").target_fpr == 0.001
    assert metric("TPR_at_FPR:1%").target_fpr == 0.01
    assert metric("TPR_at_FPR:1%").name == "TPR_at_FPR:1%"
