"""Which frames go into each step: balanced per-domain live/spoof streams for training, a fixed order for evaluation.

Training (as RF-Meta and its peers batch): every step takes k live and k spoof frames from every source
domain. Each (domain, class) pool is an infinite stream of epochs, each epoch a fresh permutation of the
pool drawn from (seed, domain, class, epoch). A step's frames are therefore a pure function of
(seed, step): the stream is the same whatever the worker count, and resuming at step t is O(1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fasbench.data.cache import DomainCache
from fasbench.errors import MissingDataError
from fasbench.interfaces import LIVE, SPOOF

_CLASS_NAMES = {LIVE: "live", SPOOF: "spoof"}


class ClassStream:
    """An infinite, seeded stream over one pool of frame rows: epoch e is ``pool[permutation(seed, e)]``."""

    def __init__(self, pool: np.ndarray, entropy: Sequence[int]) -> None:
        if len(pool) == 0:
            raise ValueError("an empty pool cannot be sampled")
        self.pool = np.asarray(pool, dtype=np.int64)
        self.entropy = tuple(int(value) for value in entropy)
        self._epoch: tuple[int, np.ndarray] | None = None

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._epoch is None or self._epoch[0] != epoch:
            generator = np.random.default_rng([*self.entropy, epoch])
            self._epoch = (epoch, generator.permutation(len(self.pool)))
        return self._epoch[1]

    def take(self, start: int, count: int) -> np.ndarray:
        """Items ``start .. start + count - 1`` of the stream."""
        positions = np.arange(start, start + count, dtype=np.int64)
        epochs, offsets = np.divmod(positions, len(self.pool))
        picked = np.empty(count, np.int64)
        for epoch in np.unique(epochs):
            mask = epochs == epoch
            picked[mask] = self.pool[self._permutation(int(epoch))[offsets[mask]]]
        return picked


class BalancedSampler:
    """Per step, for every domain: k live rows followed by k spoof rows drawn from that domain's ``rows``."""

    def __init__(self, caches: Sequence[DomainCache], rows: Sequence[np.ndarray], k: int, seed: int) -> None:
        if k < 1:
            raise ValueError(f"k (frames per class per domain) must be >= 1, got {k}")
        if len(rows) != len(caches):
            raise ValueError(f"one row array per cache: {len(caches)} caches, {len(rows)} row arrays")
        self.k = int(k)
        self.streams: list[tuple[ClassStream, ClassStream]] = []
        for domain, (cache, domain_rows) in enumerate(zip(caches, rows, strict=True)):
            domain_rows = np.asarray(domain_rows, dtype=np.int64)
            pair = []
            for label in (LIVE, SPOOF):
                pool = domain_rows[cache.labels[domain_rows] == label]
                if len(pool) == 0:
                    raise MissingDataError(
                        f"{cache.path} has no {_CLASS_NAMES[label]} frames among its training videos: "
                        "a balanced training stream needs both classes in every source domain"
                    )
                pair.append(ClassStream(pool, (int(seed), domain, label)))
            self.streams.append((pair[0], pair[1]))

    def rows(self, step: int) -> list[np.ndarray]:
        """The cache rows of every domain at ``step`` (2k each: k live, then k spoof)."""
        start = step * self.k
        return [np.concatenate([live.take(start, self.k), spoof.take(start, self.k)]) for live, spoof in self.streams]
