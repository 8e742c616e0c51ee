"""A population of MLNs tabulated over (p_true, p_false): the fast K-class path's table.

On a K-class task Eq. 4 feeds the MLN the pairs (p_true, p_false_i, 1, 0), so within one
inner training a fixed MLN is a function of two variables on the triangle
p_true + p_false <= 1:

    g(a, b) = MLN([a, b, 1, 0]).

:func:`tabulate_pair_mln` evaluates P MLNs once on the nodes (a_i, b_j) = (i, j) / (R - 1),
with the exact partial derivatives dg/da and dg/db by autograd; :func:`interpolate_pairs`
then reads value and derivatives at any pairs by bilinear interpolation of each table. This is
the 2-D form of the binary fast path (:mod:`deap_mln.mln.population_loss`: the exact
derivative g'(q) tabulated and interpolated linearly); the training step never sees a
difference of tabulated values, only interpolated exact derivatives.

Only nodes with i + j <= R + 1 are evaluated (half the square): a prediction's pair lies in a
cell (i, j) with i + j <= R - 1, whose corners all satisfy it. The others stay zero and are
never read.

Why not the deploy wing's bicubic Hermite table (:mod:`deap_mln.deploy.compiled`)? It needs
the mixed derivative (a second autograd pass over the grid) and 48 coefficients per look-up
instead of 8, and the dynamic update differentiates the table with respect to the genomes,
which for Hermite would mean third-order autograd through the MLN. For inner training a
linear read of exact derivatives is what the binary path already validated; Hermite stays the
right choice for a deployed loss, where forward and backward must agree.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from deap_mln.mln.network import batched_mln_forward, eq4_inputs

_TERMS = 4  # coefficients per cell and table: c0 + c1 u + c2 v + c3 u v


def tabulated_nodes(resolution: int) -> torch.Tensor:
    """Flat indices i * R + j of the nodes that are evaluated: those with i + j <= R + 1."""
    i, j = torch.meshgrid(torch.arange(resolution), torch.arange(resolution), indexing="ij")
    return (i * resolution + j)[(i + j) <= resolution + 1]


def tabulate_pair_mln(genomes: torch.Tensor, hidden: Sequence[int], resolution: int,
                      differentiable: bool = False) -> torch.Tensor:
    """g, dg/dp_true and dg/dp_false of each MLN at the grid's nodes: shape (P, 3, R, R).

    Rows are p_true = i / (R - 1), columns p_false = j / (R - 1); nodes beyond the triangle's
    band (i + j > R + 1) hold zeros. With ``differentiable`` the tables keep their graph to
    ``genomes`` (the dynamic update differentiates through them).
    """
    population, dtype = genomes.shape[0], genomes.dtype
    nodes = tabulated_nodes(resolution)
    axis = torch.linspace(0.0, 1.0, resolution, dtype=dtype)
    a = axis[nodes // resolution].expand(population, -1).clone().requires_grad_()
    b = axis[nodes % resolution].expand(population, -1).clone().requires_grad_()
    with torch.enable_grad():
        values = batched_mln_forward(genomes, eq4_inputs(a, b), hidden)
        # each value depends only on its own (a, b): the gradient of the sum is pointwise
        d_a, d_b = torch.autograd.grad(values.sum(), (a, b), create_graph=differentiable)
    parts = torch.stack([values if differentiable else values.detach(), d_a, d_b], dim=1)  # (P, 3, nodes)
    tables = parts.new_zeros(population, 3, resolution * resolution)
    tables = tables.index_copy(2, nodes, parts)
    return tables.view(population, 3, resolution, resolution)


def cell_coefficients(tables: torch.Tensor) -> torch.Tensor:
    """Bilinear coefficients per cell of T tables (P, T, R, R): shape (P, (R-1)^2, 4 T).

    For cell (i, j) with local coordinates u, v in [0, 1], table t's interpolant is
    c0 + c1 u + c2 v + c3 u v with c0 = t00, c1 = t10 - t00, c2 = t01 - t00,
    c3 = t11 - t10 - t01 + t00; the 4 T numbers of a cell lie side by side, so a look-up
    reads one contiguous row.
    """
    population, n_tables, resolution, _ = tables.shape
    t00, t01 = tables[..., :-1, :-1], tables[..., :-1, 1:]
    t10, t11 = tables[..., 1:, :-1], tables[..., 1:, 1:]
    coeffs = torch.stack([t00, t10 - t00, t01 - t00, t11 - t10 - t01 + t00], dim=-1)  # (P, T, R-1, R-1, 4)
    return coeffs.permute(0, 2, 3, 1, 4).reshape(population, (resolution - 1) ** 2, n_tables * _TERMS)


def _locate(p: torch.Tensor, last: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell index (as float) along one axis and the local coordinate in [0, 1] of probabilities ``p``."""
    x = p * last
    # a diverged member's NaN must reach its fitness, not become a garbage index
    i = x.nan_to_num(0.0).floor().clamp(0, last - 1)
    return i, x - i


def interpolate_pairs(coeffs: torch.Tensor, resolution: int, p_true: torch.Tensor,
                      p_false: torch.Tensor) -> torch.Tensor:
    """Each member's T tables, bilinearly interpolated at pairs of shape (P, ...): shape (P, ..., T).

    ``coeffs`` (P, (R-1)^2, 4 T) from :func:`cell_coefficients`; differentiable in ``coeffs``
    and the pairs.
    """
    last = resolution - 1
    i, u = _locate(p_true, last)
    j, v = _locate(p_false, last)
    shape = p_true.shape
    cell = (i * last + j).long().reshape(shape[0], -1, 1).expand(-1, -1, coeffs.shape[2])
    c = coeffs.gather(1, cell).view(*shape, coeffs.shape[2] // _TERMS, _TERMS)
    u, v = u.unsqueeze(-1), v.unsqueeze(-1)
    return c[..., 0] + u * c[..., 1] + v * (c[..., 2] + u * c[..., 3])
