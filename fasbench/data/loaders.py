"""The two streams a run reads: balanced training steps over source domains, and evaluation batches.

Both are torch DataLoaders over *steps* (or chunks), not frames: a worker reads a whole step's frames
from the cache (ascending file order) and hands over uint8 tensors. On a CPU device the transforms run
in the workers too (so they parallelise); on a GPU the uint8 batch is pinned, copied and transformed
on the device. The content of a step depends only on (seed, step), never on the number of workers.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from fasbench.data.cache import DomainCache
from fasbench.data.samplers import BalancedSampler
from fasbench.data.transforms import to_depth_target, to_network_input
from fasbench.errors import MissingDataError
from fasbench.interfaces import DomainBatch, InputSpec

DEFAULT_INPUT = InputSpec()


class _Steps:
    """An endless sampler of step numbers from ``start``."""

    def __init__(self, start: int) -> None:
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return itertools.count(self.start)


class _TrainSteps:
    """Map-style dataset: step number -> per domain (images, depths, labels)."""

    def __init__(
        self, caches: Sequence[DomainCache], sampler: BalancedSampler, spec: InputSpec, transform: bool
    ) -> None:
        self.caches, self.sampler, self.spec, self.transform = list(caches), sampler, spec, transform

    def __getitem__(self, step: int) -> list[tuple[Any, ...]]:
        import torch

        out = []
        for cache, rows in zip(self.caches, self.sampler.rows(step), strict=True):
            images, depths = cache.read(rows)
            images, depths = torch.from_numpy(images), torch.from_numpy(depths)
            if self.transform:
                images = to_network_input(images, self.spec)
                depths = to_depth_target(depths, self.spec.depth_size)
            labels = torch.from_numpy(cache.labels[rows].astype(np.float32))
            out.append((images, depths, labels))
        return out


class _EvalChunks:
    """Map-style dataset: chunk number -> (images, rows) of a fixed list of row chunks."""

    def __init__(self, cache: DomainCache, chunks: list[np.ndarray], spec: InputSpec, transform: bool) -> None:
        self.cache, self.chunks, self.spec, self.transform = cache, chunks, spec, transform

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, index: int) -> tuple[Any, np.ndarray]:
        import torch

        rows = self.chunks[index]
        images = torch.from_numpy(self.cache.read(rows)[0])
        return (to_network_input(images, self.spec) if self.transform else images), rows


def _is_cpu(device: Any) -> bool:
    import torch

    return torch.device(device).type == "cpu"


def _loader(dataset: Any, sampler: Any, workers: int, pin: bool, caches: Sequence[DomainCache]) -> Any:
    from torch.utils.data import DataLoader

    if workers > 0:
        for cache in caches:
            cache.close()  # each worker opens its own handle; none is inherited open
    return DataLoader(
        dataset,
        batch_size=None,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin,
        prefetch_factor=4 if workers > 0 else None,
    )


def training_loader(
    caches: Sequence[DomainCache],
    rows: Sequence[np.ndarray] | None = None,
    k: int = 10,
    input_spec: InputSpec = DEFAULT_INPUT,
    seed: int = 0,
    workers: int = 0,
    transform: bool = True,
    start_step: int = 0,
    pin_memory: bool = False,
) -> Any:
    """The DataLoader behind ``domain_batches``: per step, per domain (images, depths, labels).

    ``rows`` holds each cache's training frames (``DomainCache.video_rows``); None trains on every frame.

    With ``transform`` the images come as network input (float, ``input_spec``); without, as the cached
    uint8 B x S x S x 3 crops and uint8 depth maps, for a device to transform (``to_network_input``).
    """
    if rows is None:
        rows = [cache.video_rows() for cache in caches]
    sampler = BalancedSampler(caches, rows, k, seed)
    steps = _TrainSteps(caches, sampler, input_spec, transform=transform)
    return _loader(steps, _Steps(start_step), workers, pin=pin_memory, caches=caches)


def domain_batches(
    caches: Sequence[DomainCache],
    rows: Sequence[np.ndarray] | None = None,
    k: int = 10,
    input_spec: InputSpec = DEFAULT_INPUT,
    seed: int = 0,
    workers: int = 0,
    device: Any = "cpu",
    start_step: int = 0,
) -> Iterator[list[DomainBatch]]:
    """Endless training steps: per step one ``DomainBatch`` per cache with k live then k spoof frames.

    ``rows`` holds each cache's training frames (a run's resolved training videos); None: every frame.
    Images are float B x channels x size x size in [0, 1], depths float B x 1 x d x d in [0, 1], labels
    float (1 = live), all on ``device``. ``start_step`` resumes the stream exactly where step
    ``start_step`` of an uninterrupted stream would be.
    """
    import torch

    on_cpu = _is_cpu(device)
    loader = training_loader(
        caches, rows, k, input_spec, seed, workers, transform=on_cpu, start_step=start_step,
        pin_memory=not on_cpu and torch.cuda.is_available(),
    )  # fmt: skip
    for step in loader:
        batches = []
        for domain, (images, depths, labels) in enumerate(step):
            if not on_cpu:
                images = to_network_input(images.to(device, non_blocking=True), input_spec)
                depths = to_depth_target(depths.to(device, non_blocking=True), input_spec.depth_size)
                labels = labels.to(device, non_blocking=True)
            batches.append(DomainBatch(images, depths, labels, domain))
        yield batches


def eval_batches(
    cache: DomainCache,
    rows: np.ndarray | None = None,
    input_spec: InputSpec = DEFAULT_INPUT,
    batch_size: int = 256,
    workers: int = 0,
    device: Any = "cpu",
) -> Iterator[tuple[Any, dict[str, np.ndarray]]]:
    """The frames at ``rows`` (every frame when None) exactly once, in cache order: (images on ``device``,
    metadata arrays).

    The metadata dict holds numpy arrays ``label``, ``video_id``, ``frame_index`` and ``attack_type``.
    """
    rows = cache.video_rows() if rows is None else np.sort(np.asarray(rows, dtype=np.int64))
    if len(rows) == 0:
        raise MissingDataError(f"{cache.path}: no frame was selected to evaluate on")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    on_cpu = _is_cpu(device)
    chunks = [rows[start : start + batch_size] for start in range(0, len(rows), batch_size)]
    dataset = _EvalChunks(cache, chunks, input_spec, transform=on_cpu)
    loader = _loader(dataset, range(len(chunks)), workers, pin=False, caches=[cache])
    for images, chunk in loader:
        if not on_cpu:
            images = to_network_input(images.to(device, non_blocking=True), input_spec)
        chunk = np.asarray(chunk)
        yield (
            images,
            {
                "label": cache.labels[chunk],
                "video_id": cache.video_ids[chunk],
                "frame_index": cache.frame_indices[chunk],
                "attack_type": cache.attack_types[chunk],
            },
        )
