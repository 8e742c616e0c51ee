"""MLN warm start: networks distilled from known losses, as GP seeds its population.

Eq. 4 applies an MLN g to a K-class prediction p with true class t as

    L(p) = sum over the K-1 false classes i of g(p_t, p_i).

Every known loss used here is a sum over the K classes of a per-class term, so it has an
exact per-pair form g(p_t, p_f) for each K: the true class's term is shared out over the K-1
pairs, a false class's term belongs to its own pair (K = 2: one pair, p_f = 1 - p_t). With
e = 0.1, :data:`ALPHA` = 2.4092 and c(p) = cos(cos(sin p)):

==========  ===============================================  ==============================================
target      loss of one prediction                           per pair g(p_t, p_f)
==========  ===============================================  ==============================================
``ce``      -log p_t                                         -log(p_t) / (K-1)
``ls``      -(1 - e + e/K) log p_t - (e/K) sum_i log p_i     -(1 - e + e/K) log(p_t) / (K-1) - (e/K) log p_f
``baikal``  sum_k -(log p_k - y_k / p_k)                     (1/p_t - log p_t) / (K-1) - log p_f
            = 1/p_t - log p_t - sum_i log p_i
``ngl``     sum_k exp(ALPHA - p_k (1 + y_k)) - c(p_k)        (exp(ALPHA - 2 p_t) - c(p_t)) / (K-1)
                                                             + exp(ALPHA - p_f) - c(p_f)
==========  ===============================================  ==============================================

(sum_i over the false classes; Baikal and NGL as :data:`deap_mln.gp.tree.KNOWN_LOSSES` and the
meta-test's baselines write them, the sum over classes rather than their authors' class mean;
label smoothing as ``nn.CrossEntropyLoss(label_smoothing=e)``.) Below :data:`P_FLOOR` each
log p and 1/p continues along its tangent, so the targets are finite on the whole triangle
p_t + p_f <= 1 that the fast path's tables cover (their nodes include 0); above it they are exact.

:func:`distil_genome` fits an MLN to one target by Adam on a relative squared error
(weights 1 / (1 + target)^2) between the network and the target at points of the triangle
(:func:`distillation_points`: uniform points, Eq. 4's pairs of softmax predictions from random
logits, and the K-class table's nodes; for K = 2 the line p_f = 1 - p_t). The target is shifted
to start at 0 (the Softplus output is never negative; a constant per pair adds a constant to L,
no gradient) and divided by its median over the points: the distilled g approximates
``(g_target - m) / s``, which trains like the target under Adam and at a rate scaled by 1/s
under SGD. :class:`PairFormLoss` is the target in Eq. 4's arrangement, the function fitted.
At the paper's sizes one network takes about 3 s of one core (600 steps of 256 points).

:func:`init_known_population` is the ``population`` initialiser of
``initial_population="known"``: the distilled networks, cycled over :data:`TARGETS`, each
target's first copy as distilled and every later copy mutated once by the run's mutation
operator from sigma = ``initial_sigma``.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from deap_mln.mln.network import eq4_inputs, genome_to_module, glorot_genome
from deap_mln.seeding import generator, torch_generator

TARGETS = ("ce", "ls", "baikal", "ngl")   # the known losses, in the order the population cycles over them
LABEL_SMOOTHING = 0.1                     # epsilon of the ``ls`` target (the meta-test's ``ls``, tested equal)
ALPHA = 2.4092                            # NGL's constant (deap_mln.gp.tree.KNOWN_LOSSES)
P_FLOOR = 0.01                            # below it log p and 1/p continue along their tangents


@dataclass(frozen=True)
class Distillation:
    """How a network is fitted to a target: Adam steps on minibatches of a fixed point pool."""

    steps: int = 600       # Adam steps
    batch: int = 256       # points per step
    lr: float = 2e-3       # Adam's initial rate, annealed to 0 along a cosine
    points: int = 8192     # size of the pool the batches are drawn from


DISTILLATION = Distillation()


def _log(p: torch.Tensor) -> torch.Tensor:
    """log p, continued below :data:`P_FLOOR` along its tangent."""
    return torch.where(p >= P_FLOOR, torch.log(p.clamp_min(P_FLOOR)), math.log(P_FLOOR) + (p - P_FLOOR) / P_FLOOR)


def _reciprocal(p: torch.Tensor) -> torch.Tensor:
    """1 / p, continued below :data:`P_FLOOR` along its tangent."""
    return torch.where(p >= P_FLOOR, 1.0 / p.clamp_min(P_FLOOR), (2.0 * P_FLOOR - p) / P_FLOOR ** 2)


def _ngl_term(p: torch.Tensor, true_class: bool) -> torch.Tensor:
    return torch.exp(ALPHA - p * (2.0 if true_class else 1.0)) - torch.cos(torch.cos(torch.sin(p)))


def pair_loss(target: str, p_true: torch.Tensor, p_false: torch.Tensor, classes: int) -> torch.Tensor:
    """The per-pair form g(p_t, p_f) of ``target`` for ``classes`` classes (module docstring):
    summed over a prediction's K-1 false classes it is the target's loss of that prediction."""
    if classes < 2:
        raise ValueError(f"classes must be at least 2, got {classes}")
    share = 1.0 / (classes - 1)  # the true class's term, shared out over the K-1 pairs
    if target == "ce":
        return -share * _log(p_true)
    if target == "ls":
        eps = LABEL_SMOOTHING
        return -share * (1.0 - eps + eps / classes) * _log(p_true) - eps / classes * _log(p_false)
    if target == "baikal":
        return share * (_reciprocal(p_true) - _log(p_true)) - _log(p_false)
    if target == "ngl":
        return share * _ngl_term(p_true, True) + _ngl_term(p_false, False)
    raise ValueError(f"unknown warm-start target {target!r}; choose from {', '.join(TARGETS)}")


class PairFormLoss(nn.Module):
    """``target``'s per-pair form applied by Eq. 4, from logits (N, K) and targets (N,): the batch
    mean of sum over false classes i of g(p_t, p_i). For probabilities of at least
    :data:`P_FLOOR` it is the target loss itself (``deap_mln.metatest.baselines``)."""

    def __init__(self, target: str):
        super().__init__()
        if target not in TARGETS:
            raise ValueError(f"unknown warm-start target {target!r}; choose from {', '.join(TARGETS)}")
        self.target = target

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(logits, dim=1)
        n, k = p.shape
        false_mask = torch.ones_like(p, dtype=torch.bool).scatter_(1, target.view(-1, 1), False)
        p_true = p.gather(1, target.view(-1, 1)).expand(n, k - 1)
        return pair_loss(self.target, p_true, p[false_mask].view(n, k - 1), k).sum(dim=1).mean()


def distillation_points(classes: int, n: int, rng: np.random.Generator,
                        table_resolution: int = 33) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` pairs (p_t, p_f) where Eq. 4 will evaluate the network, float32.

    K = 2: the line p_f = 1 - p_t, p_t half uniform in [0, 1], half the sigmoid of a logit uniform
    in [-6, 6] (more points near 0 and 1, where the targets are steep). K > 2: a third uniform on
    the triangle p_t + p_f <= 1, the rest Eq. 4's pairs of softmax predictions from random logits (scale
    uniform in [0, 6], the true class raised by a margin uniform in [-3, 6]: uncertain,
    confident-correct and confident-wrong predictions), then the nodes of the fast path's
    K-class table at ``table_resolution`` (:mod:`deap_mln.mln.pair_table`) in place of the first
    points.
    """
    if classes == 2:
        half = n // 2
        p_true = np.concatenate([rng.uniform(0.0, 1.0, half), 1.0 / (1.0 + np.exp(-rng.uniform(-6.0, 6.0, n - half)))])
        return torch.as_tensor(p_true, dtype=torch.float32), torch.as_tensor(1.0 - p_true, dtype=torch.float32)
    uniform = rng.dirichlet(np.ones(3), size=n // 3)[:, :2]
    rows = -(-(n - len(uniform)) // (classes - 1))
    logits = rng.standard_normal((rows, classes)) * rng.uniform(0.0, 6.0, (rows, 1))
    logits[:, 0] += rng.uniform(-3.0, 6.0, rows)  # class 0 plays the true class
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    pairs = np.stack([np.repeat(p[:, :1], classes - 1, axis=1), p[:, 1:]], axis=-1).reshape(-1, 2)
    points = np.concatenate([uniform, pairs])[:n]
    axis = np.linspace(0.0, 1.0, table_resolution)
    i, j = np.meshgrid(axis, axis, indexing="ij")
    nodes = np.stack([i.ravel(), j.ravel()], axis=1)
    nodes = nodes[nodes.sum(axis=1) <= 1.0 + 1e-9][:n]
    points[:len(nodes)] = nodes
    pairs_t = torch.as_tensor(points, dtype=torch.float32)
    return pairs_t[:, 0].contiguous(), pairs_t[:, 1].contiguous()


def normalised_target(target: str, p_true: torch.Tensor, p_false: torch.Tensor, classes: int) -> torch.Tensor:
    """The target at the points, shifted to a minimum of 0 and divided by its median (the bulk's
    scale: Baikal's 1/p_t reaches 100 times that near p_t = 0)."""
    values = pair_loss(target, p_true.double(), p_false.double(), classes)
    values = values - values.min()
    return (values / values.median().clamp_min(1e-12)).float()


def distil_genome(target: str, hidden: Sequence[int], classes: int, seed: int,
                  settings: Distillation = DISTILLATION) -> np.ndarray:
    """A genome whose MLN approximates ``target``'s normalised per-pair form (module docstring):
    a Glorot network of the stream (seed, "warm-start", target) fitted by Adam on the relative
    squared error at :func:`distillation_points`. Deterministic in its arguments (on one machine)."""
    return _distilled(target, tuple(int(h) for h in hidden), int(classes), int(seed), settings).copy()


@functools.lru_cache(maxsize=32)
def _distilled(target: str, hidden: tuple[int, ...], classes: int, seed: int, settings: Distillation) -> np.ndarray:
    """:func:`distil_genome`, cached: a run distils each target once, its tests reuse it."""
    rng = generator(seed, "warm-start", target)
    module = genome_to_module(glorot_genome(hidden, rng), hidden)
    p_true, p_false = distillation_points(classes, settings.points, rng)
    inputs = eq4_inputs(p_true, p_false)
    goal = normalised_target(target, p_true, p_false, classes)
    weight = 1.0 / (1.0 + goal) ** 2  # relative error: the steep corner must not drown the bulk
    weight = weight / weight.mean()
    order = torch_generator(seed, "warm-start", target, "batches")
    optimiser = torch.optim.Adam(module.parameters(), lr=settings.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, settings.steps)
    for _ in range(settings.steps):
        idx = torch.randint(settings.points, (settings.batch,), generator=order)
        optimiser.zero_grad()
        (weight[idx] * (module(inputs[idx]) - goal[idx]) ** 2).mean().backward()
        optimiser.step()
        schedule.step()
    genome = torch.nn.utils.parameters_to_vector(module.parameters()).detach().numpy().astype(np.float32)
    if not np.isfinite(genome).all():
        raise FloatingPointError(f"distilling {target!r} gave a non-finite network")
    return genome


def init_known_population(icls: type, hidden: Sequence[int], sigma: float, classes: int, seed: int,
                          mutate: Callable, n: int, targets: Sequence[str] = TARGETS) -> list:
    """``n`` individuals of class ``icls``: individual k is the network distilled from
    ``targets[k % len(targets)]`` with mutation strength ``sigma``; the first copy of each target
    as distilled, every later copy once through ``mutate`` (the run's Eq. 3, which also adapts
    its sigma). Registered as ``toolbox.population`` when ``initial_population="known"``."""
    genomes = {t: distil_genome(t, hidden, classes, seed) for t in targets[:n]}
    population = []
    for k in range(n):
        individual = icls(genomes[targets[k % len(targets)]])
        individual.strategy = float(sigma)
        if k >= len(targets):
            mutate(individual)
        population.append(individual)
    return population
