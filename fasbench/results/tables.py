"""One leaderboard of a results store under one evaluation (suite, convention, selection, threshold policy,
level): the rows it aggregates, the configuration it shows, tuned rows of sweeps, and the papers' reported
numbers beside it. ``fasbench leaderboard`` shows one such table; ``fasbench report`` every one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
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


def with_reported(
    board: Leaderboard, spec: BenchmarkSpec, paper_boards: Mapping[str, Leaderboard] | None = None
) -> Leaderboard:
    """``board`` with each shown learner's reported numbers (registry.yaml ``learners.NAME.reported``) and the
    gap beside its own, and, for a learner whose paper evaluated otherwise than this table, fasbench's
    numbers under the paper's evaluation (``paper_boards``: learner -> its table there) and that gap; the
    caption says where the numbers come from and how each paper evaluated."""
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
        learner for learner in sources if evaluation_key(spec.paper_evaluation(learner)) != evaluation_key(board)
    )
    paper_cells: dict[tuple[str, str, str], float] = {}
    for learner in unlike:
        there = (paper_boards or {}).get(learner)
        if there is not None:
            paper_cells.update({key: cell.mean for key, cell in there.cells.items() if key[0] == learner})
    note = (
        "Reported rows: the paper's numbers ("
        + "; ".join(f"{learner}: {source}" for learner, source in sources.items())
        + "), on the four licensed datasets; gap = fasbench - reported, in points."
    )
    if board.suite != "real":
        note += f" This table is suite {board.suite}: its numbers are not comparable with the papers'."
    if unlike:
        modes = "; ".join(f"{learner}: {describe_evaluation(spec.paper_evaluation(learner))}" for learner in unlike)
        missing = sorted({key[0] for key in paper_cells} ^ set(unlike))
        note += (
            f" The papers evaluated otherwise than this table ({modes}); the rows 'fasbench, paper's evaluation' "
            "show fasbench's means under it and their gap"
            + (f" (none recorded for {', '.join(missing)}: run them with --mode paper)." if missing else ".")
        )
    return dataclasses.replace(
        board, reported=reported, reported_sources=sources, paper_cells=paper_cells, note=_join(board.note, note)
    )


def evaluation_key(evaluation: Any) -> tuple[str, str, str]:
    """What an evaluation fixes beyond suite and level (of an Evaluation, a ModeSpec or a Leaderboard): data
    convention, selection rule, threshold policy."""
    return evaluation.convention, evaluation.selection, evaluation.threshold_policy


def describe_evaluation(evaluation: Any) -> str:
    return (
        f"convention {evaluation.convention}, selection {evaluation.selection}, threshold {evaluation.threshold_policy}"
    )


def paper_boards(
    store: ResultsStore,
    spec: BenchmarkSpec,
    plugins: Any,
    board: Leaderboard,
    *,
    runs_root: str | Path,
    choice: Choice,
    metrics: Sequence[str],
) -> dict[str, Leaderboard]:
    """For each learner of ``board`` with reported numbers whose paper evaluated otherwise, its table under
    the paper's evaluation (same suite, level, protocols and configuration); learners without runs there
    are left out."""
    found: dict[str, Leaderboard] = {}
    for learner in board.learners:
        if spec.learner(learner).reported is None or evaluation_key(
            mode := spec.paper_evaluation(learner)
        ) == evaluation_key(board):
            continue
        evaluation = Evaluation(board.suite, mode.convention, mode.selection, mode.threshold_policy, board.level)
        try:
            there, _ = store_board(
                store, spec, plugins, evaluation, runs_root=runs_root, metrics=metrics,
                protocols=board.protocols_shown, learners=[learner], choice=choice,
            )  # fmt: skip
        except FasbenchError:
            continue  # no run of it under the paper's evaluation (the caption says so)
        found[learner] = there
    return found


def _join(first: str, second: str) -> str:
    return f"{first} {second}".strip()


def evaluations_in(store: ResultsStore, plugins: Any, extra_selections: Sequence[str] = ()) -> list[Evaluation]:
    """Every evaluation a report can show from ``store``: each (suite, convention, threshold policy, level) the
    runs recorded, under every registered selection rule and ``extra_selections`` (a parameterised one such
    as ``last_k_mean:10`` that registry.yaml names)."""
    combos = sorted(
        {(row.suite, row.convention, row.threshold_policy, row.level) for row in store.rows(selection="last")}
    )
    selections = [entry.name for entry in plugins.entries("selections") if not entry.is_family]
    selections += [name for name in extra_selections if name not in selections]
    return [
        Evaluation(suite, convention, selection, policy, level)
        for suite, convention, policy, level in combos
        for selection in selections
    ]


def default_evaluation(store: ResultsStore, spec: BenchmarkSpec, suite: str | None = None) -> Evaluation:
    """The evaluation registry.yaml's defaults name, on ``suite`` (default: the store's only suite, else
    registry.yaml's default suite where the store has it) and its default convention where the store has it."""
    suites = sorted({row.suite for row in store.rows(selection="last")})
    if suite is None:
        preferred = spec.defaults.get("suite")
        if len(suites) == 1 or preferred in suites:
            suite = suites[0] if len(suites) == 1 else preferred
        else:
            raise FasbenchError(f"the results hold suites {', '.join(suites) or 'none'}; choose one with --suite")
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


def honest_evaluation(spec: BenchmarkSpec, convention: str, level: str) -> Evaluation | None:
    """The evaluation that never looks at the target's labels: checkpoint and threshold chosen on source
    validation (``source_val``); None under a convention without source validation. Suite left empty."""
    if convention in spec.conventions and not spec.convention(convention).has_validation:
        return None
    return Evaluation("", convention, "source_val", "source_val", level)
