"""Collecting a large store into leaderboards under every selection rule (target: under 5 s for 1,000 runs).

Writes ``--runs`` finished run directories (``record.json``, ``done``, and ``evals.jsonl`` with ``--evals``
evaluations each, every metric under every threshold policy and level, as the runner records them), then
times, in one process:
1. ``results rebuild``: reading every run directory into a fresh store (rows of every built-in rule and
   each run's compact evaluation history);
2. from that store, one leaderboard per built-in rule (the rows, the configuration check, the table);
3. a rule the store has never seen (``last_k_mean:5``) applied to every run from the stored histories, and
   its table: what ``fasbench leaderboard --selection NEW`` does the first time.
Run: ``python benchmarks/bench_collect.py [--runs 1000] [--evals 50]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from fasbench.console import out
from fasbench.plugins import installed_plugins
from fasbench.results.collect import ensure_selection
from fasbench.results.leaderboard import build_leaderboard, choose_configuration
from fasbench.results.store import ResultsStore, rebuild
from fasbench.selection import read_evaluations, rules, selected

LEARNERS = ("binary_cnn", "auxiliary", "mldg", "reptile", "metareg", "rfmeta")
PROTOCOLS = ("OCI_M", "OMI_C", "OCM_I", "ICM_O")
KEYS = [f"{policy}/{level}" for policy in ("test_eer", "source_val", "fixed:0.5") for level in ("video", "frame")]
METRICS = ("HTER", "AUC", "EER", "ACER", "APCER", "BPCER", "TPR_at_FPR:1%", "TPR_at_FPR:0.1%")


def write_runs(root: Path, runs: int, evals: int) -> list[dict]:
    rng = np.random.default_rng(0)
    records = []
    for index in range(runs):
        learner, protocol = LEARNERS[index % 6], PROTOCOLS[(index // 6) % 4]
        seed = index // 24
        directory = root / learner / protocol / f"seed{seed}"
        directory.mkdir(parents=True)
        lines = []
        for step in range(1, evals + 1):
            values = rng.random(len(METRICS) + 2)
            metrics = {
                key: {"metrics": dict(zip(METRICS, map(float, values), strict=False)), "threshold": float(values[-1])}
                for key in KEYS
            }
            summary = {"AUC": float(values[0]), "EER": float(values[1]), "HTER": float(values[2])}
            lines.append({"step": step * 100, "target": summary, "source_val": summary, "metrics": metrics})
        (directory / "evals.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
        identity = {"config_id": f"{learner}{protocol}"[:12], "preset": None, "budget": evals * 100, "overrides": {}}
        records.append(
            {"run_id": f"run{index:05d}", "learner": learner, "protocol": protocol, "suite": "synthetic",
             "convention": "fasbench", "seed": seed, "config": identity, "dir": directory}
        )  # fmt: skip
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--evals", type=int, default=50)
    args = parser.parse_args()
    plugins = installed_plugins()
    chosen = rules(plugins)
    with tempfile.TemporaryDirectory() as folder:
        for record in write_runs(Path(folder) / "runs", args.runs, args.evals):
            directory = record.pop("dir")
            evaluations = selected(read_evaluations(directory / "evals.jsonl"), chosen)
            (directory / "record.json").write_text(json.dumps({**record, "evaluations": evaluations}))
            (directory / "done").write_text("x\n")
        path = Path(folder) / "runs" / "results.sqlite"
        started = time.perf_counter()
        count, skipped = rebuild(path, Path(folder) / "runs")
        rebuilt = time.perf_counter() - started
        assert not skipped
        store = ResultsStore(path)

        def table(name: str) -> None:
            board_rows = store.rows(
                suite="synthetic", convention="fasbench", selection=name, threshold_policy="test_eer", level="video"
            )
            build_leaderboard(choose_configuration(board_rows), metrics=["HTER", "AUC"], protocols=PROTOCOLS)

        started = time.perf_counter()
        for name in chosen:
            table(name)
        tables = time.perf_counter() - started
        started = time.perf_counter()
        added = ensure_selection(store, "last_k_mean:5", plugins, suite="synthetic", convention="fasbench")
        table("last_k_mean:5")
        new_rule = time.perf_counter() - started
    out().print(
        f"{args.runs} runs x {args.evals} evaluations, {len(chosen)} built-in rules ({', '.join(chosen)}):\n"
        f"  results rebuild (read every run directory, {count:,} rows): {rebuilt:.2f} s\n"
        f"  a leaderboard under every built-in rule, from the store: {tables:.2f} s (target: under 5 s)\n"
        f"  a new rule (last_k_mean:5) on {added} runs from the stored histories, and its table: {new_rule:.2f} s",
        highlight=False,
    )


if __name__ == "__main__":
    main()
