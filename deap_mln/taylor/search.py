"""TaylorGLO's search: DEAP's own CMA-ES over the 8 parameters, one generation a step.

The loop is :func:`deap.algorithms.eaGenerateUpdate`, called for one generation at a time, on
a toolbox whose ``generate`` and ``update`` are the bound methods of a :class:`deap.cma.Strategy`
(Hansen's CMA-ES)::

    for g in state.generation .. G-1:              # 0, or the generations a checkpoint holds
        P <- toolbox.generate()                    # lambda_ samples of N(centroid, sigma^2 C)
        fitness(P) <- toolbox.map(toolbox.evaluate, P)   # and logbook row g
        hall_of_fame.update(P)
        toolbox.update(P)                          # new centroid, sigma, C from the best mu
        on_generation(state)                       # the run's progress line and checkpoint

The first four lines are ``eaGenerateUpdate(toolbox, ngen=1, halloffame=hall_of_fame)``: nothing
of the CMA-ES is re-implemented here; stepping one generation a call lets a run stop after
any generation and continue from its checkpoint (:mod:`deap_mln.taylor.checkpoint`) with the
numbers of an uninterrupted run. ``toolbox.map`` is a :class:`ReportingMap`: it sends plain
parameter tuples to the run's map backend (serial, processes, SCOOP) and records each
generation as it is evaluated.

Randomness: ``deap.cma.Strategy.generate`` draws from numpy's global RNG.
:func:`numpy_random` seeds it from the run seed (``seed_sequence(seed, "taylor-cma")``) for
the whole search and restores the caller's state afterwards; with the seeded fitness this
makes a run a function of its config. A checkpoint carries the RNG's state between generations.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from deap import algorithms, base, cma, creator

from deap_mln.seeding import seed_sequence
from deap_mln.taylor.checkpoint import TaylorState, new_taylor_state, restore
from deap_mln.taylor.config import TaylorConfig
from deap_mln.taylor.fitness import REJECTED_ACCURACY


@contextmanager
def numpy_random(seed: int, *key: int | str) -> Iterator[None]:
    """numpy's global RNG seeded from ``(seed, *key)`` inside; the caller's state after."""
    saved = np.random.get_state()
    np.random.seed(seed_sequence(seed, *key).generate_state(1)[0])
    try:
        yield
    finally:
        np.random.set_state(saved)


@dataclass
class ReportingMap:
    """``toolbox.map``: evaluates plain parameter tuples with ``map_fn`` and appends one row a generation
    to ``state.logbook``.

    Each row: gen, evals, total_evals, rejected, best, mean, best_so_far, sigma (the step size that
    sampled the generation), seconds since the search began.
    """

    map_fn: Callable
    state: TaylorState
    # scores a whole generation at once (successive halving); None: ``evaluate`` one vector at a time
    evaluate_generation: Callable[[list[tuple[float, ...]]], list[float]] | None = None

    def __call__(self, evaluate: Callable, population: Iterable[Sequence[float]]) -> list[tuple[float]]:
        vectors = [tuple(float(v) for v in ind) for ind in population]
        if self.evaluate_generation is not None:  # one work item: the cohort trains together
            (generation,) = self.map_fn(self.evaluate_generation, [vectors])
            scores = [float(s) for s in generation]
        else:
            scores = [float(s) for s in self.map_fn(evaluate, vectors)]
        rows = self.state.logbook
        best_before = rows[-1]["best_so_far"] if rows else REJECTED_ACCURACY
        rows.append(dict(
            gen=len(rows), evals=len(scores), total_evals=sum(r["evals"] for r in rows) + len(scores),
            rejected=sum(s == REJECTED_ACCURACY for s in scores), best=max(scores), mean=float(np.mean(scores)),
            best_so_far=max(best_before, max(scores)), sigma=float(self.state.strategy.sigma),
            seconds=round(time.perf_counter() - self.state.start, 3)))
        return [(s,) for s in scores]


def build_taylor_toolbox(config: TaylorConfig, evaluate: Callable[[Sequence[float]], float],
                         map_fn: Callable = map, state: TaylorState | None = None,
                         evaluate_generation: Callable | None = None) -> base.Toolbox:
    """generate / update (``state``'s ``deap.cma.Strategy``, by default a fresh one of ``config``), evaluate and map."""
    if state is None:
        state = new_taylor_state(config)
    toolbox = base.Toolbox()
    toolbox.register("generate", state.strategy.generate, creator.TaylorIndividual)
    toolbox.register("update", state.strategy.update)
    toolbox.register("evaluate", evaluate)
    toolbox.register("map", ReportingMap(map_fn, state, evaluate_generation))
    return toolbox


@dataclass
class TaylorSearch:
    """What a search leaves: the best vector ever evaluated, its fitness, the logbook rows."""

    best: list[float]
    best_fitness: float
    logbook: list[dict]
    strategy: cma.Strategy

    @property
    def evaluations(self) -> int:
        return sum(r["evals"] for r in self.logbook)


def run_taylor_search(config: TaylorConfig, evaluate: Callable[[Sequence[float]], float], map_fn: Callable = map,
                      on_generation: Callable[[TaylorState], None] | None = None,
                      resume: dict[str, Any] | None = None,
                      evaluate_generation: Callable | None = None) -> TaylorSearch:
    """``config.generations`` generations of CMA-ES, one ``eaGenerateUpdate`` call each, under the seeded
    numpy RNG; ``on_generation(state)`` after each. ``resume``, a :func:`~deap_mln.taylor.checkpoint.checkpoint`
    of an earlier run of the same config, continues it exactly where that checkpoint was taken.
    ``evaluate_generation`` scores each generation as a whole instead (successive halving: CMA-ES
    uses only the ranking within a generation, which the rungs preserve)."""
    config.validate()
    with numpy_random(config.seed, "taylor-cma"):
        state = new_taylor_state(config) if resume is None else restore(resume, config)
        toolbox = build_taylor_toolbox(config, evaluate, map_fn, state, evaluate_generation)
        while state.generation < config.generations:
            algorithms.eaGenerateUpdate(toolbox, ngen=1, halloffame=state.hall_of_fame, verbose=False)
            if on_generation is not None:
                on_generation(state)
    best = state.hall_of_fame[0]
    return TaylorSearch([float(v) for v in best], float(best.fitness.values[0]), state.logbook, state.strategy)
