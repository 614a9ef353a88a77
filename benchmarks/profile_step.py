"""Where the host's time in a training step goes, per learner: a CPU profile of what a GPU would pay too.

On a GPU the host issues every kernel of a step; when issuing them takes longer than running them, the
GPU waits. This profiles one ``update()`` per learner on the CPU at a tiny size (``--width 0.0625``,
``--input-size 32``, k = 1, one thread), where the kernels cost almost nothing, so a step's time is the
host's own work (Python, dispatch, autograd bookkeeping) - the floor a GPU step cannot go under. Per
learner, every learner built on its own backbone type (as ``bench_learners.py``):

- ``host ms/step``: median over interleaved rotated rounds (``timing.interleaved``), and ``us/op``;
- ``ops/step``: aten operations dispatched per step (on a GPU, about one kernel launch each), split by who
  issued them: ``forward`` (the networks and the learner's code), ``backward`` (autograd, inner gradients
  included), ``optimizer``, and ``fasbench`` (of the forward: the operations fasbench's own code issues
  outside the networks: inner SGD steps, buffer copies, loss sums, the non-finite guard);
- ``host reads``: reads of device tensors by the host per step (``fasbench.testing.sync``): each one
  would stall a GPU;
- ``allocs/step`` and ``MB/step``: allocations and bytes allocated per step (``torch.profiler`` with
  ``profile_memory``) at the CPU size (``--alloc-width 0.25``, ``--alloc-size 64``, k = 4);
- ``top ops``: the operations with the largest self time at the tiny size (from ``torch.profiler``).

On the CPU the optimiser is torch's per-parameter Adam/SGD loop; on CUDA fasbench builds the fused
kernel (``fasbench.training.build_optimizer``), so the ``optimizer`` column is a CPU figure only.

    python benchmarks/profile_step.py                         # every learner
    python benchmarks/profile_step.py --learners rfmeta mldg  # some
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import torch
from bench_learners import SEED_METHODS, build_learner
from fasbench_plugins.baselines import LEARNERS
from rich.console import Console
from rich.table import Table
from timing import interleaved
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook
from torch.utils._python_dispatch import TorchDispatchMode

from fasbench.testing import random_domain_batches
from fasbench.testing.sync import host_reads, step_tensors

NETWORK_FILES = ("/plugins/networks/", "/fasbench/learners/heads.py", "/fasbench/learners/modules.py", "/timm/")
OURS = ("/plugins/", "/fasbench/", "/fasbench_plugins/")


class _Counter(TorchDispatchMode):
    """Counts dispatched aten operations by who issued them."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()
        self.in_optimizer = False

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if self.in_optimizer:
            self.counts["optimizer"] += 1
        elif torch._C._current_autograd_node() is not None:
            self.counts["backward"] += 1
        else:
            self.counts["forward"] += 1
            if _issued_by_fasbench():
                self.counts["fasbench"] += 1
        return func(*args, **(kwargs or {}))


def _issued_by_fasbench() -> bool:
    """The code that issued the operation is fasbench's or a plugin's own, not a network's: neither inside a
    module's ``forward`` (a module call lies between it and the operation, or it is the ``forward`` a module
    call runs) nor in a network's file."""
    stack = traceback.extract_stack()[:-2]
    for index in range(len(stack) - 1, -1, -1):
        path = stack[index].filename.replace(os.sep, "/")
        if _module_call(stack[index]):
            return False  # inside a module's forward (nn.Sequential, torch.func.functional_call...)
        if "/torch/" in path or path.endswith("profile_step.py"):
            continue
        if index and _module_call(stack[index - 1]):
            return False  # the forward of a module of ours (a network's layer)
        return any(part in path for part in OURS) and not any(part in path for part in NETWORK_FILES)
    return False


def _module_call(frame: traceback.FrameSummary) -> bool:
    return frame.filename.replace(os.sep, "/").endswith("torch/nn/modules/module.py") and frame.name == "_call_impl"


def count_ops(learner: Any, batches: list) -> collections.Counter[str]:
    counter = _Counter()

    def pre(*_: Any) -> None:
        counter.in_optimizer = True

    def post(*_: Any) -> None:
        counter.in_optimizer = False

    handles = register_optimizer_step_pre_hook(pre), register_optimizer_step_post_hook(post)
    try:
        with counter:
            learner.update(batches)
    finally:
        for handle in handles:
            handle.remove()
    return counter.counts


def allocations(learner: Any, batches: list) -> tuple[int, float]:
    """Allocations and MB allocated by one step: the operations that allocate (``self_cpu_memory_usage`` > 0 in
    torch.profiler's memory profile: mostly ``empty``/``empty_strided``, one allocation each) and their bytes."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        learner.update(batches)
    grown = [event.self_cpu_memory_usage for event in prof.events() if event.self_cpu_memory_usage > 0]
    return len(grown), sum(grown) / 2**20


def top_ops(learner: Any, batches: list, count: int = 3) -> str:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        learner.update(batches)
    rows = sorted(prof.key_averages(), key=lambda row: row.self_cpu_time_total, reverse=True)[:count]
    total = sum(row.self_cpu_time_total for row in prof.key_averages()) or 1
    return ", ".join(f"{row.key.removeprefix('aten::')} {100 * row.self_cpu_time_total / total:.0f}%" for row in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--learners", nargs="+", help="default: the baselines and the seed methods")
    parser.add_argument("--width", type=float, default=0.0625)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--alloc-width", type=float, default=0.25)
    parser.add_argument("--alloc-size", type=int, default=64)
    parser.add_argument("--domains", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--per-round", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    names = args.learners or [learner.name for learner in LEARNERS] + list(SEED_METHODS)
    torch.set_num_threads(1)

    tiny = argparse.Namespace(width=args.width, input_size=args.input_size, domains=args.domains, device="cpu")
    sized = argparse.Namespace(width=args.alloc_width, input_size=args.alloc_size, domains=args.domains, device="cpu")
    learners, steps = {}, {}
    for name in names:
        learner = build_learner(name, tiny, 1)
        batches = random_domain_batches(learner, args.domains, 1, seed=0)
        learners[name] = (learner, batches)
        steps[name] = functools.partial(learner.update, batches)
    times = interleaved(steps, rounds=args.rounds, per_round=args.per_round, warmup=args.warmup)

    table = Table(
        title=f"one update() on the CPU (1 thread), {args.width} width, {args.input_size} px, k = 1, "
        f"{args.domains} domains; allocations at {args.alloc_width} width, {args.alloc_size} px, k = 4"
    )
    for column in ("learner", "host ms/step", "ops/step", "us/op", "forward", "fasbench", "backward",
                   "optimizer (CPU loop)", "host reads", "allocs/step", "MB/step", "top ops (self time)"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("learner", "top ops (self time)") else "right")
    rows = []
    for name, (learner, batches) in learners.items():
        ops = count_ops(learner, batches)
        total = ops["forward"] + ops["backward"] + ops["optimizer"]
        reads = host_reads(functools.partial(learner.update, batches), step_tensors(learner, batches))
        big = build_learner(name, sized, 4)
        big_batches = random_domain_batches(big, args.domains, 4, seed=0)
        big.update(big_batches)
        count, megabytes = allocations(big, big_batches)
        median = times[name].median
        row = {
            "learner": name, "host_ms": 1000 * median, "ops": total, "us_per_op": 1e6 * median / total,
            "forward": ops["forward"], "fasbench": ops["fasbench"], "backward": ops["backward"],
            "optimizer": ops["optimizer"], "host_reads": [str(read) for read in reads], "allocations": count,
            "megabytes": megabytes, "top_ops": top_ops(learner, batches),
        }  # fmt: skip
        rows.append(row)
        table.add_row(
            name, f"{row['host_ms']:.1f}", str(total), f"{row['us_per_op']:.1f}", str(row["forward"]),
            str(row["fasbench"]), str(row["backward"]), str(row["optimizer"]), str(len(reads)), str(count),
            f"{megabytes:.0f}", row["top_ops"],
        )  # fmt: skip
    Console(width=200).print(table)  # wide enough for every column on any terminal
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
