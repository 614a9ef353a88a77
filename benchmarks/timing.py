"""Interleaved step timing for the benchmark scripts: variants alternate, so load and warm-up hit all alike.

Timing variants one after another lets a busy neighbour, CPU frequency or allocator warm-up favour
whichever ran last; here every round runs each variant for a few steps in a rotated order, and the
summary is the median (and spread) over all timed steps of each variant.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass
class StepTimes:
    """Seconds per step of one variant over every timed step."""

    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def quartiles(self) -> tuple[float, float]:
        if len(self.seconds) < 2:
            return self.median, self.median
        low, _, high = statistics.quantiles(self.seconds, n=4)
        return low, high

    def describe(self) -> str:
        """``median ms [q1-q3]``."""
        low, high = self.quartiles
        return f"{1000 * self.median:9.1f} ms [{1000 * low:.1f}-{1000 * high:.1f}]"


def interleaved(
    steps: Mapping[str, Callable[[], object]],
    *,
    rounds: int,
    per_round: int,
    warmup: int,
    synchronize: Callable[[], None] = lambda: None,
) -> dict[str, StepTimes]:
    """Time each ``steps[name]()`` call: ``warmup`` untimed calls each, then ``rounds`` rotated rounds."""
    names = list(steps)
    for name in names:
        for _ in range(warmup):
            steps[name]()
    synchronize()
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            for _ in range(per_round):
                start = time.perf_counter()
                steps[name]()
                synchronize()
                times[name].append(time.perf_counter() - start)
    return {name: StepTimes(values) for name, values in times.items()}
