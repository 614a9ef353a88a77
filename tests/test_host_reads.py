"""fasbench.testing.sync: host reads of device tensors (what would stall a GPU inside a step), found on the CPU."""

import numpy as np
import pytest
import torch

from fasbench.errors import TrainingError
from fasbench.testing.sync import host_reads, watching_host_reads
from fasbench.training import FiniteLossGuard, as_on_accelerator

SCALAR = "aten::_local_scalar_dense: .item(), float(), int() or bool() of a tensor"
MASK = "aten::index with a boolean mask (it needs nonzero(): use torch.where)"
BLOCKING_COPY = ".to(device) of a host tensor: a blocking copy (pass non_blocking=True)"
BUILT_ON_HOST = (
    "torch.tensor(..., device=...): a blocking host-to-device copy (make it once outside the step, or on the "
    "device: torch.full, torch.arange...)"
)


def _weights():
    return torch.linspace(-1.0, 1.0, 6, requires_grad=True)


ON_DEVICE = _weights()  # the tensor each case treats as living on the device


@pytest.mark.parametrize(
    "read, operation",
    [
        (lambda w: (w * 2).sum().item(), SCALAR),
        (lambda w: float((w * 2).sum().detach()), SCALAR),
        (lambda w: bool((w > 0).any()), SCALAR),
        (lambda w: int(w.detach().argmax()), SCALAR),
        (lambda w: (w * 2).tolist(), ".tolist()"),
        (lambda w: (w * 2).detach().cpu(), ".cpu()"),
        (lambda w: np.asarray((w * 2).detach()), "numpy.asarray()"),
        (lambda w: w.detach()[w.detach() > 0], MASK),
        (lambda w: torch.where(w > 0), "aten::nonzero: nonzero() or torch.where(condition) with one argument"),
        (lambda w: torch.zeros(3).copy_(w.detach()[:3]), "aten::copy_ into a host tensor"),
        (lambda w: torch.full((), 2.0, device=w.device).item(), SCALAR),  # a factory given the device
        (lambda w: torch.rand(2).to(w.device, non_blocking=True).sum().item(), SCALAR),  # moved to the device
        (
            lambda w: torch.tensor([w.detach().sum(), w.detach().max()]),
            "torch.tensor() of device tensors (every element is read on the host)",
        ),
        (lambda w: torch.allclose(w, w), "aten::allclose: torch.allclose()"),
        (lambda w: str(w), "str(), repr() or print() of a tensor"),
        (lambda w: w.detach().clone().index_put_((w > 0,), w.detach()[:3]), MASK.replace("index", "index_put_")),
        (lambda w: torch.tensor([1.0, 2.0], device=w.device), BUILT_ON_HOST),
        (lambda w: torch.rand(2).to(w.device), BLOCKING_COPY),
    ],
)
def test_each_kind_of_host_read_is_found_with_its_line(read, operation):
    reads = host_reads(lambda: read(ON_DEVICE), [ON_DEVICE])
    assert [r.operation for r in reads] == [operation]
    assert reads[0].where.startswith("tests/test_host_reads.py:") and reads[0].where.endswith("in <lambda>")


def test_a_blocking_copy_to_the_device_is_followed_as_a_device_tensor():
    """``.to(device)`` of a host tensor is a new device tensor, as on a GPU (on the CPU it would be the same
    tensor): the read of it is found too, after the blocking copy itself."""
    generator = torch.Generator().manual_seed(0)
    reads = host_reads(lambda: torch.randperm(6, generator=generator).to(ON_DEVICE.device).tolist(), [ON_DEVICE])
    assert [r.operation for r in reads] == [BLOCKING_COPY, ".tolist()"]


def test_a_masked_fill_by_index_is_not_a_read():
    """``x[mask] = 0.0`` becomes masked_fill_ on a GPU (no nonzero); ``x[mask] = tensor`` needs nonzero."""

    def fill():
        copy = ON_DEVICE.detach().clone()
        copy[copy > 0] = 0.0
        return copy

    assert host_reads(fill, [ON_DEVICE]) == []


def test_host_tensors_and_sync_free_work_are_not_reads():
    generator = torch.Generator().manual_seed(0)
    weights = _weights()

    def step():
        order = torch.randperm(3, generator=generator).tolist()  # the learner's CPU generator: host numbers
        chosen = int(torch.randint(3, (1,), generator=generator))
        loss = (weights * weights).sum() + order[0] + chosen
        kept = torch.where(weights > 0, weights, torch.zeros_like(weights))  # the sync-free mask
        (loss + kept.sum()).backward()
        return loss.detach()  # a 0-dim tensor log: read by the runner at its logging steps, not here

    assert host_reads(step, [weights]) == []
    assert weights.grad is not None


def test_the_backward_and_the_optimizer_are_watched_too():
    weights = torch.nn.Parameter(_weights().detach())
    optimizer = torch.optim.SGD([weights], lr=0.1)

    def step():
        optimizer.zero_grad()
        (weights**2).sum().backward()
        optimizer.step()
        return weights.grad.abs().max().item()  # the gradient came from the device tensor

    reads = host_reads(step, [weights])
    assert [r.operation for r in reads] == [SCALAR] and reads[0].where.endswith("in step")


def test_the_finite_loss_guard_defers_its_read_as_on_an_accelerator():
    weights = _weights()
    with watching_host_reads([weights]) as reads:
        guard = FiniteLossGuard()  # eager on the CPU, but not inside the probe (as_on_accelerator)
        guard.observe({"loss": (weights * float("nan")).sum()}, step=4)  # no raise, no read
    assert reads == []
    with pytest.raises(TrainingError, match="non-finite loss 'loss' at step 4"):
        guard.raise_if_bad()
    with as_on_accelerator():
        deferred = FiniteLossGuard()
        deferred.observe({"loss": torch.tensor(float("inf"))}, step=1)
    with pytest.raises(TrainingError, match="at step 1"):
        FiniteLossGuard().observe({"loss": torch.tensor(float("inf"))}, step=1)  # outside: eager on the CPU
    with pytest.raises(TrainingError, match="at step 1"):
        deferred.raise_if_bad()


def test_the_step_profile_counts_every_operation_once_and_finds_no_host_read(tmp_path):
    """benchmarks/profile_step.py end to end on one learner: the columns add up, nothing reads the device."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parent.parent / "benchmarks" / "profile_step.py"
    rows_file = tmp_path / "rows.json"
    command = [sys.executable, str(script), "--learners", "rfmeta", "reptile", "--rounds", "1", "--per-round", "1"]
    done = subprocess.run([*command, "--warmup", "1", "--json", str(rows_file)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = {row["learner"]: row for row in json.loads(rows_file.read_text())}
    assert set(rows) == {"rfmeta", "reptile"}
    for row in rows.values():
        assert 0 < row["fasbench"] < row["forward"] and row["backward"] > 0
        assert row["host_reads"] == [] and row["allocations"] > 0 and row["host_ms"] > 0 and row["optimizer"] > 0
    # fasbench's own operations, multi-tensor since the profile: per-parameter loops were rfmeta 131 (inner step:
    # 2 x 28 parameters) and reptile 791 (5 inner steps x 2 x 54 parameters, then clones and restores)
    assert rows["rfmeta"]["fasbench"] < 100 and rows["reptile"]["fasbench"] < 300, rows
