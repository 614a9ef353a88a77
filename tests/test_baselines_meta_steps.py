"""The meta-learning cores against updates computed by hand (numpy, closed-form gradients and Hessians).

Model: a linear regressor z = [w, b] on design A = [X, 1] with mean squared error
L(z) = |A z - y|^2 / n, whose gradient is 2 A^T (A z - y) / n and whose Hessian is 2 A^T A / n.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fasbench_plugins.baselines.meta_steps import (
    metareg_meta_loss,
    mldg_objective,
    reptile_outer_gradient,
    weighted_l1,
)
from torch.func import functional_call

RNG = np.random.default_rng(7)
X_TRAIN, Y_TRAIN = RNG.normal(size=(6, 3)), RNG.normal(size=6)
X_TEST, Y_TEST = RNG.normal(size=(5, 3)), RNG.normal(size=5)
WEIGHT, BIAS = RNG.normal(size=3), RNG.normal(size=1)


def design(x: np.ndarray) -> np.ndarray:
    return np.hstack([x, np.ones((len(x), 1))])


def grad_mse(z: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    a = design(x)
    return 2 * a.T @ (a @ z - y) / len(y)


def hessian_mse(x: np.ndarray) -> np.ndarray:
    a = design(x)
    return 2 * a.T @ a / len(a)


def tiny_model() -> torch.nn.Linear:
    model = torch.nn.Linear(3, 1).double()
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(WEIGHT)[None])
        model.bias.copy_(torch.from_numpy(BIAS))
    return model


def mse_of(model: torch.nn.Module, x: np.ndarray, y: np.ndarray):
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    return lambda params: ((functional_call(model, dict(params), (inputs,))[:, 0] - targets) ** 2).mean()


def flat(model: torch.nn.Module) -> np.ndarray:
    return np.concatenate([model.weight.detach().numpy()[0], model.bias.detach().numpy()])


Z0 = np.concatenate([WEIGHT, BIAS])


@pytest.mark.parametrize("first_order", [False, True])
def test_mldg_update_equals_hand_computed(first_order: bool) -> None:
    alpha, beta, lr = 0.3, 0.7, 0.1
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    objective, train, test = mldg_objective(
        dict(model.named_parameters()),
        mse_of(model, X_TRAIN, Y_TRAIN),
        mse_of(model, X_TEST, Y_TEST),
        alpha=alpha,
        beta=beta,
        first_order=first_order,
    )
    objective.backward()
    optimizer.step()

    grad_train = grad_mse(Z0, X_TRAIN, Y_TRAIN)
    adapted = Z0 - alpha * grad_train
    jacobian = np.eye(4) if first_order else np.eye(4) - alpha * hessian_mse(X_TRAIN)
    expected = Z0 - lr * (grad_train + beta * jacobian @ grad_mse(adapted, X_TEST, Y_TEST))
    np.testing.assert_allclose(flat(model), expected, rtol=0, atol=1e-12)
    a_test = design(X_TEST)
    np.testing.assert_allclose(test.item(), np.mean((a_test @ adapted - Y_TEST) ** 2), atol=1e-12)
    np.testing.assert_allclose(objective.item(), train.item() + beta * test.item(), atol=1e-12)


def test_mldg_second_order_term_matters() -> None:
    grads = {}
    for first_order in (False, True):
        model = tiny_model()
        mldg_objective(
            dict(model.named_parameters()),
            mse_of(model, X_TRAIN, Y_TRAIN),
            mse_of(model, X_TEST, Y_TEST),
            alpha=0.3,
            beta=1.0,
            first_order=first_order,
        )[0].backward()
        grads[first_order] = model.weight.grad.clone()
    assert (grads[False] - grads[True]).abs().max() > 1e-3


def test_reptile_update_equals_hand_computed() -> None:
    inner_lr, epsilon, steps = 0.05, 0.4, 3
    model = tiny_model()
    outer = torch.optim.SGD(model.parameters(), lr=epsilon)
    loss = mse_of(model, X_TRAIN, Y_TRAIN)
    parameters = list(model.parameters())
    last = reptile_outer_gradient(parameters, lambda: loss(dict(model.named_parameters())), steps=steps, lr=inner_lr)
    np.testing.assert_array_equal(flat(model), Z0)  # back at theta, the outer step not taken yet
    outer.step()

    phi = Z0.copy()
    for _ in range(steps):
        before = phi
        phi = phi - inner_lr * grad_mse(phi, X_TRAIN, Y_TRAIN)
    np.testing.assert_allclose(flat(model), Z0 + epsilon * (phi - Z0), rtol=0, atol=1e-12)
    a = design(X_TRAIN)
    np.testing.assert_allclose(last.item(), np.mean((a @ before - Y_TRAIN) ** 2), atol=1e-12)


def test_reptile_refuses_zero_inner_steps() -> None:
    model = tiny_model()
    with pytest.raises(ValueError, match="at least one inner step"):
        reptile_outer_gradient(list(model.parameters()), lambda: model.weight.sum(), steps=0, lr=0.1)


def test_weighted_l1_by_hand() -> None:
    params = [torch.tensor([1.0, -2.0]), torch.tensor([[-3.0]])]
    weights = [torch.tensor([0.5, 0.25]), torch.tensor([[2.0]])]
    assert weighted_l1(params, weights).item() == pytest.approx(0.5 + 0.5 + 6.0)


def test_metareg_meta_gradient_equals_hand_computed_for_one_step() -> None:
    """With l = 1: beta_1 = z - lr (grad L_a(z) + phi * sign(z)), so dL_b/dphi = -lr sign(z) * grad L_b(beta_1)."""
    lr = 0.2
    model = tiny_model()
    phi_np = np.array([0.1, 0.5, 0.0, 0.3]) + 0.05
    phi = {
        "weight": torch.tensor(phi_np[None, :3], requires_grad=True),
        "bias": torch.tensor(phi_np[3:], requires_grad=True),
    }
    loss = metareg_meta_loss(
        dict(model.named_parameters()),
        phi,
        mse_of(model, X_TRAIN, Y_TRAIN),
        mse_of(model, X_TEST, Y_TEST),
        steps=1,
        lr=lr,
    )
    loss.backward()
    beta_1 = Z0 - lr * (grad_mse(Z0, X_TRAIN, Y_TRAIN) + phi_np * np.sign(Z0))
    expected = -lr * np.sign(Z0) * grad_mse(beta_1, X_TEST, Y_TEST)
    got = np.concatenate([phi["weight"].grad.numpy()[0], phi["bias"].grad.numpy()])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert np.abs(got).min() > 0
    assert model.weight.grad is None, "the meta step must not touch the head it starts from"


def test_metareg_meta_gradient_through_several_steps_matches_finite_differences() -> None:
    model = tiny_model()
    params = dict(model.named_parameters())
    train, test = mse_of(model, X_TRAIN, Y_TRAIN), mse_of(model, X_TEST, Y_TEST)

    def meta_loss(weight_phi: torch.Tensor, bias_phi: torch.Tensor) -> torch.Tensor:
        return metareg_meta_loss(params, {"weight": weight_phi, "bias": bias_phi}, train, test, steps=3, lr=0.1)

    phi = (torch.full((1, 3), 0.2, dtype=torch.float64, requires_grad=True), torch.full((1,), 0.1).double())
    phi[1].requires_grad_(True)
    assert torch.autograd.gradcheck(meta_loss, phi)
