"""fasbench.training: inner steps against hand-derived gradients, buffer policies, RNG capture, guards."""

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fasbench.errors import FasbenchError, TrainingError
from fasbench.options import require_choice, require_flag, require_number
from fasbench.training import (
    FiniteLossGuard,
    autocast,
    build_optimizer,
    capture_rng_state,
    functional_forward,
    inner_sgd_step,
    named_parameters,
    restore_rng_state,
    seed_everything,
    seeded_generator,
)

pytestmark = pytest.mark.usefixtures("one_thread")


# -- inner steps ------------------------------------------------------------------------------------
def _meta_gradient(first_order: bool) -> float:
    """d/dw of (w' c - d)^2 with w' = w - alpha * d/dw (w a - b)^2, through inner_sgd_step."""
    w = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    a, b, c, d, alpha = 2.0, 1.0, 3.0, 4.0, 0.1
    inner = (w * a - b) ** 2
    adapted = inner_sgd_step({"w": w}, inner, alpha, first_order=first_order)
    outer = (adapted["w"] * c - d) ** 2
    (grad,) = torch.autograd.grad(outer, [w])
    return float(grad)


def test_inner_step_second_order_matches_the_chain_rule_by_hand():
    # w' = 0.5 - 0.1 * 2 * 2 * (0.5 * 2 - 1) = 0.5; outer'(w') = 2 (0.5 * 3 - 4) * 3 = -15
    # dw'/dw = 1 - 2 * alpha * a^2 = 1 - 0.8 = 0.2 (second order) or 1 (first order)
    assert _meta_gradient(first_order=False) == pytest.approx(-15 * 0.2, abs=1e-12)
    assert _meta_gradient(first_order=True) == pytest.approx(-15.0, abs=1e-12)


def test_inner_step_returns_new_tensors_and_keeps_unused_and_frozen_parameters():
    used = torch.tensor([1.0, 2.0], requires_grad=True)
    unused = torch.tensor([3.0], requires_grad=True)
    frozen = torch.tensor([5.0])
    loss = (used**2).sum()
    stepped = inner_sgd_step({"used": used, "unused": unused, "frozen": frozen}, loss, 0.25)
    torch.testing.assert_close(stepped["used"], torch.tensor([0.5, 1.0]))  # 1 - 0.25 * 2, 2 - 0.25 * 4
    assert stepped["unused"] is unused and stepped["frozen"] is frozen
    torch.testing.assert_close(used, torch.tensor([1.0, 2.0]))  # the original is untouched
    loss.backward()  # the graph of the inner loss is kept for the outer step
    torch.testing.assert_close(used.grad, torch.tensor([2.0, 4.0]))


def test_inner_step_is_the_per_parameter_step_bit_for_bit_values_and_meta_gradients():
    """The multi-tensor step does the arithmetic of ``theta - alpha * grad`` per parameter, to the last bit."""
    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 1))
    params = named_parameters(net)
    images, labels = torch.randn(5, 3, 6, 6), torch.rand(5, 1)

    def loss_of(values):
        return ((torch.func.functional_call(net, values, (images,)) - labels) ** 2).mean()

    inner = loss_of(params)
    stepped = inner_sgd_step(params, inner, 0.37)
    grads = torch.autograd.grad(inner, list(params.values()), create_graph=True, retain_graph=True)
    by_hand = {name: value - 0.37 * grad for (name, value), grad in zip(params.items(), grads, strict=True)}
    assert all(torch.equal(stepped[name], by_hand[name]) for name in params)
    ours = torch.autograd.grad(loss_of(stepped), list(params.values()), retain_graph=True)
    hand = torch.autograd.grad(loss_of(by_hand), list(params.values()))
    assert all(torch.equal(a, b) for a, b in zip(ours, hand, strict=True))


def test_named_parameters_lists_trainable_parameters_only():
    layer = nn.Linear(2, 1)
    layer.bias.requires_grad_(False)
    assert list(named_parameters(layer)) == ["weight"]


# -- functional forward and BatchNorm ---------------------------------------------------------------
def _bn_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3, momentum=1.0))


def test_functional_forward_uses_the_given_parameters_and_batch_statistics():
    net = _bn_net()
    x = torch.randn(4, 2, 5, 5)
    params = {name: p.detach() * 2 for name, p in net.named_parameters()}
    out = functional_forward(net, params, x)
    conv = F.conv2d(x, params["0.weight"], params["0.bias"], padding=1)
    mean, var = conv.mean((0, 2, 3), keepdim=True), conv.var((0, 2, 3), unbiased=False, keepdim=True)
    want = (conv - mean) / torch.sqrt(var + 1e-5) * params["1.weight"].view(1, -1, 1, 1) + params["1.bias"].view(
        1, -1, 1, 1
    )
    torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-5)


def test_cloned_buffers_leave_running_statistics_alone_and_shared_ones_update_them():
    net = _bn_net()
    x = torch.randn(4, 2, 5, 5) + 3.0
    params = dict(net.named_parameters())
    functional_forward(net, params, x, buffers="clone")
    torch.testing.assert_close(net[1].running_mean, torch.zeros(3))
    assert int(net[1].num_batches_tracked) == 0
    functional_forward(net, params, x, buffers="shared")
    conv_mean = net[0](x).mean((0, 2, 3)).detach()
    torch.testing.assert_close(net[1].running_mean, conv_mean)  # momentum 1: the batch's mean
    with pytest.raises(FasbenchError, match="buffers must be one of"):
        functional_forward(net, params, x, buffers="copy")


# -- RNG ------------------------------------------------------------------------------------------
def _draws(generator: torch.Generator) -> tuple:
    return (
        random.random(),
        float(np.random.rand()),
        float(torch.rand(())),
        float(torch.rand((), generator=generator)),
    )


def test_rng_capture_and_restore_replays_every_stream():
    seed_everything(3)
    generator = seeded_generator(7)
    _draws(generator)
    state = capture_rng_state({"split": generator})
    first = _draws(generator)
    restore_rng_state(state, {"split": generator})
    assert _draws(generator) == first
    with pytest.raises(FasbenchError, match="no state for the random generator 'other'"):
        restore_rng_state(state, {"other": torch.Generator()})


def test_seed_everything_is_reproducible_and_seeds_differ():
    seed_everything(11)
    a = _draws(seeded_generator(1))
    seed_everything(11)
    assert _draws(seeded_generator(1)) == a
    seed_everything(12)
    assert _draws(seeded_generator(2)) != a


# -- optimisers and precision -----------------------------------------------------------------------
def test_build_optimizer_adam_first_step_is_minus_lr_times_sign():
    weight = nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer = build_optimizer([weight], name="adam", lr=0.1, betas=[0.9, 0.999])
    weight.grad = torch.tensor([3.0, -0.5])
    optimizer.step()
    torch.testing.assert_close(weight.detach(), torch.tensor([0.9, -1.9]))  # m/sqrt(v) = sign(g) at step 1


def test_build_optimizer_sgd_with_momentum_and_bad_input():
    weight = nn.Parameter(torch.tensor([1.0]))
    optimizer = build_optimizer([weight], name="sgd", lr=0.5, momentum=0.9)
    for _ in range(2):
        weight.grad = torch.tensor([1.0])
        optimizer.step()
    torch.testing.assert_close(weight.detach(), torch.tensor([1.0 - 0.5 - 0.5 * 1.9]))
    with pytest.raises(FasbenchError, match="optimizer must be one of 'adam', 'sgd'"):
        build_optimizer([weight], name="rmsprop", lr=0.1)
    with pytest.raises(FasbenchError, match="two betas"):
        build_optimizer([weight], lr=0.1, betas=[0.9])


def test_autocast_bf16_and_none():
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with autocast("cpu", "bf16"):
        assert (a @ b).dtype == torch.bfloat16
    with autocast("cpu", "none"):
        assert (a @ b).dtype == torch.float32
    with pytest.raises(FasbenchError, match="amp must be one of 'none', 'bf16'"):
        autocast("cpu", "fp16")


# -- guards and checks ------------------------------------------------------------------------------
def test_finite_loss_guard_names_the_first_bad_step_and_loss():
    guard = FiniteLossGuard()  # on the CPU: raises in observe
    guard.observe({"cls": torch.tensor(0.5), "dep": torch.tensor(0.1)}, step=1)
    with pytest.raises(TrainingError, match=r"non-finite loss 'dep' at step 2"):
        guard.observe({"cls": torch.tensor(0.4), "dep": torch.tensor(float("inf"))}, step=2)
    with pytest.raises(TrainingError, match=r"loss 'dep' at step 2"):  # later steps keep the first report
        guard.observe({"cls": torch.tensor(float("nan")), "dep": torch.tensor(float("nan"))}, step=3)


def test_a_deferred_guard_reports_the_first_bad_step_when_asked():
    """How it runs on an accelerator: observe never reads the device; raise_if_bad does."""
    guard = FiniteLossGuard(eager=False)
    guard.raise_if_bad()  # nothing observed yet
    guard.observe({"cls": torch.tensor(0.5)}, step=1)
    guard.raise_if_bad()
    guard.observe({"cls": torch.tensor(float("nan"))}, step=2)
    guard.observe({"cls": torch.tensor(float("inf"))}, step=3)
    with pytest.raises(TrainingError, match=r"non-finite loss 'cls' at step 2"):
        guard.raise_if_bad()


def test_require_helpers_refuse_bad_values_with_the_name():
    assert require_choice("hparams.amp", "bf16", ("none", "bf16")) == "bf16"
    with pytest.raises(FasbenchError, match="hparams.lr must be a number >= 0"):
        require_number("hparams.lr", -1.0)
    with pytest.raises(FasbenchError, match="must be an integer >= 1"):
        require_number("hparams.k", 2.5, minimum=1, integer=True)
    with pytest.raises(FasbenchError, match="must be a number"):
        require_number("hparams.lr", True)
    with pytest.raises(FasbenchError, match="hparams.first_order must be true or false"):
        require_flag("hparams.first_order", "yes")
