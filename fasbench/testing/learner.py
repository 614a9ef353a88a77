"""``check_learner``: the learner contract, checked on learners built the way the runner builds them.

Every preset of the benchmark file and a protocol with two and one with three source domains are
resolved into run configs and built (``fasbench.runs.plan.build_learner``); the behaviour checks then
run on small versions of those configs (the benchmark's CPU preset, shrunk further by ``small``).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import Any

from fasbench.benchmark import BenchmarkSpec, load_benchmark
from fasbench.interfaces import DomainBatch, Learner, flatten_tensors
from fasbench.plugins import PluginRegistry, installed_plugins, option_names

# On top of the benchmark's CPU preset: 32 px and k = 2, so every check takes seconds on a CPU.
SMALL = {"backbone.input_size": 32, "hparams.batch_per_class": 2}
SPREAD, WARMUP = 1e-4, 60  # scores must tell frames apart (by this much, within this many steps) to show batch effects


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


def probe_images(learner: Learner, count: int, seed: int) -> Any:
    """Frames that differ in brightness and contrast (noise alone looks the same to a pooled network), so
    that a score depending on the rest of the batch shows."""
    import torch

    spec = learner.input_spec
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(count, spec.channels, spec.size, spec.size, generator=generator)
    offset = torch.linspace(0.0, 0.6, count).view(-1, 1, 1, 1)
    contrast = torch.linspace(1.0, 0.2, count).view(-1, 1, 1, 1)
    return (noise * contrast + offset).clamp_(0, 1)


def _protocols(benchmark: BenchmarkSpec) -> dict[int, str]:
    """One protocol per number of source domains the benchmark has (2 and 3 for the shipped one)."""
    found: dict[int, str] = {}
    for protocol in benchmark.protocols.values():
        found.setdefault(len(protocol.sources), protocol.name)
    return dict(sorted(found.items()))


def _tensors(learner: Learner) -> dict[str, Any]:
    return {name: tensor.detach().clone() for name, tensor in learner.named_tensors().items()}


def _state(learner: Learner) -> dict[str, Any]:
    """Every tensor of ``state_dict()`` by path (networks, buffers, optimiser state, RNG states)."""
    return {name: tensor.detach().clone() for name, tensor in flatten_tensors(learner.state_dict()).items()}


def _first_difference(before: Mapping[str, Any], after: Mapping[str, Any]) -> str | None:
    import torch

    for name in before:
        if name not in after or not torch.equal(before[name], after[name]):
            return name
    return next((name for name in after if name not in before), None)


def _trained(learner: Learner) -> list[Any]:
    seen: set[int] = set()
    found = []
    for optimizer in learner.optimizers():
        for group in optimizer.param_groups:
            for parameter in group["params"]:
                if id(parameter) not in seen:
                    seen.add(id(parameter))
                    found.append(parameter.detach().clone())
    return found


def _step(learner: Learner, seed: int) -> dict[str, Any]:
    logs = learner.update(random_domain_batches(learner, learner.num_domains, learner.batch_per_class, seed))
    learner.step += 1
    return logs


LATE_STEP = 100_000  # deep into a long run: every epoch-based schedule and late phase is on (100,000 = 2^5 x 5^5)


def _check_no_host_reads(learner: Learner, where: str) -> None:
    """Steps 1 and 2 (after a first one, so the optimiser state exists) and two steps late in a long run (where
    phases that start later, and epoch boundaries, are on) read nothing of the device on the host: on a GPU such
    a read waits for the device inside every step (``fasbench.testing.sync``)."""
    from collections import Counter

    from fasbench.testing.sync import step_tensors, watching_host_reads

    _step(learner, 0)
    steps = {step: random_domain_batches(learner, learner.num_domains, learner.batch_per_class, step)
             for step in (1, 2, LATE_STEP, LATE_STEP + 1)}  # fmt: skip
    learner.budget = 2 * LATE_STEP
    found: Counter[str] = Counter()
    with watching_host_reads(step_tensors(learner, *steps.values())) as reads:
        for step, batches in steps.items():
            learner.step = step
            learner.update(batches)
            found.update(f"{read} (at step {step})" for read in reads)
            reads.clear()
    assert not found, (
        f"{where}: update() reads device tensors on the host, which on a GPU waits for the device at every step: "
        + "; ".join(read if count == 1 else f"{read}, {count} times" for read, count in found.most_common(3))
        + ". Keep the value a tensor (logs may be 0-dim tensors: the runner reads them at its logging steps), "
        "draw random choices from the learner's CPU generator, or use the sync-free form (torch.where(mask, a, b) "
        "instead of a[mask], *_ex linear algebra, copies with non_blocking=True)"
    )


def check_learner(
    name: str,
    *,
    plugins: PluginRegistry | None = None,
    benchmark: BenchmarkSpec | None = None,
    small: Mapping[str, Any] | None = None,
    steps: int = 3,
    suite: str = "synthetic",
) -> None:
    """Check learner ``name`` against the contract of ``fasbench.interfaces.Learner`` (see the module docstring)."""
    from fasbench.runs.config import resolve_run_config
    from fasbench.runs.plan import build_learner

    plugins = plugins or installed_plugins()
    benchmark = benchmark or load_benchmark()
    learner_class = plugins.get("learners", name).obj
    assert isinstance(learner_class, type) and issubclass(learner_class, Learner), (
        f"learner {name!r} is registered as {learner_class!r}: register a subclass of fasbench.interfaces.Learner"
    )
    unknown = sorted(set(learner_class.SEARCH_SPACE) - set(learner_class.all_defaults()))
    assert not unknown, f"{name}: SEARCH_SPACE names {unknown}, which are not hyper-parameters (DEFAULTS)"
    protocols = {count: name for count, name in _protocols(benchmark).items() if count >= learner_class.min_domains}
    assert protocols, (
        f"{name} needs {learner_class.min_domains} source domains; the benchmark file has no protocol with that many"
    )
    cpu_preset = benchmark.defaults.get("cpu_preset")
    backbone_type = {**learner_class.BACKBONE, **benchmark.learner(name).backbone}.get("type")
    backbone_options = option_names(plugins.get("backbones", backbone_type).obj) if backbone_type else []
    shrink = {
        key: value
        for key, value in {**SMALL, **(small or {})}.items()
        if not key.startswith("backbone.") or backbone_options is None or key.split(".", 1)[1] in backbone_options
    }

    def resolve(protocol: str, preset: str | None, options: Mapping[str, Any] | None = None, seed: int = 0) -> dict:
        return resolve_run_config(
            benchmark, plugins, learner=name, protocol=protocol, suite=suite, seed=seed, device="cpu",
            preset=preset, cfg_options=options,
        )  # fmt: skip

    for preset in (None, *benchmark.presets):
        for count, protocol in protocols.items():
            where = f"{name} on {protocol} ({count} source domains), preset {preset or 'none'}"
            try:
                config = resolve(protocol, preset)
                build_learner(config, plugins)
            except Exception as error:
                raise AssertionError(f"{where}: the runner cannot build it: {type(error).__name__}: {error}") from error

    for count, protocol in protocols.items():
        where = f"{name} with {count} source domains ({protocol}, small {cpu_preset} config)"

        def build(seed: int = 0, where: str = where, protocol: str = protocol) -> Learner:
            try:
                return build_learner(resolve(protocol, cpu_preset, shrink, seed), plugins)
            except Exception as error:
                raise AssertionError(f"{where}: building failed: {type(error).__name__}: {error}") from error

        _check_behaviour(build, where, steps)


def _check_behaviour(build: Callable[..., Learner], where: str, steps: int) -> None:
    import torch

    first = build()
    assert first.step == 0, f"{where}: a new learner starts at step 0"
    assert isinstance(first.batch_per_class, int) and first.batch_per_class >= 1, f"{where}: batch_per_class"
    assert list(first.optimizers()), f"{where}: optimizers() must list the outer optimisers (data parallelism)"
    assert first.named_tensors(), f"{where}: named_tensors() must list the tensors that determine the scores"

    twin = build()
    differs = _first_difference(_tensors(first), _tensors(twin))
    assert differs is None, (
        f"{where}: two builds with seed 0 differ in {differs!r}: draw every random number of the constructor "
        "from the `seed` argument (e.g. fasbench.training.seed_everything(seed)) so runs are reproducible"
    )
    assert _first_difference(_tensors(first), _tensors(build(seed=1))) is not None, (
        f"{where}: the builds with seed 0 and seed 1 are identical: the learner ignores `seed`, so every seed of a "
        "table would be the same run"
    )

    before = _trained(first)
    for index in range(steps):
        try:
            logs = _step(first, index)
        except Exception as error:
            raise AssertionError(
                f"{where}: update() failed at step {index}: {type(error).__name__}: {error}"
            ) from error
        assert logs, f"{where}: update() must return its losses as logs"
        for log_name, value in logs.items():
            assert torch.isfinite(torch.as_tensor(value)).all(), f"{where}: log {log_name!r} not finite at step {index}"
    after = _trained(first)
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True)), f"{where}: training changed nothing"

    fresh = build()
    _step(fresh, 0)
    state_before = _state(fresh)
    fresh.score(probe_images(fresh, 8, seed=99))
    changed = _first_difference(state_before, _state(fresh))
    assert changed is None, (
        f"{where}: score() changed {changed!r}: scoring must run in evaluation mode (BatchNorm would otherwise "
        "learn statistics from the target frames it scores: a domain-generalization leak)"
    )

    scored, plain = build(), build()
    _step(scored, 0)
    _step(plain, 0)
    scored.score(probe_images(scored, 8, seed=99))
    _step(scored, 1)
    _step(plain, 1)
    differs = _first_difference(_state(plain), _state(scored))
    assert differs is None, (
        f"{where}: a step after score() differs from one without it (first in {differs!r}): update() must put its "
        "networks back in training mode (and score() change nothing a step reads)"
    )

    images = probe_images(first, 8, seed=99)
    trained = steps
    while float(first.score(images).max() - first.score(images).min()) < SPREAD and trained < WARMUP:
        _step(first, trained)  # until evaluation-mode statistics make the scores tell the frames apart
        trained += 1
    scores = first.score(images)
    assert float(scores.max() - scores.min()) >= SPREAD, (
        f"{where}: after {trained} training steps score() still gives every probe frame the same P(live) "
        f"({float(scores.min()):.6f} to {float(scores.max()):.6f}): does it score its input?"
    )
    assert tuple(scores.shape) == (len(images),), f"{where}: score() must return shape ({len(images)},)"
    assert bool(((scores >= 0) & (scores <= 1)).all()), f"{where}: score() must return P(live) in [0, 1]"
    assert torch.equal(first.score(images), scores), f"{where}: score() must be deterministic"
    alone = torch.cat([first.score(images[index : index + 1]) for index in range(len(images))])
    mixed = first.score(torch.cat([images[:2], torch.rand_like(images)]))[:2]
    torch.testing.assert_close(
        alone, scores, rtol=1e-4, atol=1e-5,
        msg=lambda text: f"{where}: a frame's score depends on the rest of the batch ({text}); score each frame "
        "on its own (evaluation-mode BatchNorm, no batch statistics)",
    )  # fmt: skip
    torch.testing.assert_close(mixed, scores[:2], rtol=1e-4, atol=1e-5, msg=f"{where}: scores depend on the batch")
    if type(first).live_score is not Learner.live_score:  # optional: `fasbench attack` differentiates it
        probe = images.clone().requires_grad_(True)
        live = first.live_score(probe)
        torch.testing.assert_close(
            live.detach(), scores, rtol=1e-5, atol=1e-6, msg=f"{where}: live_score() must equal score() (with grad)"
        )
        differentiable = "live_score() must be differentiable with respect to the images"
        assert live.requires_grad, f"{where}: {differentiable} (its output carries no graph)"
        (gradient,) = torch.autograd.grad(live.float().sum(), probe)
        assert bool(torch.isfinite(gradient).all()) and float(gradient.abs().sum()) > 0, (
            f"{where}: {differentiable} (a finite, non-zero gradient)"
        )

    _check_no_host_reads(build(), where)

    resumed, uninterrupted = build(), build()
    for index in range(steps - 1):
        _step(resumed, index)
        _step(uninterrupted, index)
    buffer = io.BytesIO()
    torch.save(resumed.state_dict(), buffer)
    buffer.seek(0)
    try:
        state = torch.load(buffer, weights_only=True)
    except Exception as error:
        raise AssertionError(
            f"{where}: state_dict() must hold only tensors and plain containers (checkpoints load with "
            f"weights_only=True): {error}"
        ) from error
    restored = build()
    restored.load_state_dict(state)
    assert restored.step == steps - 1, f"{where}: load_state_dict must restore the step counter"
    _step(restored, steps - 1)
    _step(uninterrupted, steps - 1)
    differs = _first_difference(_tensors(uninterrupted), _tensors(restored))
    assert differs is None, (
        f"{where}: a learner restored from state_dict() after {steps - 1} steps differs from an uninterrupted one "
        f"after one more step, first in {differs!r}: state_dict() must hold everything a step reads (optimiser "
        "state, RNG states, step counter, running statistics)"
    )
