"""Training utilities every learner shares, so that no learner re-implements them.

Seeding and RNG capture/restore (for bit-exact resume), optimiser construction, the bf16 autocast
context, a non-finite-loss guard that costs no host-device sync per step, and functional inner steps
for meta-learning built on ``torch.func.functional_call`` (no hand-written functional copy of a network).
"""

from __future__ import annotations

import contextlib
import contextvars
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from fasbench.errors import FasbenchError, TrainingError
from fasbench.options import require_choice

AMP_MODES = ("none", "bf16")
OPTIMIZERS = ("adam", "sgd")
BUFFER_POLICIES = ("clone", "shared")


# -- seeding and RNG state --------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    """Seed python ``random``, numpy's global RNG and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU generator of its own, for a learner's private randomness (e.g. the meta-train/test split)."""
    return torch.Generator().manual_seed(seed)


def capture_rng_state(generators: Mapping[str, torch.Generator] | None = None) -> dict[str, Any]:
    """Every RNG a training step may draw from: python, numpy, torch CPU, torch CUDA, and ``generators``.

    Only tensors and plain containers, so that a checkpoint holding it loads with ``weights_only=True``
    (nothing in a checkpoint can run code): python's and numpy's Mersenne Twister states become int64
    tensors beside their small plain fields.
    """
    version, python_key, gauss = random.getstate()
    kind, numpy_key, position, has_gauss, cached = np.random.get_state()
    return {
        "python": {"version": version, "key": torch.tensor(python_key, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "kind": str(kind),
            "key": torch.from_numpy(np.asarray(numpy_key, dtype=np.int64)),
            "pos": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
        "generators": {name: generator.get_state() for name, generator in (generators or {}).items()},
    }


def restore_rng_state(state: Mapping[str, Any], generators: Mapping[str, torch.Generator] | None = None) -> None:
    """Put back what ``capture_rng_state`` returned (CUDA states only where CUDA is available)."""
    python, numpy_state = state["python"], state["numpy"]
    random.setstate((python["version"], tuple(int(v) for v in python["key"].tolist()), python["gauss"]))
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["key"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    saved = state["generators"]
    for name, generator in (generators or {}).items():
        if name not in saved:
            raise FasbenchError(f"the checkpoint has no state for the random generator {name!r}; it is not ours")
        generator.set_state(saved[name])


# -- optimisers and precision -----------------------------------------------------------------------
def build_optimizer(
    parameters: Iterable[nn.Parameter],
    *,
    name: str = "adam",
    lr: float,
    betas: Sequence[float] = (0.9, 0.999),
    momentum: float = 0.0,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """Adam (``betas``) or SGD (``momentum``); fused kernels when every parameter is on a CUDA device."""
    require_choice("optimizer", name, OPTIMIZERS)
    parameters = list(parameters)
    fused = bool(parameters) and all(p.is_cuda for p in parameters)
    if name == "adam":
        if len(betas) != 2:
            raise FasbenchError(f"Adam needs two betas, got {list(betas)!r}")
        return torch.optim.Adam(parameters, lr=lr, betas=tuple(betas), weight_decay=weight_decay, fused=fused or None)
    return torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay, fused=fused or None)


def autocast(device: torch.device | str, amp: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` when ``amp == "bf16"``; a no-op context for ``"none"``."""
    require_choice("amp", amp, AMP_MODES)
    if amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


# -- non-finite losses ------------------------------------------------------------------------------
_AS_ON_ACCELERATOR = contextvars.ContextVar("fasbench_as_on_accelerator", default=False)


@contextlib.contextmanager
def as_on_accelerator() -> Any:
    """Inside the block, code that reads the device only on the CPU (where a read is free) defers that read
    as it does on an accelerator: how ``fasbench.testing.sync`` sees a step on the CPU as a GPU runs it."""
    token = _AS_ON_ACCELERATOR.set(True)
    try:
        yield
    finally:
        _AS_ON_ACCELERATOR.reset(token)


class FiniteLossGuard:
    """Finds the first step whose losses are not finite, without a host-device sync inside the step.

    ``observe`` keeps the first bad step and the bad loss names in device tensors. On the CPU, where a
    read costs nothing, it raises at once (``eager``); on an accelerator (and inside ``as_on_accelerator``)
    only ``raise_if_bad`` reads them back (one sync), which the runner calls at its logging steps, where
    it syncs anyway.
    """

    def __init__(self, eager: bool | None = None) -> None:
        self.eager = eager
        self._names: tuple[str, ...] = ()
        self._first_bad_step: torch.Tensor | None = None
        self._bad: torch.Tensor | None = None

    def observe(self, losses: Mapping[str, torch.Tensor], step: int) -> None:
        """Record ``losses`` (0-dim tensors) of ``step``; raise at once when eager and one was ever non-finite."""
        names = tuple(losses)
        values = torch.stack([value.detach().float().reshape(()) for value in losses.values()])
        bad = ~torch.isfinite(values)
        if self._first_bad_step is None or names != self._names:
            self._names = names
            self._first_bad_step = torch.full((), -1, dtype=torch.long, device=values.device)
            self._bad = torch.zeros_like(bad)
        newly_bad = (self._first_bad_step < 0) & bad.any()
        self._first_bad_step = torch.where(newly_bad, step, self._first_bad_step)
        self._bad = torch.where(newly_bad, bad, self._bad)
        on_host = values.device.type == "cpu" and not _AS_ON_ACCELERATOR.get()
        if self.eager or (self.eager is None and on_host):
            self.raise_if_bad()

    def raise_if_bad(self) -> None:
        """Raise TrainingError if any observed loss was not finite (reads the device: one sync)."""
        if self._first_bad_step is None:
            return
        step = int(self._first_bad_step)
        if step >= 0:
            names = [name for name, bad in zip(self._names, self._bad.tolist(), strict=True) if bad]
            raise TrainingError(
                f"non-finite loss {', '.join(map(repr, names))} at step {step}; lower the learning rate "
                "(--cfg-options hparams.lr=...) or disable mixed precision (hparams.amp=none) and run again"
            )


def non_finite_tensors(named: Mapping[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors holding a NaN or an infinity.

    One ``isfinite().all()`` per tensor stacked into one flag vector per device, read back once (one
    host-device sync per device, however many tensors); the names are looked up only when a flag is off.
    """
    by_device: dict[torch.device, list[tuple[str, torch.Tensor]]] = {}
    for name, tensor in named.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and tensor.numel():
            by_device.setdefault(tensor.device, []).append((name, tensor.detach()))
    bad = []
    for tensors in by_device.values():
        flags = torch.stack([torch.isfinite(tensor).all() for _, tensor in tensors])
        if not bool(flags.all()):
            bad += [name for (name, _), ok in zip(tensors, flags.tolist(), strict=True) if not ok]
    return bad


# -- functional inner steps -------------------------------------------------------------------------
def named_parameters(module: nn.Module) -> dict[str, torch.Tensor]:
    """The module's trainable parameters by name: the ``params`` an inner step adapts."""
    return {name: parameter for name, parameter in module.named_parameters() if parameter.requires_grad}


def inner_sgd_step(
    params: Mapping[str, torch.Tensor], loss: torch.Tensor, step_size: float, *, first_order: bool = False
) -> dict[str, torch.Tensor]:
    """One SGD step ``theta - step_size * grad(loss)`` as new tensors, differentiable in ``theta``.

    Second order by default (``create_graph=True``: the outer gradient sees the Hessian term); with
    ``first_order`` the gradient is a constant, so the step has an identity Jacobian (FOMAML). The graph
    of ``loss`` is kept for the outer backward. Parameters ``loss`` does not use come back unchanged.

    The step is two multi-tensor (``torch._foreach_*``) operations over every parameter rather than two per
    parameter: the same arithmetic, bit for bit, in a handful of kernel launches instead of 2 x #parameters
    (``benchmarks/profile_step.py``).
    """
    names = [name for name, value in params.items() if value.requires_grad]
    grads = torch.autograd.grad(
        loss, [params[name] for name in names], create_graph=not first_order, retain_graph=True, allow_unused=True
    )
    used = [(name, grad) for name, grad in zip(names, grads, strict=True) if grad is not None]
    if not used:
        return dict(params)
    scaled = torch._foreach_mul([grad for _, grad in used], step_size)
    moved = torch._foreach_sub([params[name] for name, _ in used], scaled)
    return {**params, **{name: value for (name, _), value in zip(used, moved, strict=True)}}


def functional_forward(
    module: nn.Module, params: Mapping[str, torch.Tensor], *args: Any, buffers: str = "clone", **kwargs: Any
) -> Any:
    """``module(*args, **kwargs)`` with its parameters replaced by ``params`` (torch.func.functional_call).

    ``buffers="clone"`` runs on copies of the module's buffers, so a virtual (adapted) forward in training
    mode normalises with its own batch statistics but leaves the module's BatchNorm running statistics
    untouched, as the RF-Meta reference does (its adapted forward updates cloned statistics).
    ``buffers="shared"`` lets the forward update the module's running statistics in place.
    """
    require_choice("buffers", buffers, BUFFER_POLICIES)
    tensors: dict[str, torch.Tensor] = dict(params)
    if buffers == "clone":
        tensors.update({name: buffer.clone() for name, buffer in module.named_buffers()})
    return torch.func.functional_call(module, tensors, args, kwargs, strict=False)


def set_train_mode(modules: Iterable[nn.Module], training: bool) -> None:
    """Put every module in training (True) or evaluation (False) mode."""
    for module in modules:
        module.train(training)
