"""Frames per second the frame cache delivers at 256 x 256, with 0, 2 and 4 DataLoader workers.

Builds three 256 x 256 domain caches (uncompressed, and lzf-compressed), then times the balanced training
stream (3 domains x (k live + k spoof) per step, k = 10: 60 frames a step):

- ``uint8``: what a GPU run asks of the CPU: read the step's crops and depth maps, hand over uint8 tensors
  (the transforms then run on the GPU);
- ``rgb_hsv``: a CPU run: the workers also build the 6-channel float input (RGB + PIL-exact HSV).

    python benchmarks/bench_loader.py [--frames 3000] [--steps 60]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from fasbench.data import domain_batches, open_cache, prepare_domain, training_loader
from fasbench.interfaces import LIVE, SPOOF, Dataset, Frame, InputSpec, VideoRecord

SIZE = 256


class Noise(Dataset):
    """Smooth random 256 x 256 frames (fast to make; the loader's cost does not depend on content)."""

    name = "noise"

    def records(self) -> list[VideoRecord]:
        videos = self.options["frames"] // 10
        return [
            VideoRecord(f"v{v:05d}", LIVE if v % 2 else SPOOF, "live" if v % 2 else "print", f"s{v // 4}", "train")
            for v in range(videos)
        ]

    def frames(self, record: VideoRecord):
        generator = np.random.default_rng(int(record.video_id[1:]))
        coarse = generator.integers(0, 256, (SIZE // 16, SIZE // 16, 3), dtype=np.uint8)
        image = np.repeat(np.repeat(coarse, 16, axis=0), 16, axis=1)
        for index in range(10):
            noisy = np.clip(image.astype(np.int16) + generator.integers(-8, 8, image.shape), 0, 255).astype(np.uint8)
            yield Frame(index, noisy, np.full((32, 32), 128 * (record.label == LIVE), np.uint8))


def frames_per_second(stream, steps: int, frames_per_step: int) -> float:
    next(stream)  # start-up (worker processes) is not throughput
    started = time.perf_counter()
    for _ in range(steps):
        next(stream)
    return steps * frames_per_step / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3000, help="frames per domain cache")
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    k = 10
    with tempfile.TemporaryDirectory() as scratch:
        for compression in (None, "lzf"):
            caches = []
            started = time.perf_counter()
            for domain in range(3):
                path = Path(scratch) / f"noise{domain}-{compression}.h5"
                dataset = Noise(frames=args.frames, domain=domain)
                prepare_domain(dataset, path, progress=False, crop_size=SIZE, compression=compression)
                caches.append(open_cache(path))
            size_mb = sum(c.path.stat().st_size for c in caches) / 1e6
            print(
                f"3 caches x {args.frames} frames at {SIZE}x{SIZE}, compression={compression}: "
                f"{size_mb:.0f} MB, written in {time.perf_counter() - started:.1f} s"
            )
            for workers in (0, 2, 4):
                loader = training_loader(caches, k=k, workers=workers, transform=False, seed=0)
                raw = frames_per_second(iter(loader), args.steps, 6 * k)
                spec = InputSpec(size=SIZE, color="rgb_hsv")
                steps = max(4, args.steps // 6)
                cpu = frames_per_second(domain_batches(caches, k=k, input_spec=spec, workers=workers), steps, 6 * k)
                print(f"  workers={workers}: uint8 {raw:7.0f} frames/s   rgb_hsv float on CPU {cpu:6.0f} frames/s")


if __name__ == "__main__":
    main()
