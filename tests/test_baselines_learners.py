"""The five baseline learners on a tiny RF-Meta network (32 px, width 1/16): contract, updates, resume."""

from __future__ import annotations

import pytest
import torch
from fasbench_plugins.baselines import LEARNERS, MLDG, MetaReg, Reptile
from fasbench_plugins.baselines.meta_steps import mldg_objective

from fasbench.errors import FasbenchError
from fasbench.learners import bce, pool
from fasbench.plugins import installed_plugins
from fasbench.testing import random_domain_batches
from fasbench.training import functional_forward

pytestmark = pytest.mark.usefixtures("one_thread")


TINY = {"type": "rfmeta_cnn", "width": 0.0625, "input_size": 32}
NAMES = [learner.name for learner in LEARNERS]


def build(name: str, num_domains: int = 3, seed: int = 0, **hparams):
    return installed_plugins().build(
        "learners",
        {"type": name, "backbone": TINY, "hparams": {"batch_per_class": 2, **hparams}},
        num_domains=num_domains,
        device="cpu",
        seed=seed,
    )


def weights(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def same(first: list[torch.Tensor], second: list[torch.Tensor]) -> bool:
    return all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


@pytest.mark.parametrize("name", NAMES)
def test_every_learner_starts_from_the_same_networks(name: str) -> None:
    reference = build("binary_cnn")
    learner = build(name)
    assert same(weights(learner.backbone), weights(reference.backbone))
    assert same(weights(learner.classifier), weights(reference.classifier))


@pytest.mark.parametrize("name", NAMES)
def test_update_checks_its_batches(name: str) -> None:
    learner = build(name)
    batches = random_domain_batches(learner, 3, 2, seed=0)
    with pytest.raises(FasbenchError, match="3 source domains but update\\(\\) got 2"):
        learner.update(batches[:2])
    batches[1].images = batches[1].images[:, :, :16, :16]
    with pytest.raises(FasbenchError, match="domain 1: images are"):
        learner.update(batches)


def test_unknown_or_bad_hyper_parameters_are_refused() -> None:
    with pytest.raises(FasbenchError, match="has no hyper-parameter 'alpha'"):
        build("reptile", alpha=1.0)
    with pytest.raises(FasbenchError, match="meta_test_domains=3 leaves no meta-train domain"):
        build("mldg", meta_test_domains=3)
    with pytest.raises(FasbenchError, match="inner_steps must be an integer >= 1"):
        build("reptile", inner_steps=0)
    with pytest.raises(FasbenchError, match="learner 'metareg' needs at least 2 source domain"):
        build("metareg", num_domains=1)


@pytest.mark.parametrize("num_domains, held_out", [(3, 1), (4, 2)])
def test_mldg_update_equals_the_objective_on_its_drawn_split(num_domains: int, held_out: int) -> None:
    """One learner step = one Adam step on F(meta-train) + beta G(meta-test) with the split it drew."""
    hparams = {"alpha": 0.5, "beta": 2.0, "meta_test_domains": held_out}
    learner, twin = build("mldg", num_domains, **hparams), build("mldg", num_domains, **hparams)
    batches = random_domain_batches(learner, num_domains, 2, seed=4)
    meta_train, meta_test = MLDG.draw_split(twin)  # the twin's generator draws what the learner will draw
    assert len(meta_test) == held_out and sorted(meta_train + meta_test) == list(range(num_domains))
    learner.update(batches)

    def loss_on(indices, buffers):
        pooled = pool([batches[i] for i in indices])
        return lambda params: bce(
            functional_forward(twin.binary_network, params, pooled.images, buffers=buffers), pooled.labels
        )

    twin.train_mode()
    params = dict(twin.binary_network.named_parameters())
    objective, _, _ = mldg_objective(
        params, loss_on(meta_train, "shared"), loss_on(meta_test, "clone"), alpha=0.5, beta=2.0
    )
    objective.backward()
    gradient_norm = torch.stack([p.grad.norm() for p in params.values()]).norm()
    assert gradient_norm > 0
    twin.optimizers()[0].step()
    assert same(weights(learner.binary_network), weights(twin.binary_network))
    assert same(list(learner.binary_network.buffers()), list(twin.binary_network.buffers()))


def test_mldg_first_order_differs_from_second_order() -> None:
    batches = random_domain_batches(build("mldg"), 3, 2, seed=1)
    results = []
    for first_order in (False, True):
        learner = build("mldg", alpha=0.5, first_order=first_order, optimizer="sgd", momentum=0.0, lr=0.1)
        learner.update(batches)
        results.append(weights(learner.binary_network))
    assert not same(*results)


def test_reptile_update_interpolates_towards_the_adapted_weights() -> None:
    """theta_new = theta + eps (phi - theta) with phi from k plain SGD steps on the drawn domain alone."""
    learner = build("reptile", inner_steps=2, inner_lr=0.05, outer_step_size=0.25)
    twin = build("reptile", inner_steps=2, inner_lr=0.05, outer_step_size=0.25)
    batches = random_domain_batches(learner, 3, 2, seed=2)
    domain = Reptile.draw_domain(twin)
    theta = weights(twin.binary_network)
    learner.update(batches)

    twin.train_mode()
    sgd = torch.optim.SGD(twin.binary_network.parameters(), lr=0.05)
    for _ in range(2):
        sgd.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(
            twin.binary_network(batches[domain].images), batches[domain].labels
        ).backward()
        sgd.step()
    phi = weights(twin.binary_network)
    for got, start, adapted in zip(weights(learner.binary_network), theta, phi, strict=True):
        torch.testing.assert_close(got, start + 0.25 * (adapted - start), rtol=1e-5, atol=1e-6)


def test_metareg_meta_gradient_is_nonzero_and_changes_the_final_head() -> None:
    """Same seed, same data; the only difference is meta_lr 0 (phi frozen): the final head must differ."""
    learned, frozen = build("metareg"), build("metareg", meta_lr=0.0)
    phi_before = weights(learned.regulariser)
    batches = random_domain_batches(learned, 3, 2, seed=3)
    learned.update(batches)
    frozen.update(batches)
    gradients = [w.grad for w in learned.regulariser.weights]
    assert any(g is not None and g.abs().max() > 0 for g in gradients), "phi received no meta-gradient"
    assert not same(weights(learned.regulariser), phi_before)
    assert same(weights(frozen.regulariser), phi_before)
    assert same(weights(learned.backbone), weights(frozen.backbone)), "phi must not reach the feature network"
    assert same(weights(learned.domain_heads), weights(frozen.domain_heads))
    assert not same(weights(learned.classifier), weights(frozen.classifier)), "phi must shape the final head"
    assert all((w >= 0).all() for w in learned.regulariser.weights)


def test_metareg_regulariser_is_the_weighted_l1_of_the_final_head() -> None:
    learner = build("metareg", reg_init=0.5)
    head = dict(learner.classifier.named_parameters())
    expected = 0.5 * sum(p.abs().sum() for p in head.values())
    torch.testing.assert_close(learner.regulariser(head), expected)
    assert isinstance(learner, MetaReg)


def test_same_seed_same_parameters_after_three_steps() -> None:
    for name in ("mldg", "reptile", "metareg"):
        runs = []
        for _ in range(2):
            learner = build(name, seed=5)
            for step in range(3):
                learner.update(random_domain_batches(learner, 3, 2, seed=step))
            runs.append(weights(learner.binary_network))
        assert same(*runs), name


def test_auxiliary_update_is_one_adam_step_on_bce_plus_weighted_depth_mse() -> None:
    learner, twin = build("auxiliary", depth_weight=3.0), build("auxiliary", depth_weight=3.0)
    batches = random_domain_batches(learner, 3, 2, seed=6)
    logs = learner.update(batches)
    twin.train_mode()
    images = torch.cat([b.images for b in batches])
    output = twin.backbone(images)
    cls = torch.nn.functional.binary_cross_entropy_with_logits(
        twin.classifier(output.features), torch.cat([b.labels for b in batches])
    )
    depth = torch.nn.functional.mse_loss(twin.depth_head(output.depth_features), torch.cat([b.depths for b in batches]))
    torch.testing.assert_close(logs["loss"], cls.detach() + 3.0 * depth.detach())
    (optimizer,) = twin.optimizers()
    (cls + 3.0 * depth).backward()
    assert all(p.grad is not None and p.grad.abs().max() > 0 for p in twin.depth_head.parameters())
    optimizer.step()
    for name, module in learner.networks().items():
        assert same(weights(module), weights(twin.networks()[name])), name


@pytest.mark.parametrize("budget, step, factor", [(None, 3, 1.0), (4, 0, 1.0), (4, 2, 0.5), (4, 4, 0.0)])
def test_reptile_anneals_epsilon_linearly_over_the_budget(budget, step, factor) -> None:
    learner = build("reptile", outer_step_size=0.4)
    learner.budget, learner.step = budget, step
    assert learner.outer_step_size() == pytest.approx(0.4 * factor)
    assert build("reptile", outer_step_size=0.4, anneal=False).outer_step_size() == 0.4


def test_metareg_update_equals_its_algorithm_on_the_drawn_pair() -> None:
    """Meta step of phi from T_a (l steps at inner_lr on domain a, loss on domain b), then the supervised step."""
    hparams = {"meta_train_steps": 3, "inner_lr": 0.05, "meta_lr": 0.01, "reg_init": 0.01}
    learner, twin = build("metareg", **hparams), build("metareg", **hparams)
    batches = random_domain_batches(learner, 3, 2, seed=9)
    a, b = MetaReg.draw_pair(twin)
    assert a != b
    learner.update(batches)

    twin.train_mode()
    features = twin.backbone(torch.cat([x.images for x in batches])).features
    per_domain = features.split([len(x.labels) for x in batches])
    head_a = twin.domain_heads[a]

    def head_loss(domain):
        return lambda params: bce(
            functional_forward(head_a, params, per_domain[domain].detach(), buffers="clone"), batches[domain].labels
        )

    phi = twin.regulariser.by_name()
    beta = {name: p.detach().requires_grad_(True) for name, p in head_a.named_parameters()}
    for _ in range(3):  # l steps on L_a + R_phi, by hand
        inner = head_loss(a)(beta) + sum((phi[name] * beta[name].abs()).sum() for name in phi)
        grads = torch.autograd.grad(inner, list(beta.values()), create_graph=True)
        beta = {name: value - 0.05 * grad for (name, value), grad in zip(beta.items(), grads, strict=True)}
    twin.outer_step(head_loss(b)(beta), "meta")
    twin.regulariser.project()
    assert same(weights(learner.regulariser), weights(twin.regulariser))

    domain_cls = torch.stack(
        [bce(head(f), x.labels) for head, f, x in zip(twin.domain_heads, per_domain, batches, strict=True)]
    ).mean()
    final = bce(twin.classifier(features.detach()), torch.cat([x.labels for x in batches]))
    pairs = zip(twin.regulariser.weights, twin.classifier.parameters(), strict=True)
    penalty = sum((w.detach() * p.abs()).sum() for w, p in pairs)
    twin.outer_step(domain_cls + final + penalty)
    for name, module in learner.networks().items():
        assert same(weights(module), weights(twin.networks()[name])), name
