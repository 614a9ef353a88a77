"""Leaderboard tables from result rows: learners x (protocol, metric), mean ± std over seeds.

The average column follows DomainBed's rule: average each seed across the protocols first, then take
mean and spread across seeds. A table never mixes suites, threshold policies, selections or levels.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from fasbench.errors import FasbenchError
from fasbench.results.store import ResultRow

AVERAGE = "Avg."


@dataclass(frozen=True)
class Cell:
    """mean ± std (sample std, ddof=1) of one metric over ``n`` seeds; values are fractions in [0, 1]."""

    mean: float
    std: float
    n: int
    best: bool = False


@dataclass(frozen=True)
class Leaderboard:
    """The numbers of one table and what they mean (the caption)."""

    learners: list[str]
    columns: list[str]  # protocols, then AVERAGE
    metrics: list[str]
    cells: Mapping[tuple[str, str, str], Cell]  # (learner, column, metric) -> Cell
    suite: str
    threshold_policy: str
    selection: str
    level: str
    higher_is_better: Mapping[str, bool] = field(default_factory=dict)
    convention: str = ""
    convention_summary: str = ""  # where each role's videos come from (registry.yaml's convention)
    note: str = ""  # why cells are empty, when they are

    @property
    def protocols_shown(self) -> list[str]:
        return [c for c in self.columns if c != AVERAGE]

    @property
    def caption(self) -> str:
        selection = self.selection
        if selection == "oracle":
            selection = "oracle (checkpoint chosen on the target domain; not a domain-generalization result)"
        ns = sorted({c.n for c in self.cells.values()}) or [0]
        seeds = f"n = {ns[0]} seeds" if len(ns) == 1 else f"n = {ns[0]}-{ns[-1]} seeds"
        policy = self.threshold_policy
        if policy == "test_eer":
            policy = "test_eer (threshold at the target set's own EER, as the DG-FAS literature reports)"
        data = f"; data {self.convention_summary or 'convention ' + self.convention}" if self.convention else ""
        note = f" {self.note}" if self.note else ""
        return (
            f"Suite {self.suite}{data}; {self.level}-level scores; HTER threshold policy {policy}; model selection "
            f"{selection}. Values in %, mean ± sample std (ddof=1) over seeds ({seeds}); {AVERAGE} averages "
            f"each seed over the protocols first. Best per column in bold.{note}"
        )


def _single(rows: Sequence[ResultRow], attribute: str, hint: str) -> str:
    values = sorted({getattr(r, attribute) for r in rows})
    if len(values) > 1:
        raise FasbenchError(
            f"the results mix {attribute.replace('_', ' ')}s {', '.join(map(str, values))}; a leaderboard column "
            f"must not mix them: choose one with {hint}"
        )
    return values[0]


def _cell(values: Sequence[float]) -> Cell:
    array = np.asarray(values, dtype=float)
    std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return Cell(float(array.mean()), std, len(array))


def build_leaderboard(
    rows: Sequence[ResultRow],
    *,
    metrics: Sequence[str],
    protocols: Sequence[str] | None = None,
    learners: Sequence[str] | None = None,
    order: Sequence[str] = (),
    higher_is_better: Mapping[str, bool] | None = None,
    convention_summary: str = "",
) -> Leaderboard:
    """The table of ``rows`` (already filtered to one suite, policy, selection and level).

    ``protocols``/``learners`` keep only those; rows come in ``order`` first (registry.yaml's list), then by name.
    """
    if not rows:
        raise FasbenchError("no finished runs match; run `fasbench run LEARNER --protocol P` first")
    suite = _single(rows, "suite", "--suite")
    convention = _single(rows, "convention", "--convention")
    policy = _single(rows, "threshold_policy", "--threshold-policy")
    selection = _single(rows, "selection", "--selection")
    level = _single(rows, "level", "--level")
    higher = dict(higher_is_better or {})

    present_protocols = sorted({r.protocol for r in rows})
    wanted = list(protocols or present_protocols)
    protocols = [p for p in wanted if p in present_protocols]
    if not protocols:
        raise FasbenchError(
            f"no results for protocols {', '.join(wanted)} (the results hold {', '.join(present_protocols)}); "
            "choose them with --protocols"
        )
    present_learners = sorted({r.learner for r in rows})
    ranked = [lrn for lrn in order if lrn in present_learners] + [lrn for lrn in present_learners if lrn not in order]
    learners = [lrn for lrn in ranked if learners is None or lrn in learners]

    values: dict[tuple[str, str, str], dict[int, float]] = defaultdict(dict)
    for row in rows:
        for metric in metrics:
            if metric not in row.metrics:
                raise FasbenchError(f"run {row.run_id} ({row.run_dir}) has no metric {metric!r}")
            value = row.metrics[metric]
            if value is None or not math.isfinite(value):
                raise FasbenchError(f"run {row.run_id} ({row.run_dir}) has a non-finite {metric}: {value}")
            values[(row.learner, row.protocol, metric)][row.seed] = float(value)

    cells: dict[tuple[str, str, str], Cell] = {}
    for learner in learners:
        for metric in metrics:
            per_protocol = {p: values.get((learner, p, metric), {}) for p in protocols}
            for protocol, by_seed in per_protocol.items():
                if by_seed:
                    cells[(learner, protocol, metric)] = _cell([by_seed[s] for s in sorted(by_seed)])
            seeds = set.intersection(*(set(v) for v in per_protocol.values())) if protocols else set()
            if seeds and len(protocols) > 1:
                averages = [np.mean([per_protocol[p][s] for p in protocols]) for s in sorted(seeds)]
                cells[(learner, AVERAGE, metric)] = _cell(averages)

    columns = protocols + ([AVERAGE] if len(protocols) > 1 else [])
    for column in columns:
        for metric in metrics:
            present = {lrn: cells[(lrn, column, metric)] for lrn in learners if (lrn, column, metric) in cells}
            if len(present) < 2:
                continue
            pick = max if higher.get(metric, False) else min
            best = pick(c.mean for c in present.values())
            for learner, cell in present.items():
                if math.isclose(cell.mean, best, rel_tol=0, abs_tol=1e-12):
                    cells[(learner, column, metric)] = Cell(cell.mean, cell.std, cell.n, best=True)
    return Leaderboard(
        learners, columns, list(metrics), cells, suite, policy, selection, level, higher, convention, convention_summary
    )
