"""``fasbench leaderboard`` (tables and plots from the results store), ``fasbench results rebuild|show``."""

from __future__ import annotations

import argparse
from pathlib import Path

from fasbench.benchmark import BenchmarkSpec, load_benchmark
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
    board.add_argument(
        "--selection",
        help="model-selection rule: last, source_val, oracle, last_k_mean[:K], oracle_last or a plugin's "
        "(`fasbench list selections`; default: registry.yaml)",
    )
    board.add_argument(
        "--mode",
        help="a registry.yaml mode: its data convention, selection and threshold policy at once (e.g. ssdg); "
        "'paper': the shown learners' own (with --learners)",
    )
    board.add_argument("--config", metavar="ID", help="the configuration to show (an id from `fasbench results show`)")
    board.add_argument("--preset", help="the runs made with this preset ('none': without one)")
    board.add_argument(
        "--where",
        nargs="+",
        default=[],
        metavar="FIELD=VALUE",
        help="only runs whose recorded FIELD equals VALUE: budget=300, hparams.lr=1e-4, backbone.width=0.5",
    )
    board.add_argument("--level", choices=LEVELS, help="score level (default: registry.yaml)")
    board.add_argument("--metric", nargs="+", help="metrics to show (default: registry.yaml leaderboard.metrics)")
    board.add_argument("--protocols", nargs="+", help="default: registry.yaml leaderboard.protocols")
    board.add_argument("--learners", nargs="+", help="default: every learner with results")
    board.add_argument("--format", default="rich", choices=FORMATS)
    board.add_argument("--output", help="write the table to this file instead of the terminal")
    board.add_argument("--plot", metavar="DIR", help="also write ROC curves and score histograms (PNG) here")
    board.add_argument(
        "--with-reported",
        action="store_true",
        help="under each learner, the numbers its paper reports (registry.yaml learners.NAME.reported), the gap, "
        "and fasbench's numbers under the paper's own evaluation where this table's is another",
    )
    board.add_argument(
        "--significance",
        nargs="?",
        type=int,
        const=1000,
        metavar="RESAMPLES",
        help="mark (†) the cells not significantly worse than their column's best: paired bootstrap over target "
        "videos and seeds (default 1000 resamples; reads the runs' scores files)",
    )
    board.set_defaults(handler=run_leaderboard)

    results = subparsers.add_parser("results", help="maintain the results store")
    actions = results.add_subparsers(dest="action", metavar="ACTION", required=True)
    rebuild = actions.add_parser("rebuild", help="recreate results.sqlite from the run directories")
    rebuild.add_argument("--out", default="runs")
    rebuild.set_defaults(handler=run_rebuild)
    show = actions.add_parser("show", help="what a run is: its configuration identity, environment and results")
    show.add_argument("run", help="a run directory, or a run id (or its prefix) under --out")
    show.add_argument("--out", default="runs")
    show.set_defaults(handler=run_show)


def _store(out_dir: str):
    """The results store of ``out_dir``, with every finished run directory it lacks indexed first (runs of
    another launcher or host; a store that was lost)."""
    from fasbench.results.store import ResultsStore, add_missing_runs

    path = Path(out_dir) / "results.sqlite"
    if not path.exists() and not next(Path(out_dir).rglob("done"), None):
        raise FasbenchError(f"no results store at {path}; run `fasbench run LEARNER --protocol P --out {out_dir}`")
    store = ResultsStore(path, runs_root=out_dir)
    added, damaged = add_missing_runs(store, out_dir)
    if added:
        err().print(f"indexed {added} finished run(s) missing from {path}", highlight=False)
    for file, why in damaged:
        err().print(f"[yellow]left out[/] {file}: {why}", highlight=False)
    return store


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


def _apply_mode(args: argparse.Namespace, spec: BenchmarkSpec) -> None:
    """``--mode``: set --convention, --selection and --threshold-policy from the mode; one given beside it must
    agree (a table shows one evaluation, and says which)."""
    if args.mode is None:
        return
    if args.mode == "paper" and not args.learners:
        raise FasbenchError("--mode paper needs --learners: each learner's own mode is in registry.yaml learners.NAME")
    mode = spec.mode_for(args.mode, args.learners or [])
    for option, value in (
        ("convention", mode.convention), ("selection", mode.selection), ("threshold_policy", mode.threshold_policy),
    ):  # fmt: skip
        given = getattr(args, option)
        if given is not None and given != value:
            flag = "--" + option.replace("_", "-")
            raise FasbenchError(f"{flag} {given} contradicts --mode {mode.name} ({option} {value}); give one of them")
        setattr(args, option, value)


def run_leaderboard(args: argparse.Namespace) -> int:
    from fasbench.plugins import installed_plugins
    from fasbench.results.leaderboard import parse_where
    from fasbench.results.tables import Choice, Evaluation, paper_boards, store_board, with_reported

    spec = load_benchmark(args.benchmark)
    store = _store(args.out)
    suite = _choose(store, "suite", args.suite, None, "--suite")
    _apply_mode(args, spec)
    default_convention = spec.defaults.get("data", {}).get("convention")
    evaluation = Evaluation(
        suite,
        _choose(store, "convention", args.convention, default_convention, "--convention", suite=suite),
        args.selection or spec.defaults.get("selection", "last"),
        args.threshold_policy or spec.defaults.get("threshold_policy", "test_eer"),
        args.level or spec.defaults.get("level", "video"),
    )
    plugins = installed_plugins()
    choice = Choice(args.config, args.preset, parse_where(args.where))
    board, rows = store_board(
        store,
        spec,
        plugins,
        evaluation,
        runs_root=args.out,
        metrics=args.metric or list(spec.leaderboard.get("metrics", ["HTER", "AUC"])),
        protocols=args.protocols,
        learners=args.learners,
        choice=choice,
    )
    if args.significance is not None and rows:
        from fasbench.results.significance import mark_ties

        board = mark_ties(board, rows, plugins, resamples=args.significance)
    if args.with_reported:
        others = paper_boards(store, spec, plugins, board, runs_root=args.out, choice=choice, metrics=board.metrics)
        board = with_reported(board, spec, others)
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


def run_show(args: argparse.Namespace) -> int:
    """Print what a run is: configuration identity, environment, data, and its results per selection rule."""
    import json

    from fasbench.runs.files import read_json, read_record

    directory = Path(args.run)
    if not (directory / "config.json").is_file():
        matches = sorted(
            p.parent for p in Path(args.out).rglob("config.json") if p.parent.name.split("-")[-1].startswith(args.run)
        )
        if len(matches) != 1:
            raise FasbenchError(
                f"{args.run!r} names {len(matches)} run directories under {args.out}"
                + (f": {', '.join(map(str, matches[:5]))}" if matches else "; give a run directory or a run id")
            )
        directory = matches[0]
    config = read_json(directory / "config.json", "it is not a run directory")
    shown: dict = {"run_dir": str(directory), "config": config}
    if (directory / "environment.json").exists():
        shown["environment"] = read_json(directory / "environment.json", "rerun with --restart")
    if (directory / "done").exists():
        record = read_record(directory)
        shown["identity"] = record["config"]
        shown["data"] = record.get("data")
        shown["results"] = {
            f"{e['selection']} / {e['policy']} / {e['level']}": {"steps": e.get("steps"), **e["metrics"]}
            for e in record["evaluations"]
        }
    elif (directory / "failed.json").exists():
        shown["failed"] = read_json(directory / "failed.json", "")
    else:
        shown["status"] = "not finished"
    out().print_json(json.dumps(shown, sort_keys=True, default=str))
    return 0
