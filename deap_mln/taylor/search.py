"""TaylorGLO's search: DEAP's own CMA-ES over the 8 parameters, one generation a step.

The loop is :func:`deap.algorithms.eaGenerateUpdate` on a toolbox whose ``generate`` and
``update`` are the bound methods of a :class:`deap.cma.Strategy` (Hansen's CMA-ES)::

    for g in 0 .. G-1:
        P <- toolbox.generate()                    # lambda_ samples of N(centroid, sigma^2 C)
        fitness(P) <- toolbox.map(toolbox.evaluate, P)
        hall_of_fame.update(P)
        toolbox.update(P)                          # new centroid, sigma, C from the best mu
        logbook.record(gen=g, ...)

Nothing of the CMA-ES is re-implemented here: this module builds the toolbox and reports.
``toolbox.map`` is a :class:`ReportingMap`: it sends plain parameter tuples to the run's map
backend (serial, processes, SCOOP) and reports each generation as it is evaluated.

Randomness: ``deap.cma.Strategy.generate`` draws from numpy's global RNG.
:func:`numpy_random` seeds it from the run seed (``seed_sequence(seed, "taylor-cma")``) for
the whole search and restores the caller's state afterwards; with the seeded fitness this
makes a run a function of its config.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from deap import algorithms, base, cma, creator, tools

from deap_mln.seeding import seed_sequence
from deap_mln.taylor.config import TaylorConfig
from deap_mln.taylor.fitness import REJECTED_ACCURACY

# the individuals: lists of 8 floats with a maximised fitness (created once per process)
if not hasattr(creator, "TaylorIndividual"):
    creator.create("TaylorFitnessMax", base.Fitness, weights=(1.0,))
    creator.create("TaylorIndividual", list, fitness=creator.TaylorFitnessMax)


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
    """``toolbox.map``: evaluates plain parameter tuples with ``map_fn`` and records one row a generation.

    Each row: gen, evals, total_evals, rejected, best, mean, best_so_far, sigma (the step size that
    sampled the generation), seconds since the search began.
    """

    map_fn: Callable
    strategy: cma.Strategy
    on_generation: Callable[[dict], None] | None = None
    rows: list[dict] = field(default_factory=list)
    start: float = field(default_factory=time.perf_counter)

    def __call__(self, evaluate: Callable, population: Iterable[Sequence[float]]) -> list[tuple[float]]:
        vectors = [tuple(float(v) for v in ind) for ind in population]
        scores = [float(s) for s in self.map_fn(evaluate, vectors)]
        best_before = self.rows[-1]["best_so_far"] if self.rows else REJECTED_ACCURACY
        self.rows.append(dict(
            gen=len(self.rows), evals=len(scores), total_evals=sum(r["evals"] for r in self.rows) + len(scores),
            rejected=sum(s == REJECTED_ACCURACY for s in scores), best=max(scores), mean=float(np.mean(scores)),
            best_so_far=max(best_before, max(scores)), sigma=float(self.strategy.sigma),
            seconds=round(time.perf_counter() - self.start, 3)))
        if self.on_generation is not None:
            self.on_generation(self.rows[-1])
        return [(s,) for s in scores]


def build_taylor_toolbox(config: TaylorConfig, evaluate: Callable[[Sequence[float]], float],
                         map_fn: Callable = map, on_generation: Callable[[dict], None] | None = None) -> base.Toolbox:
    """generate / update (a fresh ``deap.cma.Strategy`` of ``config``), evaluate and map."""
    strategy = cma.Strategy(centroid=list(config.centroid), sigma=config.sigma, lambda_=config.lambda_)
    toolbox = base.Toolbox()
    toolbox.register("generate", strategy.generate, creator.TaylorIndividual)
    toolbox.register("update", strategy.update)
    toolbox.register("evaluate", evaluate)
    toolbox.register("map", ReportingMap(map_fn, strategy, on_generation))
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
                      on_generation: Callable[[dict], None] | None = None) -> TaylorSearch:
    """``config.generations`` generations of CMA-ES by ``eaGenerateUpdate`` under the seeded numpy RNG."""
    config.validate()
    toolbox = build_taylor_toolbox(config, evaluate, map_fn, on_generation)
    hall_of_fame: Any = tools.HallOfFame(1, similar=lambda a, b: list(a) == list(b))
    with numpy_random(config.seed, "taylor-cma"):
        algorithms.eaGenerateUpdate(toolbox, ngen=config.generations, halloffame=hall_of_fame, verbose=False)
    reporter: ReportingMap = toolbox.map.func  # register wraps it in a partial
    best = hall_of_fame[0]
    return TaylorSearch([float(v) for v in best], float(best.fitness.values[0]), reporter.rows, reporter.strategy)
