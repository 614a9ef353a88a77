"""Leaderboard tables from result rows: learners x (protocol, metric), mean ± std over seeds.

The average column follows DomainBed's rule: average each seed across the protocols first, then take
mean and spread across seeds. A table never mixes suites, threshold policies, selections or levels.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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
    tied: bool = False  # not significantly worse than the column's best (``fasbench.results.significance``)


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
    configuration: str = ""  # which configuration the cells are (preset, budget)
    oracle: bool = False  # the selection looked at the target domain
    config_ids: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (learner, protocol) -> config id
    reported: Mapping[tuple[str, str, str], float] = field(default_factory=dict)  # the papers' numbers, fractions
    reported_sources: Mapping[str, str] = field(default_factory=dict)  # learner -> where its paper reports them
    paper_cells: Mapping[tuple[str, str, str], float] = field(default_factory=dict)  # means under the papers' evals
    significance: str = ""  # how the tied marks were decided (empty: not tested)

    @property
    def protocols_shown(self) -> list[str]:
        return [c for c in self.columns if c != AVERAGE]

    @property
    def caption(self) -> str:
        selection = self.selection
        if self.oracle:
            selection += " (oracle: chosen on the target domain; not a domain-generalization result)"
        ns = sorted({c.n for c in self.cells.values()}) or [0]
        seeds = f"n = {ns[0]} seeds" if len(ns) == 1 else f"n = {ns[0]}-{ns[-1]} seeds"
        policy = self.threshold_policy
        if policy == "test_eer":
            policy = "test_eer (threshold at the target set's own EER, as the DG-FAS literature reports)"
        data = f"; data {self.convention_summary or 'convention ' + self.convention}" if self.convention else ""
        data += f"; {self.configuration}" if self.configuration else ""
        note = f" {self.note}" if self.note else ""
        significance = f" {self.significance}" if self.significance else ""
        return (
            f"Suite {self.suite}{data}; {self.level}-level scores; HTER threshold policy {policy}; model selection "
            f"{selection}. Values in %, mean ± sample std (ddof=1) over seeds ({seeds}); {AVERAGE} averages "
            f"each seed over the protocols first. Best per column in bold.{significance}{note}"
        )

    def reported_rows(self, learner: str) -> list[tuple[str, dict[tuple[str, str], float]]]:
        """The extra rows shown under ``learner`` when the table carries reported numbers, in fractions:
        ("reported", {(column, metric): value}), ("gap", this table - reported), and where the paper evaluated
        otherwise and fasbench has runs there, ("fasbench, paper's evaluation", means) and ("gap, paper's
        evaluation", those - reported); none without reported numbers."""
        reported = {(c, m): v for (lrn, c, m), v in self.reported.items() if lrn == learner}
        if not reported:
            return []
        ours = {(c, m): cell.mean for (lrn, c, m), cell in self.cells.items() if lrn == learner}
        rows = [("reported", reported), ("gap", _gap(reported, ours))]
        paper = {(c, m): v for (lrn, c, m), v in self.paper_cells.items() if lrn == learner}
        if paper:
            rows += [("fasbench, paper's evaluation", paper), ("gap, paper's evaluation", _gap(reported, paper))]
        return rows


def _gap(reported: Mapping[tuple[str, str], float], ours: Mapping[tuple[str, str], float]) -> dict:
    """ours - reported where both exist, in fractions."""
    return {key: ours[key] - value for key, value in reported.items() if key in ours}


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

    runs: dict[tuple[str, str, int], str] = {}
    for row in rows:
        other = runs.setdefault((row.learner, row.protocol, row.seed), row.run_id)
        if other != row.run_id:
            raise FasbenchError(
                f"{row.learner} on {row.protocol} has two runs for seed {row.seed} ({other} and {row.run_id}, configs "
                f"{row.config_id} and others): a cell aggregates one configuration; choose one (--config, --preset, "
                "--where)"
            )
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
    presets = {r.preset or "none" for r in rows}
    budgets = {r.budget for r in rows}
    configuration = (
        f"configuration: preset {presets.pop()}, {budgets.pop()} training steps"
        if len(presets) == 1 and len(budgets) == 1
        else "configurations differ between rows (--format json lists each cell's config id)"
    )
    configuration += f"; backbone weights: {_weights_caption(rows)}"
    config_ids = {(r.learner, r.protocol): r.config_id for r in rows}
    return Leaderboard(
        learners, columns, list(metrics), cells, suite, policy, selection, level, higher, convention,
        convention_summary, configuration=configuration, oracle=any(r.oracle for r in rows), config_ids=config_ids,
    )  # fmt: skip


def _weights_caption(rows: Sequence[ResultRow]) -> str:
    """The rows' starting weights ("from scratch", "timm", a file's SHA-256); where they differ, which learners
    started from which."""
    learners_of: dict[str, set[str]] = {}
    for row in rows:
        weights = str(row.identity.get("weights", "from scratch"))
        shown = f"pretrained file sha256 {weights[7:19]}" if weights.startswith("sha256:") else weights
        learners_of.setdefault(shown, set()).add(row.learner)
    if len(learners_of) == 1:
        return next(iter(learners_of))
    return "; ".join(f"{shown} ({', '.join(sorted(names))})" for shown, names in sorted(learners_of.items()))


BENCHMARK = "benchmark"  # the configuration registry.yaml describes: no preset, no override


def parse_where(items: Sequence[str]) -> list[tuple[str, Any]]:
    """``["hparams.lr=1e-4", "budget=300"]`` -> [(path, value)] with values read as YAML scalars."""
    import yaml

    parsed = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise FasbenchError(f"--where expects FIELD=VALUE (e.g. hparams.lr=1e-4, budget=300), got {item!r}")
        parsed.append((key.strip(), yaml.safe_load(value)))
    return parsed


def _describe(rows: Sequence[ResultRow]) -> str:
    seeds = sorted({r.seed for r in rows})
    first = rows[0]
    finished = max((r.finished or 0) for r in rows)
    date = time.strftime("%Y-%m-%d", time.localtime(finished)) if finished else "?"
    overrides = json.dumps(first.identity.get("overrides") or {}, sort_keys=True)
    return (
        f"config {first.config_id}: preset {first.preset or 'none'}, budget {first.budget}, overrides {overrides}, "
        f"seeds {','.join(map(str, seeds))}, {date}"
    )


def choose_configuration(
    rows: Sequence[ResultRow],
    *,
    config: str | None = None,
    preset: str | None = None,
    where: Sequence[tuple[str, Any]] = (),
    exclude: set[str] = frozenset(),
) -> list[ResultRow]:
    """The rows of exactly one configuration per (learner, protocol).

    ``config`` (an id or its prefix) or ``preset`` (a preset name, or ``none``) or ``where`` filters choose it;
    with none of them, the benchmark configuration (no preset, no override) is taken. ``exclude`` holds config
    ids that are not candidates (a sweep's drawn trials: they make the tuned rows). Nothing matching, or
    several configurations left for one cell, is refused with the configurations found.
    """
    rows = [r for r in rows if r.config_id not in exclude]
    chosen = list(rows)
    if config is not None:
        chosen = [r for r in chosen if r.config_id.startswith(config)]
    if preset is not None:
        chosen = [r for r in chosen if (r.preset or "none") == preset]
    for path, value in where:
        matched = []
        for row in chosen:
            try:
                found = row.field(path)
            except KeyError:
                continue
            if found == value or (
                isinstance(found, float) and isinstance(value, (int, float)) and found == float(value)
            ):
                matched.append(row)
        chosen = matched
    if config is None and preset is None and not where:
        chosen = [r for r in chosen if r.preset is None and not (r.identity.get("overrides") or {})]
    listing = "; ".join(sorted({_describe([r for r in rows if r.config_id == c]) for c in {r.config_id for r in rows}}))
    if not chosen:
        default = config is None and preset is None and not where
        asked = "the benchmark configuration (no preset, no override)" if default else "the filters"
        raise FasbenchError(
            f"no run matches {asked}; the results hold {listing or 'nothing'}. Choose with --preset NAME, "
            "--config ID or --where FIELD=VALUE"
        )
    by_cell: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in chosen:
        by_cell[(row.learner, row.protocol)].add(row.config_id)
    mixed = {cell: ids for cell, ids in by_cell.items() if len(ids) > 1}
    if mixed:
        (learner, protocol), ids = next(iter(sorted(mixed.items())))
        found = "; ".join(_describe([r for r in chosen if r.config_id == c]) for c in sorted(ids))
        raise FasbenchError(
            f"{learner} on {protocol} has {len(ids)} configurations here ({found}); a cell aggregates one: "
            "choose with --config ID, --preset NAME or --where FIELD=VALUE"
        )
    return chosen


def tuned_rows(rows: Sequence[ResultRow], manifests: Sequence[Mapping[str, Any]], *, oracle: bool) -> list[ResultRow]:
    """One row per (sweep, seed): the trial (and checkpoint, chosen by each trial's own rows' selection) with
    the best source-validation EER, or, when ``oracle``, the best target HTER. ``rows`` hold the trials' rows
    under the table's policy and level and the matching selection (``source_val`` or an oracle rule)."""
    tuned = []
    for manifest in manifests:
        trials = {t["config_id"]: t["trial"] for t in manifest["trials"]}
        candidates = [r for r in rows if r.config_id in trials and r.learner == manifest["learner"]]
        for seed in sorted({r.seed for r in candidates}):
            of_seed = sorted((r for r in candidates if r.seed == seed), key=lambda r: trials[r.config_id])
            value = (lambda r: r.summary["target"]["HTER"]) if oracle else (lambda r: r.summary["source_val"]["EER"])
            best = min(of_seed, key=value)  # ties: the lower trial (the defaults first)
            basis = "oracle: on the target" if oracle else "on source validation"
            label = f"{manifest['learner']} (tuned: {len(of_seed)} of {manifest['n_trials']} trials, {basis})"
            tuned.append(
                dataclasses.replace(
                    best, learner=label, config_id=f"sweep:{best.config_id}", oracle=oracle or best.oracle
                )
            )
    return tuned
