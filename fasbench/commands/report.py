"""``fasbench report``: the results store as a static HTML report (one folder; opens from disk)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fasbench.console import err


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="a static HTML report of the results: leaderboards, paper vs reproduced, plots, runs",
        description="Write a self-contained HTML report (no server, no network: open OUTPUT/index.html, or publish "
        "the folder as it is): the leaderboard under every recorded evaluation, switchable and sortable; the "
        "papers' reported numbers beside fasbench's; per protocol ROC curves, score histograms, APCER per attack "
        "type and the adversarial stress test; one page per run.",
    )
    parser.add_argument("--out", default="runs", help="runs directory holding results.sqlite (default: runs)")
    parser.add_argument("--output", required=True, metavar="DIR", help="the report folder to write (replaced whole)")
    parser.add_argument("--suite", help="default: the only suite in the store")
    parser.add_argument("--metric", nargs="+", help="metrics to show (default: registry.yaml leaderboard.metrics)")
    parser.add_argument(
        "--significance",
        type=int,
        default=1000,
        metavar="RESAMPLES",
        help="bootstrap resamples of the significance marks (default: 1000; 0: no marks)",
    )
    parser.add_argument("--config", metavar="ID", help="the configuration to show (an id from `fasbench results show`)")
    parser.add_argument("--preset", help="the runs made with this preset ('none': without one)")
    parser.add_argument(
        "--where", nargs="+", default=[], metavar="FIELD=VALUE", help="only runs whose FIELD equals VALUE"
    )
    parser.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> int:
    from fasbench.benchmark import load_benchmark
    from fasbench.commands.leaderboard import _store
    from fasbench.plugins import installed_plugins
    from fasbench.results.leaderboard import parse_where
    from fasbench.results.report import build_report
    from fasbench.results.tables import Choice

    spec = load_benchmark(args.benchmark)
    store = _store(args.out)
    index = build_report(
        store,
        spec,
        installed_plugins(),
        Path(args.output),
        runs_root=args.out,
        suite=args.suite,
        metrics=args.metric or list(spec.leaderboard.get("metrics", ["HTER", "AUC"])),
        significance=args.significance,
        choice=Choice(args.config, args.preset, parse_where(args.where)),
    )
    err().print(f"wrote {index} (open it in a browser; the folder is the whole report)", highlight=False)
    return 0
