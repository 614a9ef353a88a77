"""SSDG-R: one update against a hand-written step of the authors' code (flip, scaled feature norm, in-place
column-normalised classifier, batch-all asymmetric triplets, gradient reversal on the live features only), the
triplet loss against brute force in both minings, the reversal's sign and schedule, per-protocol settings."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from fasbench_plugins import ssdg

from fasbench.benchmark import load_benchmark
from fasbench.plugins import installed_plugins
from fasbench.runs.config import resolve_run_config
from fasbench.testing import random_domain_batches

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = {"type": "timm:resnet18", "width": 0.0625, "input_size": 32}


def build(backbone=None, **hparams):
    return installed_plugins().build(
        "learners",
        {"type": "ssdg", "backbone": backbone or TINY, "hparams": {"batch_per_class": 4, **hparams}},
        num_domains=3,
        seed=0,
    )


def brute_force_triplet(features, classes, margin, mining):
    """The authors' loss written as loops over (anchor, positive, negative) with distances from differences."""
    n = len(classes)

    def d(i, j):
        return (features[i] - features[j]).pow(2).sum().sqrt() if i != j else features.new_zeros(())

    if mining == "hardest":
        terms = []
        for a in range(n):
            positives = [d(a, p) for p in range(n) if p != a and classes[p] == classes[a]]
            negatives = [d(a, q) for q in range(n) if classes[q] != classes[a]]
            hardest_positive = torch.stack(positives).max() if positives else features.new_zeros(())
            terms.append(F.relu(hardest_positive - torch.stack(negatives).min() + margin))
        return torch.stack(terms).mean()
    total, count = features.new_zeros(()), 0
    for a, p, q in itertools.permutations(range(n), 3):
        if classes[a] == classes[p] and classes[a] != classes[q]:
            term = F.relu(d(a, p) - d(a, q) + margin)
            total, count = total + term, count + int(term > 1e-16)
    return total / (count + 1e-16)


@pytest.mark.parametrize("mining", ["all", "hardest"])
def test_the_triplet_loss_is_the_brute_force_one_in_value_and_gradient(mining):
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(10, 4, generator=generator, dtype=torch.float64).requires_grad_()
    classes = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2, 2, 3])  # four live, then three source domains' spoofs
    got = ssdg.triplet_loss(features, classes, 0.5, mining)
    (got_grad,) = torch.autograd.grad(got, features)
    want = brute_force_triplet(features, classes, 0.5, mining)
    (want_grad,) = torch.autograd.grad(want, features)
    assert float(want.detach()) > 0
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got_grad, want_grad)


def test_hardest_mining_picks_the_farthest_positive_and_the_nearest_negative():
    # anchor 0 at the origin: positives at 1 and 3, negatives at 2 and 5 (on a line)
    features = torch.tensor([[0.0], [1.0], [3.0], [2.0], [5.0]], dtype=torch.float64)
    classes = torch.tensor([0, 0, 0, 1, 1])
    distances = ssdg.pairwise_distances(features)
    assert distances[0].tolist() == [0.0, 1.0, 3.0, 2.0, 5.0]
    loss = ssdg.triplet_loss(features, classes, 0.1, "hardest")
    # per anchor relu(max d(a, p) - min d(a, n) + 0.1): 0: 3 - 2; 1: 2 - 1; 2: 3 - 1; 3: 3 - 1; 4: 3 - 2
    assert float(loss) == pytest.approx((1.1 + 1.1 + 2.1 + 2.1 + 1.1) / 5)


def test_a_repeated_feature_has_a_zero_distance_and_a_finite_gradient():
    features = torch.tensor([[1.0, 2.0], [1.0, 2.0], [0.0, 0.0]], requires_grad=True)
    distances = ssdg.pairwise_distances(features).detach()
    assert float(distances[0, 1]) == 0.0 and float(distances[0, 0]) == 0.0
    ssdg.triplet_loss(features, torch.tensor([0, 0, 1]), 0.1).backward()
    assert torch.isfinite(features.grad).all()


def test_gradient_reversal_negates_and_scales_the_gradient_on_the_authors_schedule():
    x = torch.randn(3, 4, requires_grad=True)
    w = torch.randn(3, 4)
    (ssdg.GradientReversal.apply(x, 0.3) * w).sum().backward()
    torch.testing.assert_close(x.grad, -0.3 * w)
    learner = build()
    # i = step + 1 forwards so far; 2 / (1 + exp(-10 i / 4000)) - 1
    assert learner.reversal(0) == pytest.approx(2 / (1 + math.exp(-10 / 4000)) - 1)
    assert learner.reversal(3999) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert 0 < learner.reversal(0) < learner.reversal(1000) < learner.reversal(3999) < 1


def hand_forward(twin, batches):
    """The authors' forward by hand on ``twin``: flips and dropout masks drawn from its generator in the
    learner's order (flip, embedder's mask, discriminator's mask); the classifier column-normalised in place.
    Returns (features, labels, domain, classes, cls, keep)."""
    twin.train_mode()
    images = torch.cat([b.images for b in batches])
    labels = torch.cat([b.labels for b in batches]).long()
    domain = torch.tensor([0] * 8 + [1] * 8 + [2] * 8)
    chosen = torch.rand(24, generator=twin.generator) < 0.5  # RandomHorizontalFlip, one draw per frame
    images = torch.where(chosen.view(-1, 1, 1, 1), images.flip(-1), images)
    keep = [torch.rand(24, 512, generator=twin.generator) >= 0.5 for _ in range(2)]  # embedder's, discriminator's
    pooled = twin.backbone(images).features.mean(dim=(2, 3))
    fc = twin.embedder.fc
    hidden = F.relu(pooled @ fc.weight.T + fc.bias) * keep[0] / 0.5
    features = hidden / (hidden.norm(dim=1, keepdim=True).sqrt() * math.sqrt(2))
    with torch.no_grad():
        twin.classifier.weight /= twin.classifier.weight.norm(dim=0, keepdim=True)
    cls = F.cross_entropy(features @ twin.classifier.weight.T + twin.classifier.bias, labels)
    classes = torch.where(labels == 1, torch.zeros_like(domain), domain + 1)
    return features, labels, domain, classes, cls, keep


def test_one_update_is_the_authors_step():
    lr, weight_decay, coefficient = 1e-3, 5e-4, 2 / (1 + math.exp(-10 / 4000)) - 1
    learner, twin = build(), build()
    batches = random_domain_batches(learner, 3, 4, seed=1)

    # by hand, on the twin
    features, labels, domain, classes, cls, keep = hand_forward(twin, batches)
    triplet = brute_force_triplet(features, classes, 0.1, "all")
    detached = features.detach().requires_grad_()
    disc = twin.discriminator
    out = disc.out(F.relu(disc.hidden(detached)) * keep[1] / 0.5)
    live = labels == 1
    adversarial = 0.5 * F.cross_entropy(out[live], domain[live])  # the authors slice out the live rows
    disc_params = list(disc.parameters())
    reversed_grad, *disc_grads = torch.autograd.grad(adversarial, [detached, *disc_params])
    body = [p for name in ("backbone", "embedder", "classifier") for p in twin.networks()[name].parameters()]
    feature_side = cls + 1.0 * triplet + (features * (-coefficient * reversed_grad)).sum()
    body_grads = torch.autograd.grad(feature_side, body)
    with torch.no_grad():
        for p, g in zip([*body, *disc_params], [*body_grads, *disc_grads], strict=True):
            p -= lr * (g + weight_decay * p)  # SGD's first step: the velocity is the gradient (+ decay)

    torch.manual_seed(7)  # the global RNG plays no part
    losses = learner.update(batches)
    torch.testing.assert_close(losses["triplet"], triplet.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(losses["adversarial"], adversarial.detach() / 0.5, rtol=1e-5, atol=1e-6)
    for network in ("backbone", "embedder", "classifier", "discriminator"):
        mine, theirs = learner.networks()[network].state_dict(), twin.networks()[network].state_dict()
        for name, value in mine.items():
            torch.testing.assert_close(value, theirs[name], rtol=1e-5, atol=1e-6, msg=f"{network}.{name}")


def test_the_triplet_classes_are_live_together_and_each_domains_spoofs_apart(monkeypatch):
    seen = {}

    def spy(features, classes, margin, mining):
        seen.update(classes=classes.tolist(), margin=margin, mining=mining)
        return features.sum() * 0

    monkeypatch.setattr(ssdg, "triplet_loss", spy)
    learner = build(triplet_mining="hardest")
    learner.update(random_domain_batches(learner, 3, 2, seed=0))
    assert seen == {"classes": [0, 0, 1, 1, 0, 0, 2, 2, 0, 0, 3, 3], "margin": 0.1, "mining": "hardest"}


def test_the_score_is_the_live_softmax_of_the_normalised_classifier_and_changes_nothing():
    learner = build()
    learner.update(random_domain_batches(learner, 3, 4, seed=2))
    images = random_domain_batches(learner, 1, 3, seed=3)[0].images
    before = {k: v.clone() for k, v in learner.named_tensors().items()}
    scores = learner.score(images)
    for name, value in learner.named_tensors().items():
        assert torch.equal(value, before[name]), f"scoring changed {name}"
    for module in learner.networks().values():
        module.eval()
    with torch.no_grad():
        pooled = learner.backbone(images).features.mean(dim=(2, 3))
        hidden = F.relu(learner.embedder.fc(pooled))
        features = hidden / (hidden.norm(dim=1, keepdim=True).sqrt() * math.sqrt(2))
        weight = learner.classifier.weight / learner.classifier.weight.norm(dim=0, keepdim=True)
        expected = torch.softmax(features @ weight.T + learner.classifier.bias, dim=1)[:, 1]
    torch.testing.assert_close(scores, expected)


def test_the_learning_rate_drops_tenfold_at_the_protocols_step_and_icm_o_has_its_own_weights():
    benchmark, plugins = load_benchmark(), installed_plugins()

    def hparams(protocol):
        config = resolve_run_config(
            benchmark, plugins, learner="ssdg", protocol=protocol, suite="synthetic", seed=0, device="cpu"
        )
        return config["hparams"]

    icm_o, omi_c, oci_m = hparams("ICM_O"), hparams("OMI_C"), hparams("OCI_M")
    assert (icm_o["lr_drop_step"], icm_o["triplet_weight"], icm_o["adversarial_weight"]) == (1500, 2.0, 0.1)
    assert (omi_c["lr_drop_step"], omi_c["triplet_weight"], omi_c["adversarial_weight"]) == (500, 1.0, 0.5)
    assert oci_m["lr_drop_step"] == 1500 and oci_m["triplet_weight"] == 1.0
    learner = build(lr_drop_step=500)
    assert [learner.learning_rate(s) for s in (0, 499, 500, 3999)] == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4])


def test_the_last_stage_of_loaded_weights_is_fresh_as_in_the_authors_embedder(tmp_path):
    import timm

    source = timm.create_model("resnet18", features_only=True, channels=(4, 8, 16, 32), stem_width=4)
    with torch.no_grad():  # trained-looking weights: nothing equals a fresh initialisation
        for parameter in source.parameters():
            parameter.add_(torch.randn_like(parameter))
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    for reinit in (True, False):
        learner = build({**TINY, "pretrained": str(path)}, reinit_last_stage=reinit)
        loaded = learner.backbone.body.state_dict()
        compared = [key for key, _ in source.named_parameters()]
        assert any(key.startswith("layer4.") for key in compared) and any(key.startswith("layer3.") for key in compared)
        for key in compared:
            fresh = reinit and key.startswith("layer4.")
            assert torch.equal(loaded[key], source.state_dict()[key]) is not fresh, key
        if reinit:
            assert torch.equal(loaded["layer4.0.bn1.weight"], torch.ones(32))  # torchvision's BN initialisation


def test_late_in_training_the_features_get_the_reversed_discriminator_gradient():
    """At step 3999 the reversal weight is ~1: the embedder's gradient must be the classification and triplet
    gradient minus the weighted discriminator gradient (a missing or flipped reversal is far off)."""
    learner, twin = build(lr_drop_step=10**6), build(lr_drop_step=10**6)
    learner.step = twin.step = 3999
    coefficient = 2 / (1 + math.exp(-10 * 4000 / 4000)) - 1
    batches = random_domain_batches(learner, 3, 4, seed=5)
    learner.train_mode()
    learner.compute_losses(learner.checked(batches))["loss"].backward()
    got = learner.embedder.fc.weight.grad

    features, labels, domain, classes, cls, keep = hand_forward(twin, batches)
    fc = twin.embedder.fc
    triplet = brute_force_triplet(features, classes, 0.1, "all")
    disc = twin.discriminator
    out = disc.out(F.relu(disc.hidden(features)) * keep[1] / 0.5)
    live = labels == 1
    adversarial = 0.5 * F.cross_entropy(out[live], domain[live])
    (main,) = torch.autograd.grad(cls + triplet, fc.weight, retain_graph=True)
    (adv,) = torch.autograd.grad(adversarial, fc.weight)
    torch.testing.assert_close(got, main - coefficient * adv, rtol=1e-4, atol=1e-7)
    wrong = main + coefficient * adv  # no reversal
    assert float((got - wrong).norm()) > 100 * float((got - (main - coefficient * adv)).norm()) + 1e-6
