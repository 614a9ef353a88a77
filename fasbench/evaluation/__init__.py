"""Evaluation core: score tables and files, ROC primitives, threshold policies, ``evaluate``.

Pure numpy (no torch). The metric plugins (``fasbench_plugins.metrics``) build on the primitives here;
the core never imports them, it looks metric names up in the plugins.
"""

from fasbench.evaluation.batch_metric import BatchMetric
from fasbench.evaluation.evaluate import LEVELS, build_metrics, default_metric_names, evaluate
from fasbench.evaluation.policy import POLICY_NAMES, ThresholdPolicy, choose_threshold, parse_policy
from fasbench.evaluation.roc import RocCurves, ScoreSample, equal_error_rate, error_rates_at, roc_auc, tpr_at_fpr
from fasbench.evaluation.scores_file import read_scores, write_scores
from fasbench.evaluation.table import REDUCTIONS, ScoreTable

__all__ = [
    "LEVELS",
    "POLICY_NAMES",
    "REDUCTIONS",
    "BatchMetric",
    "RocCurves",
    "ScoreSample",
    "ScoreTable",
    "ThresholdPolicy",
    "build_metrics",
    "choose_threshold",
    "default_metric_names",
    "equal_error_rate",
    "error_rates_at",
    "evaluate",
    "parse_policy",
    "read_scores",
    "roc_auc",
    "tpr_at_fpr",
    "write_scores",
]
