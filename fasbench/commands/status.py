"""``fasbench status``: where every run of a matrix stands, from the run directories (never the store)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fasbench.benchmark import load_benchmark
from fasbench.console import out
from fasbench.errors import FasbenchError

STATES = ("done", "running", "failed", "interrupted", "not started")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    status = subparsers.add_parser(
        "status",
        help="the state of every run under --out: done, running (host, pid), failed (why), not started",
        description="Reads the run directories only (a store on a shared disk is never opened). The matrix's "
        "cells without any run directory are listed as not started.",
    )
    status.add_argument("--out", default="runs", help="runs directory (default: runs)")
    status.add_argument("--learners", nargs="+", help="the matrix's learners (default: registry.yaml leaderboard)")
    status.add_argument("--protocols", nargs="+", help="the matrix's protocols (default: registry.yaml leaderboard)")
    status.add_argument("--seeds", type=int, nargs="+", help="the matrix's seeds (default: registry.yaml leaderboard)")
    status.add_argument("--suite", help="the matrix's suite (default: registry.yaml defaults.suite)")
    status.add_argument("--only", choices=STATES, nargs="+", help="show only runs in these states")
    status.add_argument("--json", action="store_true", help="one JSON object per run instead of the table")
    status.set_defaults(handler=run_status)


@dataclass(frozen=True)
class RunState:
    learner: str
    protocol: str
    suite: str
    seed: int
    run_id: str
    state: str
    detail: str = ""
    configuration: str = ""


def read_state(directory: Path) -> RunState | None:
    """A run directory's state: done, running (lock held: by whom), failed (first line), interrupted (a
    checkpoint or nothing yet, no process on it); None when it is not a run directory."""
    from fasbench.runs import files

    config_file = directory / "config.json"
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict) or "learner" not in config:
        return None
    holder = files.lock_holder(directory)
    if (directory / files.DONE).exists():
        state, detail = "done", ""
    elif holder is not None:
        state, detail = "running", holder
    elif (directory / files.FAILED).exists():
        try:
            failure = files.read_json(directory / files.FAILED, "")
            detail = f"step {failure.get('step')}: {failure.get('first_line', '')} ({failure.get('host', '?')})"
        except FasbenchError:
            detail = f"{directory / files.FAILED} is unreadable"
        state = "failed"
    elif (directory / files.CHECKPOINT).exists():
        state, detail = "interrupted", "a checkpoint is kept: launching again resumes it"
    else:
        state, detail = "interrupted", "stopped before its first checkpoint"
    preset = config.get("preset") or "none"
    return RunState(
        str(config["learner"]),
        str(config.get("protocol", "?")),
        str(config.get("suite", "?")),
        int(config.get("seed", -1)),
        str(config.get("run_id", directory.name.rsplit("-", 1)[-1])),
        state,
        detail,
        f"preset {preset}, {config.get('budget', '?')} steps",
    )


def collect(out_dir: Path) -> list[RunState]:
    found = (read_state(config.parent) for config in sorted(out_dir.rglob("config.json")))
    return [state for state in found if state is not None]


def missing_cells(
    states: Iterable[RunState], learners: Iterable[str], protocols: Iterable[str], seeds: Iterable[int], suite: str
) -> list[RunState]:
    """The matrix's (learner, protocol, seed) cells of ``suite`` with no run directory at all."""
    have = {(s.learner, s.protocol, s.suite, s.seed) for s in states}
    return [
        RunState(learner, protocol, suite, seed, "-", "not started")
        for learner in learners
        for protocol in protocols
        for seed in seeds
        if (learner, protocol, suite, seed) not in have
    ]


def run_status(args: argparse.Namespace) -> int:
    from rich.table import Table

    spec = load_benchmark(args.benchmark)
    out_dir = Path(args.out)
    states = collect(out_dir) if out_dir.is_dir() else []
    suite = args.suite or spec.defaults.get("suite", "synthetic")
    learners = args.learners or list(spec.leaderboard.get("learners", []))
    protocols = args.protocols or list(spec.leaderboard.get("protocols", spec.protocols))
    seeds = args.seeds or list(spec.leaderboard.get("seeds", spec.defaults.get("seeds", [0])))
    rows = [s for s in states if s.suite == suite or args.suite is None]
    rows += missing_cells(states, learners, protocols, seeds, suite)
    if args.only:
        rows = [r for r in rows if r.state in args.only]
    order = {state: i for i, state in enumerate(STATES)}
    rows.sort(key=lambda r: (r.learner, r.protocol, r.suite, r.seed, order[r.state]))
    if args.json:
        print(json.dumps([dataclasses.asdict(r) for r in rows], indent=1))
        return 0
    table = Table(title=f"runs under {out_dir}", title_justify="left")
    for column in ("learner", "protocol", "suite", "seed", "run", "state", "configuration", "detail"):
        table.add_column(column, overflow="fold")
    styles = {"done": "green", "running": "cyan", "failed": "red", "interrupted": "yellow", "not started": "dim"}
    for r in rows:
        state = f"[{styles[r.state]}]{r.state}[/]"
        table.add_row(r.learner, r.protocol, r.suite, str(r.seed), r.run_id, state, r.configuration, r.detail)
    out().print(table)
    counts = {state: sum(r.state == state for r in rows) for state in STATES}
    out().print(", ".join(f"{n} {state}" for state, n in counts.items() if n) or "no runs", highlight=False)
    return 0
