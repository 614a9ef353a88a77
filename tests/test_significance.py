"""Significance marks: the paired bootstrap on a committed set of scores (golden), its extreme cases, and
``fasbench leaderboard --significance`` reading the runs' scores files."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fasbench.errors import FasbenchError
from fasbench.evaluation import ScoreSample, equal_error_rate
from fasbench.plugins import installed_plugins
from fasbench.results.leaderboard import build_leaderboard
from fasbench.results.significance import RunScores, mark_ties, tie_shares
from fasbench.results.store import ResultRow

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "golden" / "significance.json"
ROW = ResultRow("r", "last", "test_eer", "video", "l", "ICM_O", "synthetic", 0)


def committed_runs():
    data = json.loads((DATA / "significance_scores.json").read_text())
    label, types = np.asarray(data["label"]), np.asarray(data["attack_type"])
    runs = {}
    for learner, seeds in data["learners"].items():
        runs[learner] = []
        for scores in seeds:
            sample = ScoreSample(np.asarray(scores), label, types)
            threshold = float(equal_error_rate(sample.curves)[1][0])  # test_eer: each run's own
            runs[learner].append(RunScores(ROW, [sample], [threshold], np.arange(len(label))))
    return runs, types


def shares(metric_name, resamples=400, seed=0):
    runs, strata = committed_runs()
    metric = installed_plugins().build("metrics", {"type": metric_name})
    higher = metric.higher_is_better
    means = {
        learner: np.mean([float(metric.compute_batch(r.samples[0], threshold=r.thresholds[0])[0]) for r in group])
        for learner, group in runs.items()
    }
    best = (max if higher else min)(sorted(means), key=means.get)
    sign = -1.0 if higher else 1.0
    return best, means, tie_shares(runs, strata, sorted(runs), best, metric, sign, resamples, seed)


def test_marks_on_committed_scores_match_the_golden_file(request):
    found = {}
    for metric in ("HTER", "AUC"):
        best, means, share = shares(metric)
        found[metric] = {
            "best": best,
            "means": {k: round(float(v), 6) for k, v in sorted(means.items())},
            "share_as_good_as_best": {k: round(v, 4) for k, v in sorted(share.items())},
            # marked: not best (bold; ties for best included) and at least 5 % of resamples as good as the best
            "tied": sorted(k for k, v in share.items() if means[k] != means[best] and v >= 0.05),
        }
    if request.config.getoption("--update-golden", default=False):
        GOLDEN.write_text(json.dumps(found, indent=2, sort_keys=True) + "\n")
    assert found == json.loads(GOLDEN.read_text())


def test_mark_ties_marks_the_golden_cells_and_says_how():
    runs, strata = committed_runs()
    plugins = installed_plugins()
    metrics = {name: plugins.build("metrics", {"type": name}) for name in ("HTER", "AUC")}
    rows = [
        replace(ROW, run_id=f"{learner}-{seed}", learner=learner, seed=seed, metrics={
            name: float(metric.compute_batch(run.samples[0], threshold=run.thresholds[0])[0])
            for name, metric in metrics.items()
        })
        for learner, group in runs.items()
        for seed, run in enumerate(group)
    ]  # fmt: skip
    board = build_leaderboard(rows, metrics=["HTER", "AUC"], higher_is_better={"HTER": False, "AUC": True})
    marked = mark_ties(board, rows, plugins, resamples=400, seed=0, runs_of=lambda *_: (runs, strata))
    golden = json.loads(GOLDEN.read_text())
    for metric in ("HTER", "AUC"):
        tied = sorted(lrn for lrn in marked.learners if marked.cells[(lrn, "ICM_O", metric)].tied)
        assert tied == golden[metric]["tied"]
        assert [lrn for lrn in marked.learners if marked.cells[(lrn, "ICM_O", metric)].best][0] == golden[metric][
            "best"
        ]
    assert "paired bootstrap over the target videos" in marked.caption and "400 resamples" in marked.caption
    # the scores must give back the table's numbers, or the test refuses
    shifted = [replace(row, metrics={**row.metrics, "AUC": row.metrics["AUC"] + 0.01}) for row in rows]
    board = build_leaderboard(shifted, metrics=["AUC"], higher_is_better={"AUC": True})
    with pytest.raises(FasbenchError, match="the scores files give AUC"):
        mark_ties(board, shifted, plugins, resamples=10, runs_of=lambda *_: (runs, strata))


def test_extremes_a_twin_shares_the_best_ones_fate_a_chance_level_learner_is_worse():
    for metric in ("HTER", "AUC"):
        best, _, share = shares(metric)
        assert share[best] == 1.0  # the best is always as good as itself
        assert share["strong"] == share["same_as_strong"]  # identical scores, identical draws
        if best in ("strong", "same_as_strong"):
            assert share["strong"] == 1.0
        assert share["weak"] < 0.05  # the chance-level learner is significantly worse
        assert all(0.0 <= value <= 1.0 for value in share.values())


def test_same_seed_same_shares_and_more_resamples_agree():
    assert shares("HTER", 300, seed=1)[2] == shares("HTER", 300, seed=1)[2]
    coarse, fine = shares("HTER", 200)[2]["close"], shares("HTER", 2000)[2]["close"]
    assert abs(coarse - fine) < 0.08
