"""Preparation throughput of the real-dataset pipeline on generated 640 x 480 videos (frames/s).

Writes a Replay-Attack-shaped tree of mp4v .mov videos (Replay-Attack's container) with face-location
files, then times (1) ``Dataset.frames`` alone, serially, and (2) the core's
``prepare_domain`` into a cache with 0 and 2 workers, keeping every frame and 10 frames per video.

    python benchmarks/bench_prepare.py [--videos 16] [--frames 150]

The default is large enough (2,400 decoded frames) that worker start-up does not dominate.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("FASBENCH_CONFIG", os.devnull)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fasbench_plugins.real import ReplayAttack  # noqa: E402
from fixtures_real import write_box_file, write_video  # noqa: E402

from fasbench.data import open_cache, prepare_domain  # noqa: E402

SIZE = (640, 480)
BOX = (220, 120, 200, 240)


def build(root: Path, videos: int, frames: int) -> None:
    for number in range(videos):
        video = f"train/real/client{number + 1:03d}_session01_webcam_authenticate_adverse_1"
        write_video(root / f"{video}.mov", frames, box=BOX, size=SIZE)
        write_box_file(root / "face-locations" / f"{video}.face", frames, box=BOX)
    for split in ("devel", "test"):
        (root / split).mkdir(parents=True, exist_ok=True)


def time_frames(root: Path, **sampling) -> tuple[int, float]:
    dataset = ReplayAttack(str(root), **sampling)
    records = dataset.records()
    start = time.perf_counter()
    count = sum(1 for record in records for _ in dataset.frames(record))
    return count, time.perf_counter() - start


def time_prepare(root: Path, cache_dir: Path, workers: int, **sampling) -> tuple[int, float]:
    dataset = ReplayAttack(str(root), **sampling)
    path = cache_dir / f"replay-{workers}-{'-'.join(map(str, sampling.values()))}.h5"
    start = time.perf_counter()
    prepare_domain(dataset, path, workers=workers, progress=False)
    elapsed = time.perf_counter() - start
    return len(open_cache(path)), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=16)
    parser.add_argument("--frames", type=int, default=150)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root, cache_dir = Path(scratch) / "replay", Path(scratch) / "cache"
        build(root, args.videos, args.frames)
        decoded = args.videos * args.frames
        print(f"{args.videos} videos x {args.frames} frames at {SIZE[0]}x{SIZE[1]} (mp4v .mov), crop 256, depth 32")
        for label, sampling in (("every frame", {"every": 1}), ("10 per video", {"frames_per_video": 10})):
            count, elapsed = time_frames(root, **sampling)
            print(
                f"  frames() serial, {label:13s}: {count / elapsed:7.1f} prepared frames/s "
                f"({decoded / elapsed:7.1f} decoded frames/s)"
            )
            for workers in (0, 2):
                count, elapsed = time_prepare(root, cache_dir, workers, **sampling)
                print(
                    f"  prepare_domain workers={workers}, {label:13s}: {count / elapsed:7.1f} prepared frames/s "
                    f"({decoded / elapsed:7.1f} decoded frames/s)"
                )


if __name__ == "__main__":
    main()
