"""``fasbench leaderboard`` (tables and plots from the results store) and ``fasbench results rebuild``."""

from __future__ import annotations

import argparse
from pathlib import Path

from fasbench.console import err, out
from fasbench.errors import FasbenchError
from fasbench.spec import SELECTIONS, load_spec


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from fasbench.results.render import FORMATS

    board = subparsers.add_parser(
        "leaderboard",
        help="learners x protocols table from the recorded runs",
        description="Mean ± std over seeds of every learner on every protocol.",
    )
    board.add_argument("--out", default="runs", help="runs directory holding results.sqlite (default: runs)")
    board.add_argument("--suite", help="default: the only suite in the store (mixing suites is refused)")
    board.add_argument("--threshold-policy", help="test_eer | source_val | fixed:T (default: registry.yaml)")
    board.add_argument("--selection", choices=SELECTIONS, help="model selection (default: registry.yaml)")
    board.add_argument("--level", choices=("video", "frame"), help="score level (default: registry.yaml)")
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


def run_leaderboard(args: argparse.Namespace) -> int:
    from fasbench.commands.run import higher_is_better
    from fasbench.results.leaderboard import build_leaderboard
    from fasbench.results.render import render

    spec = load_spec(args.registry)
    store = _store(args.out)
    suite = args.suite
    if suite is None:
        suites = store.distinct("suite")
        if len(suites) > 1:
            raise FasbenchError(f"the results hold suites {', '.join(suites)}; choose one with --suite")
        suite = suites[0] if suites else None
    rows = store.rows(
        suite=suite,
        threshold_policy=args.threshold_policy or spec.defaults.get("threshold_policy", "test_eer"),
        selection=args.selection or spec.defaults.get("selection", "last"),
        level=args.level or spec.defaults.get("level", "video"),
    )
    metrics = args.metric or list(spec.leaderboard.get("metrics", ["HTER", "AUC"]))
    board = build_leaderboard(
        rows,
        metrics=metrics,
        protocols=args.protocols or spec.leaderboard.get("protocols"),
        learners=args.learners,
        order=spec.leaderboard.get("learners", ()),
        higher_is_better=higher_is_better(metrics),
    )
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
    from fasbench.results.store import ResultsStore, rebuild

    count = rebuild(ResultsStore(Path(args.out) / "results.sqlite"), args.out)
    out().print(f"rebuilt {Path(args.out) / 'results.sqlite'}: {count} rows", highlight=False)
    return 0
