"""Contract checks for plugin authors: the same smoke checks every built-in learner passes.

    from fasbench.testing import check_learner
    check_learner(build=lambda: MyLearner(backbone=..., num_domains=3, hparams=..., seed=0))

Each check raises AssertionError with a message saying which part of the contract broke.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fasbench.interfaces import DomainBatch, Learner


def random_domain_batches(learner: Learner, num_domains: int, per_class: int, seed: int) -> list[DomainBatch]:
    """Deterministic random batches in the shape ``learner.input_spec`` asks for (k live + k spoof each)."""
    import torch

    spec = learner.input_spec
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for domain in range(num_domains):
        labels = torch.cat([torch.ones(per_class), torch.zeros(per_class)])
        images = torch.rand(2 * per_class, spec.channels, spec.size, spec.size, generator=generator)
        depths = torch.rand(2 * per_class, 1, spec.depth_size, spec.depth_size, generator=generator)
        depths[per_class:] = 0  # spoofs have all-zero depth
        batches.append(DomainBatch(images, depths, labels, domain))
    return batches


def _trained_parameters(learner: Learner) -> list[Any]:
    """Copies of the parameters the learner's optimisers update (not buffers, not optimiser state)."""
    seen: set[int] = set()
    found = []
    for optimizer in learner.optimizers():
        for group in optimizer.param_groups:
            for parameter in group["params"]:
                if id(parameter) not in seen:
                    seen.add(id(parameter))
                    found.append(parameter.detach().clone())
    return found


def _state_tensors(learner: Learner) -> list[Any]:
    """Every floating-point tensor of ``state_dict()`` (networks, buffers, optimiser state), in order."""
    import torch

    state = learner.state_dict()
    found: list[Any] = []

    def walk(value: Any) -> None:
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            found.append(value.detach().clone())
        elif isinstance(value, dict):
            for key in sorted(value, key=str):
                walk(value[key])
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)

    walk(state)
    return found


def check_learner(build: Callable[[], Learner], num_domains: int = 3, per_class: int = 2, steps: int = 3) -> None:
    """Build twice and check: finite logs, scores in [0, 1], learning changes weights, exact resume."""
    import torch

    def step(learner: Learner, seed: int) -> dict[str, Any]:
        logs = learner.update(random_domain_batches(learner, num_domains, per_class, seed))
        learner.step += 1
        return logs

    first = build()
    assert isinstance(first, Learner), f"{type(first).__name__} must subclass fasbench.interfaces.Learner"
    assert first.step == 0, "a new learner starts at step 0"
    assert list(first.optimizers()), "optimizers() must list the outer optimisers (data-parallel runs need them)"
    before = _trained_parameters(first)
    for index in range(steps):
        logs = step(first, index)
        assert logs, "update() must return its losses as logs"
        for name, value in logs.items():
            assert torch.isfinite(torch.as_tensor(value)).all(), f"log {name!r} is not finite at step {index}"
    after = _trained_parameters(first)
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True)), "training changed no parameter"

    images = random_domain_batches(first, 1, per_class, seed=99)[0].images
    scores = first.score(images)
    assert tuple(scores.shape) == (len(images),), f"score() must return shape ({len(images)},), got {scores.shape}"
    assert bool(((scores >= 0) & (scores <= 1)).all()), "score() must return P(live) in [0, 1]"
    torch.testing.assert_close(first.score(images), scores, msg="score() must be deterministic (evaluation mode)")

    resumed, uninterrupted = build(), build()
    for index in range(steps - 1):
        step(resumed, index)
        step(uninterrupted, index)
    state = resumed.state_dict()
    restored = build()
    restored.load_state_dict(state)
    assert restored.step == steps - 1, "load_state_dict must restore the step counter"
    step(restored, steps - 1)
    step(uninterrupted, steps - 1)
    for got, want in zip(_state_tensors(restored), _state_tensors(uninterrupted), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0, msg="a restored learner must continue bit-exactly")
