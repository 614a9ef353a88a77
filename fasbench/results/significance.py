"""Which learners are not significantly worse than a column's best: a paired bootstrap over target videos and seeds.

For one protocol, every learner was scored on the same target videos. One bootstrap resample draws the
videos with replacement within each attack type (lives are one type; the draw of ``fasbench.evaluation``)
and, per learner, its seeds with replacement; learners with as many seeds share the seed draw (paired by
seed order) and all share the video draw (paired). A learner's value in a resample is the mean over its
drawn seeds of the run's metric under that reweighting of its scores, at the threshold the run used on
the full data (for a rule that averages several evaluations, each evaluation's own scores and threshold,
then their mean).

A learner is significantly worse than the best when fewer than 5 % of the resamples have it at least as
good as the best (one-sided, 95 %); every other learner is marked as tied with the best. The full-data
value recomputed here must equal the table's cell, or the test refuses to run (the scores read are not the
ones the table reports).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fasbench.errors import FasbenchError
from fasbench.evaluation import ScoreSample, build_metrics
from fasbench.evaluation.evaluate import _resample_counts, _values
from fasbench.results.leaderboard import Leaderboard
from fasbench.results.store import ResultRow

RESAMPLES = 1000
LEVEL_OF_SIGNIFICANCE = 0.05
BLOCK = 250  # resamples evaluated at a time (bounds memory: BLOCK x frames weights per run)


@dataclasses.dataclass
class RunScores:
    """One run's target scores at each evaluation its selection chose, with the thresholds it used."""

    row: ResultRow
    samples: list[ScoreSample]
    thresholds: list[float]
    video_of_row: np.ndarray  # index into the protocol's common video list, per score row


def run_scores(row: ResultRow, videos: dict[str, int] | None) -> tuple[RunScores, list[str], np.ndarray]:
    """The scores of ``row``'s selected evaluations at its level, their thresholds, and its video list."""
    from fasbench.runs.scoring import read_target
    from fasbench.selection import read_evaluations

    history = read_evaluations(Path(row.run_dir) / "evals.jsonl")
    key = f"{row.threshold_policy}/{row.level}"
    if key not in history.keys:
        raise FasbenchError(f"{row.run_dir}/evals.jsonl has no evaluation under {key}")
    samples, thresholds, video_ids, attack_types = [], [], None, None
    for step in row.selected_steps:
        (index,) = np.flatnonzero(history.steps == step)
        thresholds.append(float(history.thresholds[index, history.keys.index(key)]))
        scored = read_target(row.run_dir, step, row.level)
        samples.append(ScoreSample(scored.score, scored.label, scored.attack_type))
        if video_ids is None:
            video_ids, attack_types = scored.video_id, scored.attack_type
        elif not np.array_equal(video_ids, scored.video_id):
            raise FasbenchError(f"{row.run_dir}: its evaluations scored different videos; rerun it with --restart")
    names, first = np.unique(video_ids, return_index=True)
    index = {name: i for i, name in enumerate(names)} if videos is None else videos
    try:
        video_of_row = np.asarray([index[v] for v in video_ids])
    except KeyError as error:
        missing = error.args[0]
        raise FasbenchError(f"{row.run_dir} scored video {missing} that other runs of the protocol did not") from error
    return RunScores(row, samples, thresholds, video_of_row), list(names), attack_types[first]


def mark_ties(
    board: Leaderboard,
    rows: Sequence[ResultRow],
    plugins: Any,
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
    runs_of: Callable[..., tuple[dict[str, list[RunScores]], np.ndarray]] | None = None,
) -> Leaderboard:
    """``board`` with each protocol cell not significantly worse than its column's best marked ``tied``, and the
    caption saying how (the average column is not tested). ``runs_of(rows, protocol, learners)`` gives each
    learner's run scores and the videos' attack types (default: read from the run directories)."""
    if resamples < 1:
        raise FasbenchError(f"--significance needs a number of resamples >= 1, got {resamples}")
    metrics = build_metrics(board.metrics, plugins)
    cells = dict(board.cells)
    for protocol in board.protocols_shown:
        shown = [learner for learner in board.learners if any((learner, protocol, m) in cells for m in board.metrics)]
        if len(shown) < 2:
            continue
        runs, strata = (runs_of or _protocol_runs)(rows, protocol, shown)
        for metric_name, metric in metrics.items():
            present = [lrn for lrn in shown if (lrn, protocol, metric_name) in cells]
            best = next((lrn for lrn in present if cells[(lrn, protocol, metric_name)].best), None)
            if best is None:
                continue
            sign = -1.0 if board.higher_is_better.get(metric_name, False) else 1.0
            for learner in present:  # the full-data values must be the table's
                full = np.mean([_run_value(run, metric, None) for run in runs[learner]])
                expected = cells[(learner, protocol, metric_name)].mean
                if not math.isclose(full, expected, rel_tol=0, abs_tol=1e-9):
                    raise FasbenchError(
                        f"{learner} on {protocol}: the scores files give {metric_name} {full:.6f}, the table "
                        f"{expected:.6f}; the run directories changed since the store was written: "
                        "`fasbench results rebuild`"
                    )
            worse_share = tie_shares(runs, strata, present, best, metric, sign, resamples, seed)
            for learner, share in worse_share.items():
                cell = cells[(learner, protocol, metric_name)]
                cells[(learner, protocol, metric_name)] = dataclasses.replace(
                    cell, tied=not cell.best and share >= LEVEL_OF_SIGNIFICANCE
                )
    how = (
        f"† not significantly worse than the column's best: paired bootstrap over the target videos (within attack "
        f"type) and the seeds, {resamples} resamples, one-sided at 95 % (marked when at least 5 % of the resamples "
        "have it as good as the best), thresholds fixed at each run's own; the average column is not tested."
    )
    return dataclasses.replace(board, cells=cells, significance=how)


def _protocol_runs(
    rows: Sequence[ResultRow], protocol: str, learners: Sequence[str]
) -> tuple[dict[str, list[RunScores]], np.ndarray]:
    """Each learner's runs on ``protocol`` (one per seed, by seed), indexed on one common video list, and the
    attack type of each of those videos (the resampling strata)."""
    chosen = [r for r in rows if r.protocol == protocol and r.learner in learners]
    first, names, types = run_scores(chosen[0], None)
    index = {name: i for i, name in enumerate(names)}
    loaded: dict[str, list[RunScores]] = {}
    for row in sorted(chosen, key=lambda r: (r.learner, r.seed)):
        scores = first if row is chosen[0] else run_scores(row, index)[0]
        if len(np.unique(scores.video_of_row)) != len(names):
            raise FasbenchError(
                f"{row.run_dir} scored {len(np.unique(scores.video_of_row))} of the {len(names)} target videos "
                f"other runs of {protocol} scored: a paired test needs the same videos (same data convention)"
            )
        loaded.setdefault(row.learner, []).append(scores)
    return loaded, types


def tie_shares(
    runs: Mapping[str, list[RunScores]],
    strata: np.ndarray,
    learners: Sequence[str],
    best: str,
    metric: Any,
    sign: float,
    resamples: int,
    seed: int,
) -> dict[str, float]:
    """Per learner, the share of resamples in which it is at least as good as ``best`` (``sign`` +1 when
    lower is better, -1 when higher is). ``runs``: each learner's runs (by seed) on one protocol, their
    ``video_of_row`` indexing the videos whose attack types ``strata`` gives."""
    rng = np.random.default_rng(seed)
    at_least_as_good = {learner: 0 for learner in learners}
    for counts in _resample_counts(strata, resamples, BLOCK, rng):
        seed_picks: dict[int, np.ndarray] = {}
        values = {}
        for learner in learners:
            n_seeds = len(runs[learner])
            if n_seeds not in seed_picks:
                seed_picks[n_seeds] = rng.integers(0, n_seeds, size=(len(counts), n_seeds))
            per_run = np.stack([_run_value(run, metric, counts) for run in runs[learner]])  # seeds x block
            values[learner] = np.take_along_axis(per_run, seed_picks[n_seeds].T, axis=0).mean(axis=0)
        for learner in learners:
            at_least_as_good[learner] += int((sign * (values[learner] - values[best]) <= 1e-12).sum())
    return {learner: count / resamples for learner, count in at_least_as_good.items()}


def _run_value(run: RunScores, metric: Any, counts: np.ndarray | None) -> np.ndarray | float:
    """The run's metric (mean over its selected evaluations) on the full data (``counts`` None) or under each
    resample's video counts (block x videos)."""
    values = []
    for sample, threshold in zip(run.samples, run.thresholds, strict=True):
        if counts is None:
            values.append(float(_values(metric, sample, threshold)[0]))
        else:
            values.append(_values(metric, sample.reweighted(counts[:, run.video_of_row]), threshold))
    return np.mean(values, axis=0) if counts is not None else float(np.mean(values))
