"""SA-FAS: one update against a hand-written step (per-domain logistic heads, SupCon over domain x label on two
views, SGD, then PG-IRM), the losses against direct formulas, PG-IRM against a hand computation, the schedule,
the score and the two views."""

from __future__ import annotations

import itertools

import pytest
import torch
from fasbench_plugins import safas

from fasbench.benchmark import load_benchmark
from fasbench.plugins import installed_plugins
from fasbench.runs.config import resolve_run_config
from fasbench.testing import random_domain_batches

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = {"type": "timm:resnet18", "width": 0.0625, "input_size": 32}
NO_VIEWS = {"rotation_degrees": 0.0, "crop_scale": [1.0, 1.0], "flip": 0.0}  # both views = the frame itself


def build(**hparams):
    return installed_plugins().build(
        "learners",
        {"type": "safas", "backbone": TINY, "hparams": {"batch_per_class": 4, **hparams}},
        num_domains=3,
        seed=0,
    )


def direct_supcon(features, classes, temperature, base=0.07):
    """Khosla et al.'s loss as a loop over anchors, for [view 1; view 2] rows and one class per frame."""
    unit = features / features.norm(dim=1, keepdim=True)
    classes = torch.cat([classes, classes]).tolist()
    n, losses = len(classes), []
    for i in range(n):
        others = [a for a in range(n) if a != i]
        log_denominator = torch.logsumexp(torch.stack([unit[i] @ unit[a] / temperature for a in others]), dim=0)
        positives = [p for p in others if classes[p] == classes[i]]
        mean_log_prob = torch.stack([unit[i] @ unit[p] / temperature - log_denominator for p in positives]).mean()
        losses.append(-(temperature / base) * mean_log_prob)
    return torch.stack(losses).mean()


def direct_head_bce(logits, head, labels, heads):
    """Each head's BCE (on probabilities, as the authors' nn.BCELoss) over its own rows; the sum over heads / heads."""
    total = logits.new_zeros(())
    for h in range(heads):
        rows = [r for r in range(len(head)) if int(head[r]) == h]
        if rows:
            p = torch.sigmoid(torch.stack([logits[r, h] for r in rows]))
            y = labels[rows]
            total = total - (y * p.log() + (1 - y) * (1 - p).log()).mean()
    return total / heads


def test_the_supervised_contrastive_loss_is_the_direct_formula_in_value_and_gradient():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(12, 5, generator=generator, dtype=torch.float64).requires_grad_()
    classes = torch.tensor([0, 1, 0, 2, 3, 2])  # (domain, label) pairs of six frames; the views are rows 6..11
    got = safas.supervised_contrastive(features, classes, 0.1)
    want = direct_supcon(features, classes, 0.1)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(*(torch.autograd.grad(loss, features)[0] for loss in (got, want)))


def test_each_head_is_trained_on_its_own_domain_only():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(7, 3, generator=generator, dtype=torch.float64)
    head = torch.tensor([0, 0, 1, 1, 1, 0, 0])  # head 2 has no rows: it adds 0
    labels = torch.tensor([1.0, 0, 1, 0, 0, 1, 1], dtype=torch.float64)
    torch.testing.assert_close(safas.per_head_bce(logits, head, labels, 3), direct_head_bce(logits, head, labels, 3))


def test_pg_irm_turns_each_head_towards_its_least_similar_partner_and_keeps_its_norm():
    weight = torch.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [-1.0, 1.0, 0.0]], dtype=torch.float64)
    old = weight.clone()
    safas.align_heads_(weight, 0.9)
    unit = [row / row.norm() for row in old]
    cosines = {(i, j): float(unit[i] @ unit[j]) for i, j in itertools.permutations(range(3), 2)}
    for i in range(3):
        partner = min((j for j in range(3) if j != i), key=lambda j: (cosines[i, j], j))
        mixed = 0.9 * unit[i] + 0.1 * unit[partner]
        torch.testing.assert_close(weight[i], old[i].norm() * mixed / mixed.norm())
    # by hand: head 0's least similar is head 2 (cosine -0.71), head 1's is head 0 (0 < 0.71), head 2's is head 0
    assert [min((j for j in range(3) if j != i), key=lambda j: cosines[i, j]) for i in range(3)] == [2, 0, 0]
    two = old[:2].clone()
    safas.align_heads_(two, 0.5)
    torch.testing.assert_close(two[0] / two[0].norm(), two[1] / two[1].norm())  # two heads: each other's partner


def test_one_update_is_the_authors_step_then_pg_irm():
    lr, weight_decay = 0.005, 5e-4
    learner, twin = build(align_start_epoch=0, **NO_VIEWS), build(align_start_epoch=0, **NO_VIEWS)
    batches = random_domain_batches(learner, 3, 4, seed=1)

    twin.train_mode()
    images = torch.cat([b.images for b in batches])
    labels = torch.cat([b.labels for b in batches])
    domain = torch.tensor([0] * 8 + [1] * 8 + [2] * 8)
    features = twin.backbone(torch.cat([images, images])).features.mean(dim=(2, 3))
    logits = features @ twin.heads.weight.T + twin.heads.bias
    cls = direct_head_bce(logits, torch.cat([domain, domain]), torch.cat([labels, labels]), 3)
    supcon = direct_supcon(features, domain * 2 + labels.long(), 0.1)
    params = [p for module in twin.networks().values() for p in module.parameters()]
    grads = torch.autograd.grad(cls + 0.1 * supcon, params)
    with torch.no_grad():
        for p, g in zip(params, grads, strict=True):
            p -= lr * (g + weight_decay * p)
        rows = twin.heads.weight.clone()
        for i in range(3):
            unit = [row / (row.norm() + 1e-10) for row in rows]
            partner = min((j for j in range(3) if j != i), key=lambda j: float(unit[i] @ unit[j]))
            mixed = 0.995 * unit[i] + 0.005 * unit[partner]
            twin.heads.weight[i] = rows[i].norm() * mixed / (mixed.norm() + 1e-10)

    losses = learner.update(batches)
    torch.testing.assert_close(losses["cls"], cls.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(losses["supcon"], supcon.detach(), rtol=1e-5, atol=1e-6)
    for network in ("backbone", "heads"):
        mine, theirs = learner.networks()[network].state_dict(), twin.networks()[network].state_dict()
        for name, value in mine.items():
            torch.testing.assert_close(value, theirs[name], rtol=1e-5, atol=1e-6, msg=f"{network}.{name}")


def test_pg_irm_waits_for_its_epoch_and_the_lr_halves_every_40_epochs():
    learner = build()
    assert [learner.aligning(s) for s in (0, 999, 1000, 4999)] == [False, False, True, True]  # epoch 20 x 50 steps
    assert [learner.learning_rate(s) for s in (0, 1999, 2000, 4000)] == pytest.approx([0.005, 0.005, 0.0025, 0.00125])
    assert not build(pg_irm=False).aligning(4999)
    config = resolve_run_config(
        load_benchmark(),
        installed_plugins(),
        learner="safas",
        protocol="ICM_O",
        suite="synthetic",
        seed=0,
        device="cpu",
    )
    assert (config["hparams"]["epoch_steps"], config["hparams"]["lr_step_epochs"]) == (17, 120)
    icm_o = build(**{k: config["hparams"][k] for k in ("epoch_steps", "lr_step_epochs")})
    assert [icm_o.aligning(s) for s in (339, 340)] == [False, True]  # epoch 20 of the authors' 300
    assert [icm_o.learning_rate(s) for s in (2039, 2040, 4080)] == pytest.approx([0.005, 0.0025, 0.00125])


def test_the_two_views_differ_and_each_is_a_rotated_resized_crop():
    learner = build()
    images = random_domain_batches(learner, 1, 2, seed=4)[0].images
    views = learner.views(images)
    assert views.shape == (8, *images.shape[1:])
    assert not torch.allclose(views[:4], views[4:]) and not torch.allclose(views[:4], images)
    still = build(**NO_VIEWS).views(images)
    assert torch.equal(still[:4], images) and torch.equal(still[4:], images)


def test_the_score_is_the_mean_of_the_heads_live_probabilities():
    learner = build()
    learner.update(random_domain_batches(learner, 3, 4, seed=2))
    images = random_domain_batches(learner, 1, 3, seed=3)[0].images
    scores = learner.score(images)
    for module in learner.networks().values():
        module.eval()
    with torch.no_grad():
        features = learner.backbone(images).features.mean(dim=(2, 3))
        probabilities = [torch.sigmoid(features @ learner.heads.weight[h] + learner.heads.bias[h]) for h in range(3)]
    torch.testing.assert_close(scores, sum(probabilities) / 3)
