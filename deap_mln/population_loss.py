"""Population losses for binary tasks: many candidate losses applied at once.

Within one inner training an MLN is fixed, and Eq. 4 feeds it (p_true, 1 - p_true, 1, 0)
on a binary task, so the loss is a function of one variable:

    g(q) = MLN([q, 1 - q, 1, 0]),   q = p_true = sigmoid(s * z),   s = +1 / -1 for label 1 / 0.

Two ways to apply g to a population's logits:

* :func:`exact_mln_loss` evaluates the MLNs at every step (the reference);
* :func:`tabulated_mln_loss` evaluates them once on a grid of q, with exact derivatives
  by autograd, and interpolates both during training (the fast path).
"""
from __future__ import annotations

from typing import Sequence

import torch

from .mln import batched_mln_forward, eq4_inputs
from .inner import PopulationLoss


def p_true(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Probability given to the true class by binary logits (P, B) for labels (B,) in {0, 1}."""
    sign = (2 * labels - 1).to(logits.dtype)
    return torch.sigmoid(sign * logits)


def exact_mln_loss(genomes: torch.Tensor, hidden: Sequence[int]) -> PopulationLoss:
    """Population loss that runs the P MLNs of ``genomes`` (P, D) on every batch."""

    def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        q = p_true(logits, labels)
        return batched_mln_forward(genomes, eq4_inputs(q, 1 - q), hidden).mean(dim=1)

    return loss


def tabulate_binary_mln(genomes: torch.Tensor, hidden: Sequence[int], grid_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Values g(q_j) and exact derivatives g'(q_j) on q_j = j / (grid_size - 1); each (P, grid_size)."""
    q = torch.linspace(0.0, 1.0, grid_size).expand(genomes.shape[0], -1).clone().requires_grad_()
    with torch.enable_grad():
        values = batched_mln_forward(genomes, eq4_inputs(q, 1 - q), hidden)
        # Each value depends only on its own q, so the gradient of the sum is g' pointwise.
        (slopes,) = torch.autograd.grad(values.sum(), q)
    return values.detach(), slopes


def _interpolate(table: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of rows of ``table`` (P, N) at q (P, B) in [0, 1]."""
    last = table.shape[1] - 1
    pos = q.clamp(0.0, 1.0) * last
    left = pos.floor().clamp_(max=last - 1)
    frac = pos - left
    left = left.long()
    lo = table.gather(1, left)
    hi = table.gather(1, left + 1)
    return lo + frac * (hi - lo)


class _TabulatedLoss(torch.autograd.Function):
    """g(q) from the value table; dg/dq from the derivative table (not from the
    piecewise-linear value interpolation, whose slope is only first-order accurate)."""

    @staticmethod
    def forward(ctx, q, values, slopes):
        ctx.save_for_backward(q, slopes)
        return _interpolate(values, q)

    @staticmethod
    def backward(ctx, grad_out):
        q, slopes = ctx.saved_tensors
        return grad_out * _interpolate(slopes, q), None, None


def tabulated_mln_loss(genomes: torch.Tensor, hidden: Sequence[int], grid_size: int) -> PopulationLoss:
    """Population loss that tabulates the P MLNs once, then only interpolates."""
    values, slopes = tabulate_binary_mln(genomes, hidden, grid_size)

    def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return _TabulatedLoss.apply(p_true(logits, labels), values, slopes).mean(dim=1)

    return loss


def population_mln_loss(path: str, genomes: torch.Tensor, hidden: Sequence[int], grid_size: int) -> PopulationLoss:
    """The population loss of evaluation ``path`` ("fast" or "exact")."""
    if path == "fast":
        return tabulated_mln_loss(genomes, hidden, grid_size)
    if path == "exact":
        return exact_mln_loss(genomes, hidden)
    raise ValueError(f"evaluation path must be 'fast' or 'exact', got {path!r}")
