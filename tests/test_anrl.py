"""ANRL: one update against a hand-written step (gate-only fast weights, the second-order term, the moving
centres, the compatible and separable losses), a first-order control that must differ, and the network."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from fasbench_plugins.anrl import AdaptiveBlock

from fasbench.plugins import installed_plugins
from fasbench.testing import random_domain_batches

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = {"type": "anrl_cnn", "width": 0.0625, "input_size": 32}
K = 2


def build(**hparams):
    return installed_plugins().build(
        "learners",
        {"type": "anrl", "backbone": TINY, "hparams": {"batch_per_class": K, **hparams}},
        num_domains=3,
        seed=0,
    )


def E(x, c):  # noqa: N802 - the paper's name
    return ((x - c) ** 2).mean()


def hand_loss(learner, batch, centres, fast=None):
    """One domain's ANRL loss written out: its centres updated first, then CE + 0.1 depth + 1e-3 (IDC + ICS)."""
    if fast is None:
        catfeat = learner.backbone(batch.images).features
    else:
        catfeat = torch.func.functional_call(learner.backbone, fast, (batch.images,), strict=False).features
    logits, depth = learner.classifier(catfeat), learner.depth_head(catfeat)
    f = catfeat.mean(dim=(2, 3))
    live, spoof, d = f[:K], f[K:], batch.domain
    centres["live"][d] = 0.9 * centres["live"][d] + 0.1 * live.mean(0).detach()
    centres["spoof"][d] = 0.9 * centres["spoof"][d] + 0.1 * spoof.mean(0).detach()
    c_live, c_spoof = centres["live"], centres["spoof"]
    others = [k for k in range(3) if k != d]
    idc = 0.5 * sum(E(live, c_live[k]) for k in others) - E(live, c_live[d])
    ics = E(live, c_live[d]) - E(live, c_spoof[d]) - E(spoof, c_live[d])
    ce = F.cross_entropy(logits, batch.labels.long())
    return ce + 0.1 * F.mse_loss(depth, batch.depths) + 1e-3 * idc + 1e-3 * ics


def test_one_update_is_the_hand_written_anrl_step():
    learner, twin = build(), build()
    batches = random_domain_batches(learner, 3, K, seed=1)
    twin.train_mode()
    meta_train, meta_test = twin.draw_split()
    centres = {
        "live": torch.ones(3, twin.backbone.depth_channels),
        "spoof": torch.ones(3, twin.backbone.depth_channels),
    }
    train_loss = sum(hand_loss(twin, batches[i], centres) for i in meta_train)
    gates = {n: p for n, p in twin.backbone.named_parameters() if ".gate." in f".{n}"}
    assert len(gates) == 2 * 10  # the ten adaptive blocks' gate linears (weight, bias): nothing else is fast
    grads = torch.autograd.grad(train_loss, list(gates.values()), create_graph=True)
    fast = {n: p.detach() - 1e-4 * g for (n, p), g in zip(gates.items(), grads, strict=True)}
    test_loss = hand_loss(twin, batches[meta_test], centres, fast)
    optimizer = torch.optim.Adam(
        [p for m in (twin.backbone, twin.classifier, twin.depth_head) for p in m.parameters()],
        lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-5,
    )  # fmt: skip
    optimizer.zero_grad()
    (train_loss + test_loss).backward()
    optimizer.step()

    logs = learner.update(batches)
    torch.testing.assert_close(logs["meta_test"], test_loss.detach())
    for name in ("live", "spoof"):
        torch.testing.assert_close(getattr(learner.centres, name), centres[name], msg=f"centres.{name}")
    for module in ("backbone", "classifier", "depth_head"):
        got, want = getattr(learner, module).state_dict(), getattr(twin, module).state_dict()
        for key in got:
            torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-7, msg=f"{module}.{key}")


def test_the_second_order_term_reaches_the_gates_and_a_first_order_control_differs():
    batches = random_domain_batches(build(), 3, K, seed=4)
    second, first = build(), build(first_order=True)
    gate_grads = {}
    for label, learner in (("second", second), ("first", first)):
        learner.train_mode()
        split = learner.draw_split()
        train_loss, test_loss, fast = learner.compute_losses(learner.checked(batches), *split)
        gates = learner.gates()
        assert set(fast) == set(gates)
        meta_test = torch.autograd.grad(test_loss, list(gates.values()), allow_unused=True, retain_graph=True)
        gate_grads[label] = meta_test
    # the fast weights start from detached values: the meta-test loss reaches the gates only through the inner
    # gradient, so without the second-order term it does not reach them at all
    assert all(g is None or float(g.abs().max()) == 0.0 for g in gate_grads["first"])
    assert any(g is not None and float(g.abs().max()) > 0 for g in gate_grads["second"])
    # the whole step's gate gradient: the control lacks the second-order term (Adam's first step would hide it:
    # it moves every weight by about lr x sign(gradient))
    totals = {}
    for label, learner in (("second", build()), ("first", build(first_order=True))):
        learner.train_mode()
        train_loss, test_loss, _ = learner.compute_losses(learner.checked(batches), *learner.draw_split())
        totals[label] = torch.autograd.grad(train_loss + test_loss, list(learner.gates().values()))
    difference = max(float((a - b).abs().max()) for a, b in zip(totals["second"], totals["first"], strict=True))
    assert difference > 0


def test_centres_reset_every_epoch_and_travel_with_the_checkpoint():
    learner = build(epoch_steps=2)
    for step in range(3):
        learner.update(random_domain_batches(learner, 3, K, seed=step))
        learner.step += 1
    assert not torch.equal(learner.centres.live, torch.ones_like(learner.centres.live))
    state = learner.state_dict()
    assert "centres" in state["networks"] and "schedule" in state
    restored = build(epoch_steps=2)
    restored.load_state_dict(state)
    torch.testing.assert_close(restored.centres.spoof, learner.centres.spoof, rtol=0, atol=0)
    learner.centres.live.add_(1.0)
    learner.step = 4
    learner.update(random_domain_batches(learner, 3, K, seed=9))  # step 4: a new "epoch", centres start at ones
    moved = learner.centres.live
    assert float((moved - 1).abs().max()) < 1.0  # 0.9 x 1 + 0.1 x mean(f): near one, not the shifted values


def test_the_adaptive_block_mixes_batch_and_instance_norm_by_a_gate():
    torch.manual_seed(0)
    block = AdaptiveBlock(3, 4)
    images = torch.rand(2, 3, 5, 5)
    out = block.conv(images)
    gate = torch.sigmoid(block.gate(out.mean(dim=(2, 3))))[:, :, None, None]
    expected = F.relu(gate * block.batch_norm(out) + (1 - gate) * block.instance_norm(out))
    torch.testing.assert_close(block(images), expected)
    assert block.instance_norm.affine and not block.instance_norm.track_running_stats
