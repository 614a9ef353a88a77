"""Step time of every learner relative to ``binary_cnn`` and ``rfmeta``, and peak memory of one full-size step.

Timing: each learner is built on its own backbone type (``Learner.BACKBONE``: rfmeta_cnn, anrl_cnn,
timm:resnet50 for metapattern, timm:resnet18 for ssdg and safas) at one ``--width`` and ``--input-size``, with
k live + k spoof frames per source domain. Each takes ``--warmup`` untimed steps, then ``--rounds`` rounds in
which every learner, in a rotated order, takes ``--per-round`` timed steps on fixed random batches, so machine
load hits every learner alike; the table gives the median ms per step, its quartiles and the ratios of
medians. On a GPU the timings synchronise the device after each step.

Memory (``--memory``): one step of each learner at full size (width 1, 256 px, the learner's own
``batch_per_class``), each in a fresh process; on the CPU the peak resident set size during the step
(Linux VmHWM, reset just before the step) and its growth over the resident size before it; on a GPU
``torch.cuda.max_memory_allocated`` during the step.

Run: ``python benchmarks/bench_learners.py [--device cuda] [--width 1.0] [--input-size 256] [--k 10]``
(default: a CPU-sized configuration, width 0.25 at 64 px) or ``python benchmarks/bench_learners.py --memory``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from fasbench_plugins.baselines import LEARNERS
from rich.markup import escape
from rich.table import Table
from timing import interleaved

from fasbench.console import out
from fasbench.plugins import installed_plugins
from fasbench.testing import random_domain_batches

SEED_METHODS = ("rfmeta", "metapattern", "anrl", "ssdg", "safas")  # the seed and the field's methods


def build_learner(name: str, args: argparse.Namespace, k: int | None) -> Any:
    plugins = installed_plugins()
    cls = plugins.get("learners", name).obj
    backbone = {**cls.BACKBONE, "width": args.width, "input_size": args.input_size}
    hparams = {} if k is None else {"batch_per_class": k}
    learner = plugins.build(
        "learners",
        {"type": name, "backbone": backbone, "hparams": hparams},
        num_domains=args.domains,
        device=args.device,
        seed=0,
    )
    learner.budget = 10**6
    return learner


def build(name: str, args: argparse.Namespace) -> Callable[[], None]:
    """One training step of learner ``name`` on fixed batches (the step counter advances, as in a run)."""
    learner = build_learner(name, args, args.k)
    batches = [batch.to(args.device) for batch in random_domain_batches(learner, args.domains, args.k, seed=0)]

    def step() -> None:
        learner.update(batches)
        learner.step += 1

    return step


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure_one(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Peak memory and time of one step of ``name`` at the learner's own batch (run in a fresh process)."""
    learner = build_learner(name, args, args.memory_k)
    k = int(learner.hparams["batch_per_class"])
    batches = [batch.to(args.device) for batch in random_domain_batches(learner, args.domains, k, seed=0)]
    result: dict[str, Any] = {"learner": name, "k": k}
    if args.device == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # reset VmHWM to the current resident size
        before = _status_kib("VmRSS") * 1024
    start = time.perf_counter()
    learner.update(batches)
    if args.device == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = _status_kib("VmHWM") * 1024
    result.update(seconds=time.perf_counter() - start, before=before, peak=peak)
    return result


def memory_table(args: argparse.Namespace, names: list[str]) -> None:
    rows = []
    for name in names:
        command = [sys.executable, __file__, "--measure-one", name, "--device", args.device]
        command += ["--width", str(args.width), "--input-size", str(args.input_size), "--domains", str(args.domains)]
        if args.threads:
            command += ["--threads", str(args.threads)]
        if args.memory_k:
            command += ["--memory-k", str(args.memory_k)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode == 0:
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        elif done.returncode == -9:  # the kernel's OOM killer
            rows.append({"learner": name, "k": args.memory_k or "default", "failed": "killed (out of memory)"})
        else:
            raise RuntimeError(f"{name}: {done.stderr.strip().splitlines()[-1]}")
    what = "allocated GPU memory" if args.device == "cuda" else "resident set size (VmHWM)"
    table = Table(
        title=f"one update() step at width {args.width}, {args.input_size} px, {args.domains} domains, the learner's "
        f"own k; peak {what}, each learner in a fresh process"
    )
    for column in ("learner", "k", "frames", "s / step", "before (MiB)", "peak (MiB)", "step adds (MiB)"):
        table.add_column(column, justify="left" if column == "learner" else "right")
    mib = 1024**2
    for row in rows:
        if "failed" in row:
            table.add_row(row["learner"], str(row["k"]), "", "", "", row["failed"], "")
            continue
        table.add_row(
            row["learner"], str(row["k"]), str(2 * row["k"] * args.domains), f"{row['seconds']:.1f}",
            f"{row['before'] / mib:.0f}", f"{row['peak'] / mib:.0f}", f"{(row['peak'] - row['before']) / mib:.0f}",
        )  # fmt: skip
    out().print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(
            [{"learner": r["learner"], "k": r["k"], "failed": r.get("failed"),
              "peak_mib": None if "failed" in r else r["peak"] / mib,
              "step_adds_mib": None if "failed" in r else (r["peak"] - r["before"]) / mib} for r in rows], indent=1,
        ))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--width", type=float, default=None, help="default 0.25 (timing) or 1.0 (--memory)")
    parser.add_argument("--input-size", type=int, default=None, help="default 64 (timing) or 256 (--memory)")
    parser.add_argument("--k", type=int, default=10, help="live (and spoof) frames per domain and step (timing)")
    parser.add_argument("--domains", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=2, help="timed steps per learner and round")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--learners", nargs="+", help="default: the baselines and the seed methods")
    parser.add_argument("--memory", action="store_true", help="peak memory of one full-size step per learner")
    parser.add_argument("--memory-k", type=int, help="--memory: this k for every learner (default: each one's own)")
    parser.add_argument("--measure-one", help=argparse.SUPPRESS)
    parser.add_argument("--json", metavar="PATH", help="also write the table's rows as JSON (gpu_check.py reads it)")
    args = parser.parse_args()
    full = args.memory or args.measure_one
    args.width = args.width if args.width is not None else (1.0 if full else 0.25)
    args.input_size = args.input_size if args.input_size is not None else (256 if full else 64)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.measure_one:
        print(json.dumps(measure_one(args.measure_one, args)))
        return
    installed = installed_plugins().names("learners")
    names = args.learners or [learner.name for learner in LEARNERS] + [n for n in SEED_METHODS if n in installed]
    if args.memory:
        memory_table(args, names)
        return
    synchronize = torch.cuda.synchronize if args.device == "cuda" else lambda: None
    times = interleaved(
        {name: build(name, args) for name in names},
        rounds=args.rounds,
        per_round=args.per_round,
        warmup=args.warmup,
        synchronize=synchronize,
    )
    device = torch.cuda.get_device_name() if args.device == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    table = Table(
        title=f"update() step time: each learner's backbone type at width {args.width}, {args.input_size} px, "
        f"{args.domains} domains x {2 * args.k} frames, {device} "
        f"(median and quartiles of {args.rounds * args.per_round} interleaved steps)"
    )
    references = [name for name in ("binary_cnn", "rfmeta") if name in times]
    for column in ("learner", escape("ms / step [q1-q3]"), *(f"x {name}" for name in references)):
        table.add_column(column, justify="left" if column == "learner" else "right")
    for name, result in times.items():
        ratios = [f"{result.median / times[reference].median:.2f}" for reference in references]
        table.add_row(name, result.describe().strip(), *ratios)
    out().print(table)
    if args.json:
        rows = [
            {"learner": name, "ms": 1000 * result.median,
             **{f"x_{reference}": result.median / times[reference].median for reference in references}}
            for name, result in times.items()
        ]  # fmt: skip
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
