"""``fasbench leaderboard`` (tables and plots from the results store) and ``fasbench results rebuild``."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from fasbench.benchmark import SELECTIONS, load_benchmark
from fasbench.console import err, out
from fasbench.errors import FasbenchError
from fasbench.evaluation import LEVELS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from fasbench.results.render import FORMATS

    board = subparsers.add_parser(
        "leaderboard",
        help="learners x protocols table from the recorded runs",
        description="Mean ± std over seeds of every learner on every protocol.",
    )
    board.add_argument("--out", default="runs", help="runs directory holding results.sqlite (default: runs)")
    board.add_argument("--suite", help="default: the only suite in the store (mixing suites is refused)")
    board.add_argument(
        "--convention",
        help="data convention (default: registry.yaml defaults.data.convention if the store has it, else the only one)",
    )
    board.add_argument("--threshold-policy", help="test_eer | source_val | fixed:T (default: registry.yaml)")
    board.add_argument("--selection", choices=SELECTIONS, help="model selection (default: registry.yaml)")
    board.add_argument("--level", choices=LEVELS, help="score level (default: registry.yaml)")
    board.add_argument("--metric", nargs="+", help="metrics to show (default: registry.yaml leaderboard.metrics)")
    board.add_argument("--protocols", nargs="+", help="default: registry.yaml leaderboard.protocols")
    board.add_argument("--learners", nargs="+", help="default: every learner with results")
    board.add_argument("--format", default="rich", choices=FORMATS)
    board.add_argument("--output", help="write the table to this file instead of the terminal")
    board.add_argument("--plot", metavar="DIR", help="also write ROC curves and score histograms (PNG) here")
    board.set_defaults(handler=run_leaderboard)

    results = subparsers.add_parser("results", help="maintain the results store")
    actions = results.add_subparsers(dest="action", metavar="ACTION", required=True)
    rebuild = actions.add_parser("rebuild", help="recreate results.sqlite from the run directories")
    rebuild.add_argument("--out", default="runs")
    rebuild.set_defaults(handler=run_rebuild)


def _store(out_dir: str):
    from fasbench.results.store import ResultsStore

    path = Path(out_dir) / "results.sqlite"
    if not path.exists():
        raise FasbenchError(f"no results store at {path}; run `fasbench run LEARNER --protocol P --out {out_dir}`")
    return ResultsStore(path)


def _choose(store, column: str, requested: str | None, preferred: str | None, option: str, **filters) -> str | None:
    """The value of ``column`` a table shows: the requested one, else the preferred one if present, else the
    only one in the store; several and no choice is refused (a table never mixes them)."""
    if requested is not None:
        return requested
    present = sorted({getattr(row, column) for row in store.rows(**filters)})
    if preferred in present or not present:
        return preferred if present else None
    if len(present) > 1:
        raise FasbenchError(f"the results hold {column}s {', '.join(present)}; choose one with {option}")
    return present[0]


def run_leaderboard(args: argparse.Namespace) -> int:
    from fasbench.commands.run import higher_is_better
    from fasbench.results.leaderboard import build_leaderboard

    spec = load_benchmark(args.benchmark)
    store = _store(args.out)
    suite = _choose(store, "suite", args.suite, None, "--suite")
    default_convention = spec.defaults.get("data", {}).get("convention")
    convention = _choose(store, "convention", args.convention, default_convention, "--convention", suite=suite)
    selection = args.selection or spec.defaults.get("selection", "last")
    policy = args.threshold_policy or spec.defaults.get("threshold_policy", "test_eer")
    chosen = dict(suite=suite, convention=convention, level=args.level or spec.defaults.get("level", "video"))
    rows = store.rows(**chosen, threshold_policy=policy, selection=selection)
    metrics = args.metric or list(spec.leaderboard.get("metrics", ["HTER", "AUC"]))
    known = convention in spec.conventions
    summary = spec.convention(convention).summary if known else ""
    options = dict(
        metrics=metrics,
        protocols=args.protocols or spec.leaderboard.get("protocols"),
        learners=args.learners,
        order=spec.leaderboard.get("learners", ()),
        higher_is_better=higher_is_better(metrics),
        convention_summary=summary,
    )
    needs_validation = "source_val" in (selection, policy)
    if not rows and needs_validation and known and not spec.convention(convention).has_validation:
        context = store.rows(**chosen, selection="last", threshold_policy="test_eer")
        if not context:
            raise FasbenchError("no finished runs match; run `fasbench run LEARNER --protocol P` first")
        board = dataclasses.replace(
            build_leaderboard(context, **options),
            cells={},
            selection=selection,
            threshold_policy=policy,
            note=f"Cells are empty: under convention {convention} every source video trains, so there is no "
            "source validation to select a checkpoint or a threshold on (source_val).",
        )
    else:
        board = build_leaderboard(rows, **options)
    from fasbench.results.render import render

    table = render(board, args.format)
    if args.output:
        from fasbench import atomic

        if not isinstance(table, str):
            raise FasbenchError("--output needs a text format: markdown, latex, csv or json")
        atomic.write_text(args.output, table)
        err().print(f"wrote {args.output}", highlight=False)
    elif isinstance(table, str):
        out().print(table, markup=False, highlight=False, end="")
    else:
        out().print(table)
    if args.plot:
        from fasbench.results.plots import write_plots

        for path in write_plots(rows, board.protocols_shown, board.learners, Path(args.plot)):
            err().print(f"wrote {path}", highlight=False)
    return 0


def run_rebuild(args: argparse.Namespace) -> int:
    from fasbench.results.store import rebuild

    count, skipped = rebuild(Path(args.out) / "results.sqlite", args.out)
    out().print(f"rebuilt {Path(args.out) / 'results.sqlite'}: {count} rows", highlight=False)
    if skipped:
        out().print(f"skipped {len(skipped)} unreadable runs (rerun each with --restart):", highlight=False)
        for path, why in skipped:
            out().print(f"  {path}: {why}", highlight=False, markup=False)
    return 0
