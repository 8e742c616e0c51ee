"""Population losses for binary tasks: many candidate losses applied at once.

Within one inner training an MLN is fixed, and Eq. 4 feeds it (p_true, 1 - p_true, 1, 0)
on a binary task, so the loss is a function of one variable:

    g(q) = MLN([q, 1 - q, 1, 0]),   q = p_true = sigmoid(s * z),   s = +1 / -1 for label 1 / 0.

Two ways to apply g to a population's logits:

* :class:`ExactMLNLoss` evaluates the MLNs at every step (the reference);
* :class:`TabulatedMLNLoss` evaluates them once on a grid of q, with exact derivatives
  by autograd, and interpolates during training (the fast path).

Both follow the :class:`~deap_mln.mln.inner.PopulationLoss` protocol: called, they give each
member's mean loss; ``logit_gradient`` gives its gradient with respect to the logits,
which is all the inner loop needs.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from deap_mln.mln.inner import PopulationLoss
from deap_mln.mln.network import batched_mln_forward, eq4_inputs


def p_true(logits: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """Probability given to the true class by binary logits (P, B) for label signs (B,) in {+1, -1}."""
    return torch.sigmoid(sign * logits)


class ExactMLNLoss:
    """Runs the P MLNs of ``genomes`` (P, D) on every batch (the reference path)."""

    def __init__(self, genomes: torch.Tensor, hidden: Sequence[int]):
        self.genomes, self.hidden = genomes, tuple(hidden)

    def __call__(self, logits: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
        q = p_true(logits, sign)
        return batched_mln_forward(self.genomes, eq4_inputs(q, 1 - q), self.hidden).mean(dim=1)

    def logit_gradient(self, logits: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
        z = logits.detach().requires_grad_()
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(self(z, sign).sum(), z)
        return grad


def tabulate_binary_mln(genomes: torch.Tensor, hidden: Sequence[int], grid_size: int,
                        differentiable: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Values g(q_j) and exact derivatives g'(q_j) on q_j = j / (grid_size - 1); each (P, grid_size).

    With ``differentiable`` both tables keep their graph to ``genomes`` (the dynamic update
    differentiates through them); otherwise they are plain tensors.
    """
    q = torch.linspace(0.0, 1.0, grid_size, dtype=genomes.dtype).expand(genomes.shape[0], -1).clone().requires_grad_()
    with torch.enable_grad():
        values = batched_mln_forward(genomes, eq4_inputs(q, 1 - q), hidden)
        # Each value depends only on its own q, so the gradient of the sum is g' pointwise.
        (slopes,) = torch.autograd.grad(values.sum(), q, create_graph=differentiable)
    return (values, slopes) if differentiable else (values.detach(), slopes)


def interpolate(table: torch.Tensor, steps: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of rows of ``table`` (P, N), sampled at j / (N - 1), at q (P, B) in [0, 1].

    ``steps`` is ``table.diff(dim=1)``, precomputed because the inner loop interpolates
    thousands of times per table. Differentiable in ``table``, ``steps`` and ``q`` when they
    carry a graph (the dynamic update's); otherwise it works in place, which the inner loop needs.
    """
    last = table.shape[1] - 1
    pos = q * last
    # a diverged member's NaN must reach its fitness, not become a garbage index
    left = pos.nan_to_num(0.0).floor_().clamp_(0, last - 1)
    index = left.long()
    if torch.is_grad_enabled() and (table.requires_grad or steps.requires_grad or q.requires_grad):
        return table.gather(1, index) + (pos - left) * steps.gather(1, index)
    return table.gather(1, index).addcmul_(pos.sub_(left), steps.gather(1, index))


class TabulatedMLNLoss:
    """Tabulates the P MLNs once, then only interpolates (the fast path).

    The gradient uses the table of exact derivatives g'(q), not the slope of the
    interpolated values, and the chain rule through q = sigmoid(s z):
        d g / d z = g'(q) * s * q * (1 - q).
    """

    def __init__(self, genomes: torch.Tensor, hidden: Sequence[int], grid_size: int):
        self.values, self.slopes = tabulate_binary_mln(genomes, hidden, grid_size)
        self.value_steps, self.slope_steps = self.values.diff(dim=1), self.slopes.diff(dim=1)

    def __call__(self, logits: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
        return interpolate(self.values, self.value_steps, p_true(logits, sign)).mean(dim=1)

    def logit_gradient(self, logits: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
        q = p_true(logits, sign)
        return interpolate(self.slopes, self.slope_steps, q).mul_(q * (1 - q)).mul_(sign / logits.shape[1])


class BaselinePopulationLoss:
    """A fixed reference loss in the same binary inner loop: ``ce`` -log q, ``mse`` 2 (1 - q)^2
    (softmax MSE summed over both classes) or ``focal`` -(1 - q)^2 log q, as functions of
    q = p_true, with their exact derivatives g'(q) (the same losses as
    :mod:`deap_mln.metatest.baselines` on two classes)."""

    NAMES = ("ce", "mse", "focal")

    def __init__(self, name: str):
        if name not in self.NAMES:
            raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(self.NAMES)}")
        self.name = name

    def _value_and_slope(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_q = torch.log(q.clamp_min(1e-12))
        if self.name == "ce":
            return -log_q, -1.0 / q.clamp_min(1e-12)
        if self.name == "mse":
            return 2 * (1 - q) ** 2, -4 * (1 - q)
        return -(1 - q) ** 2 * log_q, 2 * (1 - q) * log_q - (1 - q) ** 2 / q.clamp_min(1e-12)

    def __call__(self, logits: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
        return self._value_and_slope(p_true(logits, sign))[0].mean(dim=1)

    def logit_gradient(self, logits: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
        q = p_true(logits, sign)
        return self._value_and_slope(q)[1] * q * (1 - q) * sign / logits.shape[1]


def population_mln_loss(path: str, genomes: torch.Tensor, hidden: Sequence[int], grid_size: int) -> PopulationLoss:
    """The population loss of evaluation ``path`` ("fast" or "exact")."""
    if path == "fast":
        return TabulatedMLNLoss(genomes, hidden, grid_size)
    if path == "exact":
        return ExactMLNLoss(genomes, hidden)
    raise ValueError(f"evaluation path must be 'fast' or 'exact', got {path!r}")
