"""``host_reads``: the reads of device tensors back to the host, found on any machine.

On a GPU, reading a device tensor on the host (``.item()``, ``float()``, ``bool()``, ``.tolist()``,
``.cpu()``, ``.numpy()``, ``nonzero``, a boolean-mask index, a copy into a host tensor...) waits for every
kernel queued before it; inside a training step that stalls the pipeline once per step.
``torch.cuda.set_sync_debug_mode("error")`` finds such reads only where CUDA exists (``tests/test_gpu_check.py``,
``benchmarks/gpu_check.py``); ``host_reads`` finds them on the CPU, so that ``check_learner`` and CI see them.

How: while the function runs, a dispatch mode follows which tensors would be on the device: the ones
given (parameters, buffers, batches), every result of an operation with one of them as input, every
factory result given an explicit ``device=``, and every ``.to(device)`` copy; and it records each
operation that reads one of them back to the host, with the line of code that asked for it. Reads of
host tensors (numbers drawn from a learner's CPU generator, for instance) are not reads of the device.

Host-to-device copies count too where they block: ``torch.tensor(data, device=...)`` and ``.to(device)`` of a
host tensor without ``non_blocking=True`` (the copy is then made a new tensor, as on a GPU, so reads of it
are followed). So does building a tensor from device tensors (``torch.tensor([a, b])``) and printing one.

Limits, because on the CPU every "device" is the host: ``.to("cpu")`` of a device tensor cannot be told
from a move to the learner's (CPU) device, so only ``.cpu()`` counts as a copy to the host, and a host
tensor moved with ``.to("cpu")`` counts as moved to the device. Only the steps watched are checked (a
branch that runs at other steps is not). On a GPU, ``set_sync_debug_mode`` remains the final word.
"""

from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

# aten operations whose result size or value the host must know: each waits for the device.
READING_OPS = {
    "_local_scalar_dense": ".item(), float(), int() or bool() of a tensor",
    "nonzero": "nonzero() or torch.where(condition) with one argument",
    "masked_select": "masked_select (a boolean-mask read)",
    "_unique": "unique()",
    "_unique2": "unique()",
    "unique_dim": "unique()",
    "unique_consecutive": "unique_consecutive()",
    "unique_dim_consecutive": "unique_consecutive()",
    "bincount": "bincount() (its length depends on the values)",
    "equal": "torch.equal()",
    "allclose": "torch.allclose()",
    "_linalg_check_errors": "a linalg call that checks its result (use the *_ex variant)",
}
HOST_METHODS = {
    "tolist": ".tolist()",
    "numpy": ".numpy()",
    "cpu": ".cpu()",
    "__array__": "numpy.asarray()",
    "__repr__": "str(), repr() or print() of a tensor",
    "__format__": "an f-string of a tensor",
}
FROM_DATA = ("tensor", "as_tensor", "asarray")  # torch.tensor(data, device=...) and kin


@dataclass(frozen=True)
class HostRead:
    """One read of a device tensor by the host: what read it and which line of code asked."""

    operation: str
    where: str

    def __str__(self) -> str:
        return f"{self.where}: {self.operation}"


def _caller() -> str:
    """The innermost frame outside torch and this module: the code that asked for the read."""
    for frame in reversed(traceback.extract_stack()):
        path = frame.filename.replace(os.sep, "/")
        if "/torch/" in path or frame.filename == __file__:
            continue
        return f"{_short(path)}:{frame.lineno} in {frame.name}"
    return "?"


def _short(path: str) -> str:
    for anchor in ("/fasbench_plugins/", "/plugins/", "/fasbench/", "/tests/"):
        if anchor in path:
            return anchor.strip("/") + "/" + path.split(anchor, 1)[1]
    return path


class _Tracker:
    """The set of tensors that would live on the device, and the reads of them found so far."""

    def __init__(self, tensors: Iterable[Any]) -> None:
        from torch.utils.weak import WeakTensorKeyDictionary

        self.on_device = WeakTensorKeyDictionary()
        self.reads: list[HostRead] = []
        for tensor in tensors:
            self.mark(tensor)

    def mark(self, value: Any) -> None:
        import torch
        from torch.utils import _pytree

        for leaf in _pytree.tree_leaves(value):
            if isinstance(leaf, torch.Tensor):
                self.on_device[leaf] = True

    def any_on_device(self, value: Any) -> bool:
        import torch
        from torch.utils import _pytree

        return any(isinstance(leaf, torch.Tensor) and leaf in self.on_device for leaf in _pytree.tree_leaves(value))

    def read(self, operation: str) -> None:
        self.reads.append(HostRead(operation, _caller()))


def _modes(tracker: _Tracker) -> tuple[Any, Any]:
    import torch
    from torch.overrides import TorchFunctionMode
    from torch.utils._python_dispatch import TorchDispatchMode

    class Dispatch(TorchDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
            kwargs = kwargs or {}
            name = func.__name__.split(".")[0]
            from_device = tracker.any_on_device((args, kwargs))
            if from_device:
                if name in READING_OPS:
                    tracker.read(f"aten::{name}: {READING_OPS[name]}")
                elif name in ("index", "index_put_", "index_put", "_index_put_impl_") and _reads_a_mask(
                    name, args, tracker
                ):
                    tracker.read(f"aten::{name} with a boolean mask (it needs nonzero(): use torch.where)")
                elif name == "repeat_interleave" and kwargs.get("output_size") is None and len(args) < 4:
                    tracker.read("aten::repeat_interleave without output_size")
                elif name == "copy_" and args[0] not in tracker.on_device and tracker.any_on_device(args[1]):
                    tracker.read("aten::copy_ into a host tensor")
            result = func(*args, **kwargs)
            if from_device:
                tracker.mark(result)
            return result

    class Function(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
            kwargs = kwargs or {}
            name = getattr(func, "__name__", "")
            source = args[0] if args and isinstance(args[0], torch.Tensor) else None
            if name in HOST_METHODS and source is not None and source in tracker.on_device:
                tracker.read(HOST_METHODS[name])
            elif name in FROM_DATA and args and isinstance(args[0], list | tuple) and tracker.any_on_device(args[0]):
                tracker.read(f"torch.{name}() of device tensors (every element is read on the host)")
            to_device = _asks_for_device(name, args, kwargs, tracker)
            from_host = to_device and (source is None or source not in tracker.on_device)
            if from_host and name in FROM_DATA:
                tracker.read(f"torch.{name}(..., device=...): a blocking host-to-device copy (make it once outside "
                             "the step, or on the device: torch.full, torch.arange...)")  # fmt: skip
            elif from_host and name in ("to", "cuda") and not _non_blocking(args, kwargs):
                tracker.read(f".{name}(device) of a host tensor: a blocking copy (pass non_blocking=True)")
            if from_host and name == "to" and "copy" not in kwargs and len(args) < 5:
                kwargs = {**kwargs, "copy": True}  # a new tensor on the device, as on a GPU, not the host one
            result = func(*args, **kwargs)
            if to_device and result is not source:
                tracker.mark(result)
            return result

    return Function(), Dispatch()


def _reads_a_mask(name: str, args: tuple, tracker: _Tracker) -> bool:
    """A boolean-mask index, which needs ``nonzero`` (a read) - except ``x[mask] = scalar``, which PyTorch turns
    into ``masked_fill_`` (no read) on a GPU."""
    import torch

    indices = [i for i in (args[1] if len(args) > 1 else ()) or () if i is not None]
    masks = [i for i in indices if isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8)]
    if not masks:
        return False
    if name == "index":
        return True
    value, accumulate = (args[2] if len(args) > 2 else None), (args[3] if len(args) > 3 else False)
    scalar = isinstance(value, torch.Tensor) and value.dim() == 0 and value not in tracker.on_device
    return not (len(indices) == 1 and scalar and not accumulate)


def _non_blocking(args: tuple, kwargs: dict) -> bool:
    return bool(kwargs.get("non_blocking")) or any(arg is True for arg in args[2:])


def _asks_for_device(name: str, args: tuple, kwargs: dict, tracker: _Tracker) -> bool:
    """A factory given ``device=``, or ``.to(...)``/``.cuda()`` towards a device (not ``.cpu()``)."""
    import torch

    if kwargs.get("device") is not None and name != "cpu":
        return True
    if name == "cuda":
        return True
    if name == "to":
        return any(isinstance(a, torch.device | str) for a in args[1:2]) or any(
            isinstance(a, torch.Tensor) and a in tracker.on_device for a in args[1:2]
        )
    return False


def step_tensors(learner: Any, *steps: Any) -> list[Any]:
    """The tensors a learner's step finds on its device: its ``named_tensors()`` and the images, depth maps and
    labels of every ``DomainBatch`` of the given steps (each a sequence of batches)."""
    batches = [batch for step in steps for batch in step]
    return [*learner.named_tensors().values(), *(t for b in batches for t in (b.images, b.depths, b.labels))]


@contextlib.contextmanager
def watching_host_reads(device_tensors: Iterable[Any]) -> Iterator[list[HostRead]]:
    """Inside the block, record every host read of a device tensor (see the module docstring) into the
    list this yields; ``device_tensors`` are the tensors that would live on the device."""
    from fasbench.training import as_on_accelerator

    tracker = _Tracker(device_tensors)
    function, dispatch = _modes(tracker)
    with as_on_accelerator(), function, dispatch:
        yield tracker.reads


def host_reads(run: Callable[[], Any], device_tensors: Iterable[Any]) -> list[HostRead]:
    """The host reads of device tensors ``run()`` makes (``watching_host_reads`` around one call)."""
    with watching_host_reads(device_tensors) as reads:
        run()
    return reads
