"""How long the synthetic suite takes: rendering per frame, and preparing the default four domains.

python benchmarks/bench_synthetic.py [--workers 0 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from fasbench_plugins.synthetic import SyntheticDataset

from fasbench.benchmark import load_benchmark
from fasbench.data import ensure_prepared
from fasbench.plugins import installed_plugins


def render_ms(domain: str, crop_size: int) -> float:
    dataset = SyntheticDataset(domain=domain, subjects=4, crop_size=crop_size)
    started, count = time.perf_counter(), 0
    for record in dataset.records():
        count += sum(1 for _ in dataset.frames(record))
    return (time.perf_counter() - started) / count * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = parser.parse_args()
    for crop_size in (128, 256):
        times = ", ".join(f"{d} {render_ms(d, crop_size):.1f}" for d in "OCIM")
        print(f"render at {crop_size} px, ms per frame: {times}")
    domains = load_benchmark().suite("synthetic").domains
    plugins = installed_plugins()
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as cache_dir:
            started = time.perf_counter()
            for domain in domains.values():
                ensure_prepared(
                    domain.dataset, domain.options, cache_dir, plugins=plugins, progress=False, workers=workers
                )
            print(f"default suite (4 domains) prepared with workers={workers}: {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
