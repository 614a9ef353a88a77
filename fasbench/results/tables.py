"""One leaderboard of a results store under one evaluation (suite, convention, selection, threshold policy,
level): the rows it aggregates, the configuration it shows, tuned rows of sweeps, and the papers' reported
numbers beside it. ``fasbench leaderboard`` shows one such table; ``fasbench report`` every one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fasbench.benchmark import BenchmarkSpec
from fasbench.errors import FasbenchError
from fasbench.results.leaderboard import AVERAGE, Leaderboard, build_leaderboard, choose_configuration, tuned_rows
from fasbench.results.store import ResultRow, ResultsStore


@dataclass(frozen=True)
class Evaluation:
    """Which numbers a table holds: the suite, the data convention, the model-selection rule, the threshold
    policy and the score level (a table never mixes two of any)."""

    suite: str
    convention: str
    selection: str
    threshold_policy: str
    level: str

    @property
    def filters(self) -> dict[str, str]:
        return {"suite": self.suite, "convention": self.convention, "level": self.level}

    def label(self) -> str:
        return f"{self.selection} / {self.threshold_policy} / {self.level}"


@dataclass(frozen=True)
class Choice:
    """Which configuration a table shows (the benchmark one, unless a filter says otherwise)."""

    config: str | None = None
    preset: str | None = None
    where: Sequence[tuple[str, Any]] = ()


def store_board(
    store: ResultsStore,
    spec: BenchmarkSpec,
    plugins: Any,
    evaluation: Evaluation,
    *,
    runs_root: str | Path,
    metrics: Sequence[str],
    protocols: Sequence[str] | None = None,
    learners: Sequence[str] | None = None,
    choice: Choice = Choice(),
) -> tuple[Leaderboard, list[ResultRow]]:
    """The leaderboard of ``store`` under ``evaluation`` and the rows its cells aggregate.

    A selection rule the store lacks rows of is computed from the runs' evaluation histories first. Under a
    convention without source validation, a source_val table is returned empty with a note saying why.
    """
    from fasbench.commands.run import higher_is_better
    from fasbench.results.collect import ensure_selection
    from fasbench.runs.sweep import read_manifests

    filters = evaluation.filters
    ensure_selection(store, evaluation.selection, plugins, suite=evaluation.suite, convention=evaluation.convention)
    rows = store.rows(**filters, threshold_policy=evaluation.threshold_policy, selection=evaluation.selection)
    manifests = read_manifests(runs_root)
    sweeps = [m for m in manifests if (m["suite"], m["convention"]) == (evaluation.suite, evaluation.convention)]
    drawn = {t["config_id"] for m in sweeps for t in m["trials"] if t["trial"] > 0}
    pick = dict(config=choice.config, preset=choice.preset, where=choice.where, exclude=drawn)
    if rows:
        rows = choose_configuration(rows, **pick)
        rows += _tuned(store, sweeps, plugins, evaluation, {r.learner for r in rows})
    known = evaluation.convention in spec.conventions
    options = dict(
        metrics=list(metrics),
        protocols=protocols or spec.leaderboard.get("protocols"),
        learners=learners,
        order=spec.leaderboard.get("learners", ()),
        higher_is_better=higher_is_better(list(metrics)),
        convention_summary=spec.convention(evaluation.convention).summary if known else "",
    )
    needs_validation = "source_val" in (evaluation.selection, evaluation.threshold_policy)
    if not rows and needs_validation and known and not spec.convention(evaluation.convention).has_validation:
        context = store.rows(**filters, selection="last", threshold_policy="test_eer")
        if context:
            context = choose_configuration(context, **pick)
        if not context:
            raise FasbenchError("no finished runs match; run `fasbench run LEARNER --protocol P` first")
        board = dataclasses.replace(
            build_leaderboard(context, **options),
            cells={},
            selection=evaluation.selection,
            threshold_policy=evaluation.threshold_policy,
            note=f"Cells are empty: under convention {evaluation.convention} every source video trains, so there "
            "is no source validation to select a checkpoint or a threshold on (source_val).",
        )
        return board, []
    board = build_leaderboard(rows, **options)
    if any("(tuned:" in learner for learner in board.learners):
        board = dataclasses.replace(
            board,
            note="Tuned rows: per seed, among a sweep's trials (trial 0 = the default hyper-parameters, the others "
            "drawn from the learner's SEARCH_SPACE) the trial and checkpoint with the best source-validation EER "
            "(DomainBed's training-domain validation), or the best target HTER where marked oracle.",
        )
    return board, rows


def _tuned(store: ResultsStore, sweeps: list, plugins: Any, evaluation: Evaluation, shown: set[str]) -> list:
    """The tuned rows of the sweeps whose learners the table shows: selected on source validation, or on the
    target (marked) when the table's selection is an oracle."""
    from fasbench.results.collect import ensure_selection

    sweeps = [m for m in sweeps if m["learner"] in shown]
    if not sweeps:
        return []
    oracle = plugins.get("selections", evaluation.selection).obj.uses_target
    basis = "oracle" if oracle else "source_val"
    filters = evaluation.filters
    if not oracle and any(m["convention"] and not store.rows(selection="source_val", **filters) for m in sweeps):
        return []  # no source validation under this convention: no tuned rows (the caption of such tables says so)
    ensure_selection(store, basis, plugins, suite=evaluation.suite, convention=evaluation.convention)
    rows = store.rows(**filters, threshold_policy=evaluation.threshold_policy, selection=basis)
    # Shown in the table's selection column: how they were chosen is in their label and the caption.
    return [dataclasses.replace(row, selection=evaluation.selection) for row in tuned_rows(rows, sweeps, oracle=oracle)]


def with_reported(board: Leaderboard, spec: BenchmarkSpec) -> Leaderboard:
    """``board`` with each shown learner's reported numbers (registry.yaml ``learners.NAME.reported``) beside
    its own, and a caption saying where they come from and whether this table evaluates as the papers did."""
    reported: dict[tuple[str, str, str], float] = {}
    sources: dict[str, str] = {}
    protocols = board.protocols_shown
    for learner in board.learners:
        found = spec.learner(learner).reported
        if found is None:
            continue
        for metric in board.metrics:
            values = {p: found.values[p][metric] for p in protocols if metric in found.values.get(p, {})}
            for protocol, value in values.items():
                reported[(learner, protocol, metric)] = value
            if AVERAGE in board.columns and len(values) == len(protocols):
                reported[(learner, AVERAGE, metric)] = sum(values.values()) / len(values)
        if any(key[0] == learner for key in reported):
            sources[learner] = found.source
    if not sources:
        return dataclasses.replace(
            board, note=_join(board.note, "No shown learner has reported numbers in registry.yaml.")
        )
    unlike = sorted(
        learner
        for learner in sources
        if (paper := spec.paper_evaluation(learner)).selection != board.selection
        or paper.threshold_policy != board.threshold_policy
        or paper.convention != board.convention
    )
    note = (
        "Reported rows: the paper's numbers ("
        + "; ".join(f"{learner}: {source}" for learner, source in sources.items())
        + "), on the four licensed datasets; gap = fasbench - reported, in points."
    )
    if board.suite != "real":
        note += f" This table is suite {board.suite}: its numbers are not comparable with the papers'."
    if unlike:
        modes = "; ".join(f"{learner}: {_describe(spec.paper_evaluation(learner))}" for learner in unlike)
        note += (
            f" The papers evaluated otherwise than this table ({modes}): to compare like with like, show the table "
            "under that evaluation (--mode NAME, or --convention, --selection and --threshold-policy)."
        )
    return dataclasses.replace(board, reported=reported, reported_sources=sources, note=_join(board.note, note))


def _describe(mode: Any) -> str:
    return f"convention {mode.convention}, selection {mode.selection}, threshold {mode.threshold_policy}"


def _join(first: str, second: str) -> str:
    return f"{first} {second}".strip()


def evaluations_in(store: ResultsStore, plugins: Any, suites: Sequence[str] | None = None) -> list[Evaluation]:
    """Every evaluation a report can show from ``store``: each (suite, convention) with runs, under every
    registered selection rule, every threshold policy and level the runs recorded."""
    combos = sorted(
        {(row.suite, row.convention, row.threshold_policy, row.level) for row in store.rows(selection="last")}
    )
    selections = [entry.name for entry in plugins.entries("selections") if not entry.is_family]
    found = []
    for suite, convention, policy, level in combos:
        if suites is not None and suite not in suites:
            continue
        for selection in selections:
            found.append(Evaluation(suite, convention, selection, policy, level))
    return found


def default_evaluation(store: ResultsStore, spec: BenchmarkSpec, suite: str | None = None) -> Evaluation:
    """The evaluation registry.yaml's defaults name, on the store's only suite (or ``suite``) and its default
    convention where the store has it."""
    suites = sorted({row.suite for row in store.rows(selection="last")})
    if suite is None:
        if len(suites) != 1:
            raise FasbenchError(f"the results hold suites {', '.join(suites) or 'none'}; choose one with --suite")
        suite = suites[0]
    conventions = sorted({row.convention for row in store.rows(selection="last", suite=suite)})
    preferred = spec.defaults.get("data", {}).get("convention")
    convention = preferred if preferred in conventions or not conventions else conventions[0]
    return Evaluation(
        suite,
        convention,
        spec.defaults.get("selection", "last"),
        spec.defaults.get("threshold_policy", "test_eer"),
        spec.defaults.get("level", "video"),
    )
