"""Population losses for K-class tasks (K > 2): Eq. 4 for many candidate MLNs at once.

For a member's logits z (K per sample), p = softmax(z) and integer target t, Eq. 4 is

    L = sum over false classes i != t of g(p_t, p_i),    g(a, b) = MLN([a, b, 1, 0]).

Its gradient with respect to p has dL/dp_t = sum_i dg/da(p_t, p_i) and
dL/dp_i = dg/db(p_t, p_i), and through the softmax

    dL/dz = p * (dL/dp - <p, dL/dp>)                               (:func:`kclass_logit_gradient`).

Two ways to get g's derivatives, as for binary tasks (:mod:`deap_mln.mln.population_loss`):

* :class:`ExactKClassMLNLoss` runs the P MLNs on every batch's (K-1) pairs per sample, with
  autograd (the reference);
* :class:`TabulatedKClassMLNLoss` tabulates them once on a 2-D grid with exact derivatives
  (:mod:`deap_mln.mln.pair_table`) and interpolates during training (the fast path).

Both follow :class:`~deap_mln.mln.inner.PopulationLoss` with logits (P, B, K) and class indices (B,).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from deap_mln.mln.inner import PopulationLoss
from deap_mln.mln.network import batched_mln_forward, eq4_inputs
from deap_mln.mln.pair_table import cell_coefficients, interpolate_pairs, tabulate_pair_mln


def false_classes(target: torch.Tensor, classes: int) -> torch.Tensor:
    """Indices of the K-1 false classes of each target, in increasing order: shape (B, K-1)."""
    ranks = torch.arange(classes - 1, device=target.device)
    return ranks + (ranks >= target.view(-1, 1)).long()


def eq4_pairs(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """p = softmax(logits (P, B, K)), and Eq. 4's pairs: p_true and p_false_i, each (P, B, K-1),
    with the false classes' indices (B, K-1)."""
    population, batch, classes = logits.shape
    p = torch.softmax(logits, dim=-1)
    false = false_classes(target, classes)
    p_true = p.gather(2, target.view(1, batch, 1).expand(population, -1, -1))
    p_false = p.gather(2, false.unsqueeze(0).expand(population, -1, -1))
    return p, p_true.expand(-1, -1, classes - 1), p_false


def kclass_logit_gradient(p: torch.Tensor, target: torch.Tensor, false: torch.Tensor, d_true: torch.Tensor,
                          d_false: torch.Tensor) -> torch.Tensor:
    """d/dz of each member's batch-mean Eq. 4 loss from g's partial derivatives at its pairs.

    ``p`` (P, B, K) are the softmax probabilities, ``d_true`` and ``d_false`` (P, B, K-1) are
    dg/dp_true and dg/dp_false at the pairs (p_t, p_i) of the false classes ``false`` (B, K-1).
    Differentiable in all tensors (the dynamic update unrolls it).
    """
    population, batch, _ = p.shape
    d_p = torch.zeros_like(p).scatter(2, false.unsqueeze(0).expand(population, -1, -1), d_false)
    d_p = d_p.scatter(2, target.view(1, batch, 1).expand(population, -1, -1), d_true.sum(dim=2, keepdim=True))
    return p * (d_p - (p * d_p).sum(dim=2, keepdim=True)) / batch


class ExactKClassMLNLoss:
    """Runs the P MLNs of ``genomes`` (P, D) on every batch's pairs (the reference path)."""

    def __init__(self, genomes: torch.Tensor, hidden: Sequence[int]):
        self.genomes, self.hidden = genomes, tuple(hidden)

    def per_sample(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Each member's Eq. 4 loss of each sample, shape (P, B)."""
        _, p_true, p_false = eq4_pairs(logits, target)
        population, batch, pairs = p_false.shape
        inputs = eq4_inputs(p_true, p_false).view(population, batch * pairs, 4)
        return batched_mln_forward(self.genomes, inputs, self.hidden).view(population, batch, pairs).sum(2)

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.per_sample(logits, target).mean(1)

    def logit_gradient(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        z = logits.detach().requires_grad_()
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(self(z, target).sum(), z)
        return grad


class TabulatedKClassMLNLoss:
    """Tabulates the P MLNs once over (p_true, p_false), then only interpolates (the fast path).

    The gradient uses interpolated exact derivatives dg/dp_true, dg/dp_false (not slopes of
    tabulated values) and :func:`kclass_logit_gradient`.
    """

    def __init__(self, genomes: torch.Tensor, hidden: Sequence[int], resolution: int):
        self.resolution = resolution
        tables = tabulate_pair_mln(genomes, hidden, resolution)
        self.value_coeffs = cell_coefficients(tables[:, :1])     # g
        self.slope_coeffs = cell_coefficients(tables[:, 1:])     # dg/dp_true, dg/dp_false

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _, p_true, p_false = eq4_pairs(logits, target)
        return interpolate_pairs(self.value_coeffs, self.resolution, p_true, p_false)[..., 0].sum(2).mean(1)

    def logit_gradient(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p, p_true, p_false = eq4_pairs(logits, target)
        slopes = interpolate_pairs(self.slope_coeffs, self.resolution, p_true, p_false)
        return kclass_logit_gradient(p, target, false_classes(target, p.shape[2]), slopes[..., 0], slopes[..., 1])


def kclass_population_loss(path: str, genomes: torch.Tensor, hidden: Sequence[int], resolution: int) -> PopulationLoss:
    """The K-class population loss of evaluation ``path`` ("fast" or "exact")."""
    if path == "fast":
        return TabulatedKClassMLNLoss(genomes, hidden, resolution)
    if path == "exact":
        return ExactKClassMLNLoss(genomes, hidden)
    raise ValueError(f"evaluation path must be 'fast' or 'exact', got {path!r}")
