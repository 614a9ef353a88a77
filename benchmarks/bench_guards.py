"""The cost of fasbench's guards against damaged data and diverged runs, as ratios against no guard.

1. Cache reads with the per-frame XXH3-64 check against none (the same reads with every frame marked
   verified): 60 random frames at 256 px, each read for the first time in the process (the worst case:
   a frame is checked once per process), and a whole training stream's reads (``--steps`` steps of 60
   random frames, from a fresh process-like state: the first read of each frame checked, the rest not).
2. The finite check of a training step (every parameter and buffer of the learner, one device sync)
   against the bare ``update``: per step, and amortised over the runner's default ``log_every`` = 10
   (the runner checks at its logging steps and before each checkpoint).
Variants are timed interleaved (``timing.interleaved``). Run: ``python benchmarks/bench_guards.py``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from rich.table import Table
from timing import interleaved

from fasbench.console import out
from fasbench.data import open_cache
from fasbench.data.writer import VideoFrames, write_cache
from fasbench.interfaces import LIVE, SPOOF, VideoRecord
from fasbench.plugins import installed_plugins
from fasbench.testing import random_domain_batches
from fasbench.training import non_finite_tensors


def make_cache(folder: Path, frames: int, size: int) -> Path:
    """A cache of random 'faces' (as the writer stores them, with their checksums)."""
    rng = np.random.default_rng(0)
    per_video = 10
    videos = [
        (VideoRecord(f"v{i}", LIVE if i % 2 else SPOOF, "live" if i % 2 else "print", f"s{i}", "train"), per_video)
        for i in range(frames // per_video)
    ]

    def load(position: int) -> VideoFrames:
        images = rng.integers(0, 256, (per_video, size, size, 3), dtype=np.uint8)
        return VideoFrames(images, np.zeros((per_video, 32, 32), np.uint8), np.arange(per_video))

    path = folder / "bench.h5"
    write_cache(path, videos, load, crop_size=size, depth_size=32, manifest={"dataset": "bench", "crop_size": size})
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=500, help="steps of the whole-stream read")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    table = Table(title="guards: cost against none (median [quartiles])", title_justify="left")
    for column in ("what", "without", "with", "ratio"):
        table.add_column(column, justify="right" if column != "what" else "left")

    with tempfile.TemporaryDirectory() as folder:
        cache = open_cache(make_cache(Path(folder), args.frames, args.size))
        rng = np.random.default_rng(1)

        def read(checked: bool):
            def call() -> None:
                cache._verified[:] = not checked  # checked: as if the process had never read these frames
                cache.read(rng.choice(len(cache), 60, replace=False))

            return call

        times = interleaved({"unchecked": read(False), "first": read(True)}, rounds=args.rounds, per_round=10, warmup=5)
        table.add_row(
            f"cache read, 60 frames at {args.size} px, each read for the first time (worst case)",
            times["unchecked"].describe(),
            times["first"].describe(),
            f"{times['first'].median / times['unchecked'].median:.3f}",
        )
        stream = [rng.choice(len(cache), 60, replace=False) for _ in range(args.steps)]

        def whole(checked: bool):
            def call() -> None:
                cache._verified[:] = not checked
                for rows in stream:
                    cache.read(rows)

            return call

        runs = interleaved({"unchecked": whole(False), "checked": whole(True)}, rounds=3, per_round=1, warmup=1)
        reads = args.steps * 60 / len(cache)
        table.add_row(
            f"a stream of {args.steps} steps x 60 frames ({reads:.0f} reads per frame)",
            runs["unchecked"].describe(),
            runs["checked"].describe(),
            f"{runs['checked'].median / runs['unchecked'].median:.3f}",
        )

    backbone = {"type": "rfmeta_cnn", "width": args.width, "input_size": args.input_size}
    learner = installed_plugins().build(
        "learners",
        {"type": "rfmeta", "backbone": backbone, "hparams": {"batch_per_class": 10}},
        num_domains=3,
        device="cpu",
        seed=0,
    )
    batches = random_domain_batches(learner, 3, 10, seed=0)

    def bare() -> None:
        learner.update(batches)

    def guarded() -> None:
        learner.update(batches)
        assert not non_finite_tensors(learner.named_tensors())

    check_only = interleaved(
        {"check": lambda: non_finite_tensors(learner.named_tensors())}, rounds=args.rounds, per_round=10, warmup=2
    )["check"]
    times = interleaved({"bare": bare, "guarded": guarded}, rounds=args.rounds, per_round=2, warmup=2)
    step = times["bare"].median
    table.add_row(
        f"rfmeta step + finite check every step ({len(learner.named_tensors())} tensors)",
        times["bare"].describe(),
        times["guarded"].describe(),
        f"{times['guarded'].median / step:.3f}",
    )
    table.add_row(
        "finite check alone; amortised at log_every = 10",
        f"{1000 * step:9.1f} ms (step)",
        check_only.describe(),
        f"{1 + check_only.median / 10 / step:.4f}",
    )
    out().print(table)


if __name__ == "__main__":
    main()
