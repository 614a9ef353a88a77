"""MetaPattern (HFN+MP): one update against a hand-written step of the authors' alternating first-order
scheme, the score formula, the binary map target, and the fusion network's wiring."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fasbench.plugins import installed_plugins
from fasbench.testing import random_domain_batches

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = {"type": "timm:resnet50", "width": 0.0625, "input_size": 32}


def build(**hparams):
    return installed_plugins().build(
        "learners",
        {"type": "metapattern", "backbone": TINY, "hparams": {"batch_per_class": 8, **hparams}},
        num_domains=3,
        seed=0,
    )


def test_one_update_is_the_authors_alternating_step(tmp_path):
    learner, twin = build(), build()
    batches = random_domain_batches(learner, 3, 8, seed=1)
    pattern_lr, fusion_lr, momentum = 4e-3, 1e-3, 0.9

    # by hand, on the twin: the split, 4 inner SGD steps of the pattern extractor only, then one of the fusion net
    twin.train_mode()
    meta_train, meta_test = twin.draw_split()
    pattern_params, fusion_params = list(twin.pattern.parameters()), list(twin.fusion.parameters())
    fusion_before = [p.detach().clone() for p in fusion_params]
    velocity = [None] * len(pattern_params)
    test = batches[meta_test]
    for i in range(4):
        rows = torch.tensor([2 * i, 2 * i + 1, 8 + 2 * i, 8 + 2 * i + 1])  # 2 live + 2 spoof: 8 frames a class / 4
        images, labels = test.images[rows], test.labels[rows]
        live_map, logits = twin.fusion(images, twin.pattern(images))
        loss = F.mse_loss(live_map, labels.view(-1, 1, 1, 1).expand_as(live_map)) + F.cross_entropy(
            logits, labels.long()
        )
        grads = torch.autograd.grad(loss, pattern_params)
        with torch.no_grad():
            for j, (p, g) in enumerate(zip(pattern_params, grads, strict=True)):
                velocity[j] = g.clone() if velocity[j] is None else momentum * velocity[j] + g
                p -= pattern_lr * velocity[j]
    for p, before in zip(fusion_params, fusion_before, strict=True):
        assert torch.equal(p, before), "the inner loop changed the fusion network"
    first = [batches[i] for i in meta_train]
    images = torch.cat([b.images[:2] for b in first] + [b.images[8:10] for b in first])
    labels = torch.cat([b.labels[:2] for b in first] + [b.labels[8:10] for b in first])
    live_map, logits = twin.fusion(images, twin.pattern(images))
    outer = (
        F.mse_loss(live_map, labels.view(-1, 1, 1, 1).expand_as(live_map)) + F.cross_entropy(logits, labels.long())
    ) / 2
    pattern_after_inner = [p.detach().clone() for p in pattern_params]
    grads = torch.autograd.grad(outer, fusion_params, allow_unused=True)
    with torch.no_grad():
        for p, g in zip(fusion_params, grads, strict=True):
            if g is not None:
                p -= fusion_lr * g  # the first step of SGD with momentum: the velocity is the gradient
    for p, inner in zip(pattern_params, pattern_after_inner, strict=True):
        assert torch.equal(p, inner), "the outer step changed the pattern extractor"

    learner.update(batches)
    for (name, got), want in zip(learner.pattern.state_dict().items(), twin.pattern.state_dict().values(), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=f"pattern.{name}")
    for (name, got), want in zip(learner.fusion.state_dict().items(), twin.fusion.state_dict().values(), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=f"fusion.{name}")


def test_the_score_is_the_mean_of_the_map_and_the_live_probability():
    learner = build()
    learner.update(random_domain_batches(learner, 3, 8, seed=2))
    images = random_domain_batches(learner, 1, 3, seed=3)[0].images
    scores = learner.score(images)
    learner.pattern.eval()
    learner.fusion.eval()
    with torch.no_grad():
        live_map, logits = learner.fusion(images, learner.pattern(images))
    expected = (live_map.mean(dim=(1, 2, 3)) + torch.softmax(logits, dim=1)[:, 1]) / 2
    torch.testing.assert_close(scores, expected)


def test_the_fusion_network_averages_two_streams_that_start_alike():
    learner = build()
    fusion = learner.fusion
    for (name, a), b in zip(
        fusion.image_fpn.state_dict().items(), fusion.pattern_fpn.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), f"the FPN layers start differently in the two streams ({name})"
    body = fusion.image_stream.body.state_dict()
    assert all(torch.equal(v, fusion.pattern_stream.body.state_dict()[k]) for k, v in body.items())
    assert not fusion.image_stream.normalize and fusion.pattern_stream.normalize  # only the pattern is normalised
    images = torch.rand(2, 3, 32, 32)
    live_map, logits = fusion.eval()(images, learner.pattern.eval()(images))
    assert live_map.shape == (2, 1, 4, 4) and logits.shape == (2, 2)  # p3 at stride 8; two classes, index 1 live
    assert ((live_map > 0) & (live_map < 1)).all()
    head = fusion.map_head[0].weight
    assert abs(float(head.detach().std()) - 0.01) < 0.004 and float(fusion.map_head[0].bias.detach().abs().max()) == 0.0


def test_checkpoint_holds_both_networks_and_both_optimisers():
    learner = build()
    state = learner.state_dict()
    assert set(state["networks"]) == {"pattern", "fusion"} and set(state["optimizers"]) == {"fusion", "pattern"}
    groups = {name: opt.param_groups[0] for name, opt in zip(("fusion", "pattern"), learner.optimizers(), strict=True)}
    assert (groups["fusion"]["lr"], groups["pattern"]["lr"], groups["fusion"]["momentum"]) == (1e-3, 4e-3, 0.9)
