"""Time ``evaluate`` on 1,000,000 frame scores (20,000 videos x 50 frames) with 1,000 bootstrap resamples.

Prints one line per stage; the target is all metrics with 1,000 resamples at video level in under 2 s.
Run: ``python benchmarks/bench_metrics.py [--videos N] [--frames-per-video N] [--bootstrap B]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from fasbench.console import out
from fasbench.evaluation import ScoreTable, evaluate, read_scores, write_scores

ATTACK_TYPES = np.array(["live", "print", "replay", "mask"])


def synthetic_table(n_videos: int, frames_per_video: int, seed: int = 0) -> ScoreTable:
    """Videos of one attack type each (1 in 4 live), frame scores = video level + noise, frames contiguous."""
    rng = np.random.default_rng(seed)
    video_type = rng.integers(0, len(ATTACK_TYPES), n_videos)
    video_label = (video_type == 0).astype(np.int64)
    video_level = rng.normal(0.35 + 0.3 * video_label, 0.15)
    frames = n_videos * frames_per_video
    video_of_frame = np.repeat(np.arange(n_videos), frames_per_video)
    score = np.clip(video_level[video_of_frame] + rng.normal(0, 0.1, frames), 0, 1)
    return ScoreTable(
        score=score,
        label=video_label[video_of_frame],
        video_id=np.char.add("O/video_", video_of_frame.astype(str)),
        frame_index=np.tile(np.arange(frames_per_video), n_videos),
        attack_type=ATTACK_TYPES[video_type][video_of_frame],
    )


def timed(label: str, function, *args, **kwargs):  # noqa: ANN001, ANN201 - a benchmark helper
    start = time.perf_counter()
    result = function(*args, **kwargs)
    out().print(f"{label:<58} {time.perf_counter() - start:7.3f} s", highlight=False)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=20_000)
    parser.add_argument("--frames-per-video", type=int, default=50)
    parser.add_argument("--bootstrap", type=int, default=1_000)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    table = synthetic_table(args.videos, args.frames_per_video)
    out().print(f"{len(table):,} frames, {args.videos:,} videos, {args.bootstrap:,} resamples", highlight=False)
    evaluate(table.by_video(), bootstrap=0)  # discover_plugins plugins and warm up outside the timings
    timed("video level, all metrics, no bootstrap", evaluate, table)
    result = timed(
        f"video level, all metrics, bootstrap {args.bootstrap} (TARGET < 2 s)",
        evaluate,
        table,
        bootstrap=args.bootstrap,
    )
    timed("  of which by_video aggregation", table.by_video)
    timed("frame level, all metrics, no bootstrap", evaluate, table, level="frame")
    timed("frame level, all metrics, bootstrap 20", evaluate, table, level="frame", bootstrap=20)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "scores.h5"
        timed("write_scores", write_scores, path, table, {"step": 1})
        timed("read_scores", read_scores, path)
    out().print({name: round(value, 4) for name, value in result["metrics"].items()}, highlight=False)


if __name__ == "__main__":
    main()
