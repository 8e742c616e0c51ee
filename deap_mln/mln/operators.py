"""DEAP-style variation and selection operators for MLN genomes.

Each operator changes individuals in place and returns a tuple (variation) or returns a
list of chosen individuals (selection), so it registers on a ``deap.base.Toolbox`` like
DEAP's own. Randomness comes from an explicit ``numpy.random.Generator`` bound at
registration (``toolbox.register("mutate", mutate_log_normal, rng=rng, ...)``), never
from a hidden global state.

An individual is a 1-D numpy array (the genome) with two attributes: ``fitness`` and
``strategy``, its mutation strength sigma (one per individual, as in Eq. 3).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from deap_mln.mln.individual import Genome

Ind = TypeVar("Ind", bound=Genome)


def cx_one_point(ind1: Ind, ind2: Ind, rng: np.random.Generator) -> tuple[Ind, Ind]:
    """One-point crossover of two genomes (Eq. 2), safe for numpy individuals.

    A cut c is drawn uniformly in [1, n - 1]; the children are ind1[:c] + ind2[c:] and
    ind2[:c] + ind1[c:]. The tail is copied before the swap: numpy slices are views, and
    swapping views (as ``deap.tools.cxOnePoint`` does) leaves one child unchanged.
    Both children get the geometric mean of the parents' sigmas (intermediate
    recombination of the strategy parameter, the usual choice in ES).
    """
    n = len(ind1)
    if n != len(ind2):
        raise ValueError(f"parents differ in length: {n} and {len(ind2)}")
    if n < 2:
        return ind1, ind2
    c = int(rng.integers(1, n))
    tail = ind1[c:].copy()
    ind1[c:] = ind2[c:]
    ind2[c:] = tail
    sigma = math.sqrt(ind1.strategy * ind2.strategy)
    ind1.strategy = ind2.strategy = sigma
    return ind1, ind2


def mutate_log_normal(individual: Ind, rng: np.random.Generator, tau: float, sigma_floor: float) -> tuple[Ind]:
    """Self-adaptive log-normal mutation with one sigma per individual (Eq. 3).

        sigma <- max(sigma_floor, sigma * exp(tau * N(0, 1)))
        theta <- theta + sigma * N(0, I)

    (``deap.tools.mutESLogNormal`` keeps one sigma per gene instead.)
    """
    individual.strategy = max(sigma_floor, individual.strategy * math.exp(tau * rng.standard_normal()))
    noise = rng.standard_normal(individual.shape[0], dtype=np.float32)
    np.add(individual, np.float32(individual.strategy) * noise, out=individual)
    return (individual,)


def roulette_weights(wvalues: np.ndarray) -> np.ndarray:
    """Positive selection weights from weighted fitness values (higher is better).

    Windowing: w_i = f_i - f_min + (f_max - f_min) / n. Correct for negative fitness such
    as the paper's -MSE; the worst individual keeps a small chance; equal fitness gives
    uniform weights. Returns probabilities that sum to 1.
    """
    f = np.asarray(wvalues, dtype=np.float64)
    spread = f.max() - f.min()
    if not np.isfinite(spread) or spread == 0.0:
        return np.full(len(f), 1.0 / len(f))
    w = f - f.min() + spread / len(f)
    return w / w.sum()


def select_roulette(individuals: Sequence[Ind], k: int, rng: np.random.Generator) -> list[Ind]:
    """Fitness-proportional selection of k individuals (with replacement) using
    :func:`roulette_weights` of the first fitness objective; always returns k."""
    p = roulette_weights(np.array([ind.fitness.wvalues[0] for ind in individuals]))
    return [individuals[i] for i in rng.choice(len(individuals), size=k, replace=True, p=p)]


def select_uniform(individuals: Sequence[Ind], k: int, rng: np.random.Generator) -> list[Ind]:
    """k individuals drawn uniformly with replacement: the ES's parent choice."""
    return [individuals[i] for i in rng.integers(len(individuals), size=k)]


def logistic_map(x: np.ndarray, r: float = 4.0) -> np.ndarray:
    """One step of the logistic map x <- r x (1 - x); chaotic on (0, 1) for r = 4."""
    return r * x * (1.0 - x)


CHAOS_MARGIN = 1e-9  # states this close to 0, 1 or the fixed point 1 - 1/r are re-drawn


def advance_chaos(state: np.ndarray | None, size: int, rng: np.random.Generator, r: float = 4.0) -> np.ndarray:
    """Iterate per-gene logistic-map states once (float64), drawing fresh ones where needed.

    Float rounding can land the map on 0 (then it stays there) or on its fixed point
    1 - 1/r; such states are re-drawn uniformly in (0.01, 0.99), so the sequence never
    gets stuck.
    """
    if state is None or len(state) != size:
        return rng.uniform(0.01, 0.99, size)
    state = logistic_map(np.asarray(state, dtype=np.float64), r)
    stuck = (state <= CHAOS_MARGIN) | (state >= 1.0 - CHAOS_MARGIN) | (np.abs(state - (1.0 - 1.0 / r)) <= CHAOS_MARGIN)
    if stuck.any():
        state[stuck] = rng.uniform(0.01, 0.99, int(stuck.sum()))
    return state


def mutate_chaotic(individual: Ind, rng: np.random.Generator, tau: float, sigma_floor: float,
                   r: float = 4.0) -> tuple[Ind]:
    """Chaotic mutation of the Evolutionary Dynamic Loss (EDL) method.

    The individual carries a logistic-map state per gene (attribute ``chaos``), iterated
    once per mutation. The states, standardised to zero mean and unit variance, replace the
    Gaussian noise of Eq. 3; they are read starting at a random offset so that two clones of
    one parent are not moved identically. sigma self-adapts log-normally as in Eq. 3.
    """
    state = advance_chaos(getattr(individual, "chaos", None), individual.shape[0], rng, r)
    individual.chaos = state
    individual.strategy = max(sigma_floor, individual.strategy * math.exp(tau * rng.standard_normal()))
    noise = np.roll(state, int(rng.integers(state.shape[0])))
    std = noise.std()
    noise = (noise - noise.mean()) / std if std > 0 else np.zeros_like(noise)
    np.add(individual, (individual.strategy * noise).astype(np.float32), out=individual)
    return (individual,)
