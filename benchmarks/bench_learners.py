"""Step time of every baseline learner (and rfmeta) relative to ``binary_cnn``, same backbone and batch.

Each learner takes ``--warmup`` untimed steps, then ``--rounds`` rounds in which every learner, in a rotated
order, takes ``--per-round`` timed steps on fixed random batches (k live + k spoof per source domain), so
machine load hits every learner alike; the table gives the median ms per step, its quartiles and the
ratio of medians to binary_cnn. On a GPU the timings synchronise the device after each step.
Run: ``python benchmarks/bench_learners.py [--device cuda] [--width 1.0] [--input-size 256] [--k 10]``.
The default is a CPU-sized configuration (width 0.25 at 64 px, the cpu_demo preset).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

import torch
from fasbench_plugins.baselines import LEARNERS
from rich.markup import escape
from rich.table import Table
from timing import interleaved

from fasbench.console import out
from fasbench.plugins import installed_plugins
from fasbench.testing import random_domain_batches


def build(name: str, args: argparse.Namespace) -> Callable[[], None]:
    """One training step of learner ``name`` on fixed batches (the step counter advances, as in a run)."""
    backbone = {"type": "rfmeta_cnn", "width": args.width, "input_size": args.input_size}
    learner = installed_plugins().build(
        "learners",
        {"type": name, "backbone": backbone, "hparams": {"batch_per_class": args.k}},
        num_domains=args.domains,
        device=args.device,
        seed=0,
    )
    learner.budget = 10**6
    batches = [batch.to(args.device) for batch in random_domain_batches(learner, args.domains, args.k, seed=0)]

    def step() -> None:
        learner.update(batches)
        learner.step += 1

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--k", type=int, default=10, help="live (and spoof) frames per domain and step")
    parser.add_argument("--domains", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=2, help="timed steps per learner and round")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [learner.name for learner in LEARNERS]
    if "rfmeta" in installed_plugins().names("learners"):
        names.append("rfmeta")
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
        title=f"update() step time: rfmeta_cnn width {args.width} at {args.input_size} px, "
        f"{args.domains} domains x {2 * args.k} frames, {device} "
        f"(median and quartiles of {args.rounds * args.per_round} interleaved steps)"
    )
    for column in ("learner", escape("ms / step [q1-q3]"), "x binary_cnn"):
        table.add_column(column, justify="left" if column == "learner" else "right")
    for name, result in times.items():
        table.add_row(name, result.describe().strip(), f"{result.median / times['binary_cnn'].median:.2f}")
    out().print(table)


if __name__ == "__main__":
    main()
