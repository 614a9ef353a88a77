"""Data parallelism for one run under ``torchrun``: every rank trains on its slice of each step's batch.

All ranks draw the same step batch from the same seeded stream and keep the slice ``[rank::world]`` of
every domain's live and spoof frames; learners average gradients across ranks right before each optimiser
step (``average_gradients``), so the outer update equals a single-process update on the full batch for
losses that are per-sample means. Inner (meta) steps see the local slice only, as in any data-parallel
meta-learning; BatchNorm statistics are per rank. Rank 0 alone evaluates, checkpoints and writes files.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

from fasbench.errors import FasbenchError
from fasbench.interfaces import DomainBatch


def world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def init_from_environment(device: str) -> bool:
    """Join the process group torchrun describes in the environment; False when not launched by torchrun."""
    import torch
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if dist.is_initialized():
        return True
    backend = "nccl" if device == "cuda" else "gloo"
    if device == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    try:
        dist.init_process_group(backend=backend)
    except (RuntimeError, ValueError) as error:
        raise FasbenchError(f"cannot join the torchrun process group ({backend}): {error}") from error
    return True


def shard_batches(batches: Sequence[DomainBatch]) -> list[DomainBatch]:
    """This rank's slice of every domain batch (live and spoof frames are interleaved evenly by the slice)."""
    size = world_size()
    if size == 1:
        return list(batches)
    here = rank()
    for batch in batches:
        if len(batch.labels) % size:
            raise FasbenchError(f"a domain batch of {len(batch.labels)} frames cannot be split over {size} ranks")
    return [DomainBatch(b.images[here::size], b.depths[here::size], b.labels[here::size], b.domain) for b in batches]


def average_gradients(parameters: Iterable[Any]) -> None:
    """All-reduce the ``.grad`` of ``parameters`` to their mean across ranks (no-op in a single process)."""
    import torch.distributed as dist

    size = world_size()
    if size == 1:
        return
    for parameter in parameters:
        if parameter.grad is not None:
            dist.all_reduce(parameter.grad, op=dist.ReduceOp.SUM)
            parameter.grad.div_(size)


def barrier() -> None:
    import torch.distributed as dist

    if world_size() > 1:
        dist.barrier()


def destroy() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
