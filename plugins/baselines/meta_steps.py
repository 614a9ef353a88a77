"""The algorithm cores of the meta-learning baselines, on plain parameter dicts and loss closures.

They know nothing of backbones or face data, so each is pinned against a hand-computed update on a
tiny model (tests/test_baselines_meta_steps.py). A loss closure maps a ``{name: tensor}`` parameter
dict to a scalar loss, e.g. ``lambda params: bce(functional_call(net, params, x), y)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import torch

from fasbench.training import inner_sgd_step

LossOfParams = Callable[[Mapping[str, torch.Tensor]], torch.Tensor]


def mldg_objective(
    params: Mapping[str, torch.Tensor],
    meta_train_loss: LossOfParams,
    meta_test_loss: LossOfParams,
    *,
    alpha: float,
    beta: float,
    first_order: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MLDG (Li et al., AAAI 2018, Eq. 3): ``F(theta) + beta * G(theta - alpha * grad F(theta))``.

    Returns (objective, F, G); ``objective.backward()`` gives the meta gradient. ``first_order`` drops
    the Hessian term (``grad F`` treated as a constant), as DomainBed's MLDG does.
    """
    train = meta_train_loss(params)
    adapted = inner_sgd_step(params, train, alpha, first_order=first_order)
    test = meta_test_loss(adapted)
    return train + beta * test, train, test


def reptile_outer_gradient(
    parameters: Sequence[torch.Tensor], inner_loss: Callable[[], torch.Tensor], *, steps: int, lr: float
) -> torch.Tensor:
    """Reptile (Nichol et al. 2018, Algorithm 1): ``steps`` plain SGD steps in place, then back to the start.

    Leaves ``parameter.grad = theta - phi`` (start minus adapted weights) and ``parameter = theta``, so
    an SGD optimiser with learning rate epsilon then performs the outer step
    ``theta + epsilon * (phi - theta)`` (and data-parallel gradient averaging averages the phis).
    Returns the last inner loss (detached).
    """
    if steps < 1:
        raise ValueError(f"Reptile needs at least one inner step, got {steps}")
    parameters = list(parameters)
    start = [parameter.detach().clone() for parameter in parameters]
    for _ in range(steps):
        loss = inner_loss()
        grads = torch.autograd.grad(loss, parameters, allow_unused=True)
        stepped = [(parameter, grad) for parameter, grad in zip(parameters, grads, strict=True) if grad is not None]
        if stepped:  # multi-tensor operations: a few kernel launches for every parameter, the same arithmetic
            with torch.no_grad():
                scaled = torch._foreach_mul([grad for _, grad in stepped], lr)
                torch._foreach_sub_([parameter for parameter, _ in stepped], scaled)
        last = loss.detach()
    if parameters:  # (multi-tensor operations refuse empty lists)
        with torch.no_grad():
            for parameter, difference in zip(parameters, torch._foreach_sub(start, parameters), strict=True):
                parameter.grad = difference
            torch._foreach_copy_(parameters, start)
    return last


def weighted_l1(params: Iterable[torch.Tensor], weights: Iterable[torch.Tensor]) -> torch.Tensor:
    """MetaReg's regulariser ``R_phi(theta) = sum_i phi_i |theta_i|`` (one weight per parameter entry)."""
    params, weights = list(params), list(weights)
    if len(params) != len(weights):
        raise ValueError(f"weighted_l1 needs one weight per parameter, got {len(weights)} for {len(params)}")
    terms = [term.sum() for term in torch._foreach_mul(weights, torch._foreach_abs(params))]
    return torch.stack(terms).sum()


def metareg_meta_loss(
    head_params: Mapping[str, torch.Tensor],
    reg_weights: Mapping[str, torch.Tensor],
    meta_train_loss: LossOfParams,
    meta_test_loss: LossOfParams,
    *,
    steps: int,
    lr: float,
) -> torch.Tensor:
    """MetaReg (Balaji et al., NeurIPS 2018, Algorithm 1, meta-train/meta-test): the loss whose gradient
    with respect to the regulariser weights ``phi`` is the meta-gradient.

    From ``beta_1 = theta_a`` (a constant copy of domain a's head), take ``steps`` differentiable SGD steps
    on ``L_a(beta) + R_phi(beta)``, then return ``L_b(beta_l)``: its gradient flows into ``phi`` only.
    """
    beta = {name: value.detach().requires_grad_(True) for name, value in head_params.items()}
    for _ in range(steps):
        loss = meta_train_loss(beta) + weighted_l1((beta[name] for name in reg_weights), reg_weights.values())
        beta = inner_sgd_step(beta, loss, lr)
    return meta_test_loss(beta)
