"""Genetic programming of symbolic losses: efficiency-based GP and the standard GP it improves on.

Both loops draw from the same toolbox (:func:`build_gp_toolbox`): subtree mutation
(``gp.mutUniform`` with ``gp.genHalfAndHalf``, i.e. genFull or genGrow) with probability
``subtree_prob``, otherwise one-point mutation (``gp.mutNodeReplacement``); one-point
crossover (``gp.cxOnePoint``); tournament selection; bloat control by ``gp.staticLimit`` on
tree height. Fitness comes from a :class:`~deap_mln.gp.fitness.FitnessCache`, so a tree whose
canonical expression was seen before is never trained again.

Randomness: DEAP's gp operators draw from Python's global ``random``. :func:`python_random`
seeds it from the run seed (``seed_sequence(seed, "gp-variation")``) for the whole search
and restores the caller's state afterwards; with the seeded, cached fitness this makes a run
a function of its config.
"""
from __future__ import annotations

import operator
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from deap import algorithms, base, gp, tools

from deap_mln.gp.checkpoint import GPState, restore
from deap_mln.gp.config import GPConfig
from deap_mln.gp.fitness import FitnessCache
from deap_mln.gp.tree import KNOWN_LOSSES, PSET, LossTree, canonical_string, check_tree, parse_expression
from deap_mln.parallel import single_thread
from deap_mln.seeding import seed_sequence


@contextmanager
def python_random(seed: int, *key: int | str) -> Iterator[None]:
    """Python's global ``random`` seeded from ``(seed, *key)`` inside; the caller's state after."""
    saved = random.getstate()
    random.seed(int(seed_sequence(seed, *key).generate_state(1, dtype="uint64")[0]))
    try:
        yield
    finally:
        random.setstate(saved)


# --------------------------------------------------------------------------- toolbox

def mutate_subtree_or_point(individual: gp.PrimitiveTree, subtree: Callable, point: Callable,
                            subtree_prob: float) -> tuple:
    """Subtree mutation with probability ``subtree_prob``, else one-point (node) mutation."""
    return subtree(individual) if random.random() < subtree_prob else point(individual)


def build_gp_toolbox(config: GPConfig, evaluate: Callable[[str], float], map_fn: Callable = map) -> base.Toolbox:
    """Operators of both GP loops; ``evaluate`` maps a canonical expression to its fitness."""
    tb = base.Toolbox()
    tb.register("expr", gp.genHalfAndHalf, pset=PSET, min_=config.init_min_height, max_=config.init_max_height)
    tb.register("individual", tools.initIterate, LossTree, tb.expr)
    tb.register("expr_mut", gp.genHalfAndHalf, min_=0, max_=config.mutation_max_height)
    tb.register("mutate", mutate_subtree_or_point, subtree_prob=config.subtree_prob,
                subtree=lambda ind: gp.mutUniform(ind, expr=tb.expr_mut, pset=PSET),
                point=lambda ind: gp.mutNodeReplacement(ind, pset=PSET))
    tb.register("mate", gp.cxOnePoint)
    limit = gp.staticLimit(key=operator.attrgetter("height"), max_value=config.max_height)
    tb.decorate("mutate", limit)
    tb.decorate("mate", limit)
    tb.register("select", tools.selTournament, tournsize=config.tournament_size)
    tb.register("check", check_tree)
    tb.register("evaluate", evaluate)
    tb.register("map", map_fn)
    return tb


def rank_key(ind: LossTree) -> tuple[float, int]:
    """Sort key, best first: higher fitness, then fewer nodes (parsimony breaks ties)."""
    return -ind.fitness.values[0], len(ind)


def best_of(individuals: Sequence[LossTree], n: int) -> list[LossTree]:
    return sorted(individuals, key=rank_key)[:n]


def initial_population(toolbox: base.Toolbox, size: int, known: bool, max_tries: int = 10_000) -> list[LossTree]:
    """``size`` distinct trees that pass the functional check: the known losses first (if
    ``known``), then random half-and-half trees. Shared by both algorithms."""
    trees = [parse_expression(e) for e in KNOWN_LOSSES.values()][:size] if known else []
    seen = {canonical_string(t) for t in trees}
    for _ in range(max_tries):
        if len(trees) >= size:
            return trees
        tree = toolbox.individual()
        key = canonical_string(tree)
        if key not in seen and toolbox.check(tree):
            seen.add(key)
            trees.append(tree)
    raise RuntimeError(f"only {len(trees)} of {size} initial trees passed the functional check in {max_tries} tries")


# --------------------------------------------------------------------------- loops

def record_gp_generation(state: GPState, evals: int, rejected: int, hits_before: int) -> dict:
    """One logbook row of the survivors: fitness and size statistics and evaluation counts."""
    fits = [ind.fitness.values[0] for ind in state.population]
    best = best_of(state.population, 1)[0]
    row = dict(gen=state.generation, evals=evals, total_evals=state.cache.evaluations,
               cached=state.cache.hits - hits_before, rejected=rejected, best=max(fits),
               mean=sum(fits) / len(fits), size=sum(map(len, state.population)) / len(state.population),
               best_size=len(best), seconds=round(time.perf_counter() - state.cache.start, 3))
    state.logbook.record(**row)
    return row


def start_gp_search(toolbox: base.Toolbox, cache: FitnessCache, config: GPConfig) -> GPState:
    """Generation 0: the initial population, evaluated."""
    population = initial_population(toolbox, config.population, config.seed_known_losses)
    state = GPState(population, tools.Logbook(), cache)
    evals = cache.assign(population)
    record_gp_generation(state, evals, 0, 0)
    return state


def done(state: GPState, ngen: int, max_evaluations: int) -> bool:
    return state.generation >= ngen or 0 < max_evaluations <= state.cache.evaluations


def efficiency_gp(state: GPState, toolbox: base.Toolbox, *, population_size: int, tournament_size: int,
                  top_n: int, ngen: int, max_evaluations: int = 0,
                  on_generation: Callable[[GPState], None] | None = None) -> GPState:
    """Efficiency-based GP::

        while not done:
            tournament <- sample(population, tournament_size)
            parents    <- best top_n of tournament
            children   <- mutate(clone(parent)) for each parent    # subtree p=0.5, else one-point
            children   <- children that pass the functional check
            evaluate(children)                                     # cached by canonical expression
            population <- best population_size of population + children (duplicates once)
    """
    while not done(state, ngen, max_evaluations):
        state.generation += 1
        hits_before = state.cache.hits
        tournament = random.sample(state.population, tournament_size)
        parents = best_of(tournament, top_n)
        children = []
        for parent in parents:
            (child,) = toolbox.mutate(toolbox.clone(parent))
            del child.fitness.values
            children.append(child)
        passed = [child for child in children if toolbox.check(child)]
        evals = state.cache.assign(passed)
        pool = {canonical_string(ind): ind for ind in state.population}
        for child in passed:
            pool.setdefault(canonical_string(child), child)
        state.population = best_of(list(pool.values()), population_size)
        record_gp_generation(state, evals, len(children) - len(passed), hits_before)
        if on_generation:
            on_generation(state)
    return state


def standard_gp(state: GPState, toolbox: base.Toolbox, *, population_size: int, crossover_prob: float,
                mutation_prob: float, elite: int, ngen: int, max_evaluations: int = 0,
                on_generation: Callable[[GPState], None] | None = None) -> GPState:
    """Standard generational GP with elitism (DEAP's eaSimple plus elites)::

        while not done:
            offspring  <- select(population, population_size)      # tournament
            offspring  <- varAnd(offspring, crossover_prob, mutation_prob)
            evaluate(offspring that changed)                       # cached; no functional check
            population <- best elite of population + best (population_size - elite) of offspring
    """
    while not done(state, ngen, max_evaluations):
        state.generation += 1
        hits_before = state.cache.hits
        offspring = algorithms.varAnd(toolbox.select(state.population, population_size), toolbox,
                                      crossover_prob, mutation_prob)
        changed = [ind for ind in offspring if not ind.fitness.valid]
        evals = state.cache.assign(changed)
        state.population = best_of(state.population, elite) + best_of(offspring, population_size - elite)
        record_gp_generation(state, evals, 0, hits_before)
        if on_generation:
            on_generation(state)
    return state


def run_search(config: GPConfig, evaluate: Callable[[str], float], map_fn: Callable = map,
               on_generation: Callable[[GPState], None] | None = None,
               resume: dict[str, Any] | None = None) -> GPState:
    """A whole GP search of ``config`` (both algorithms start from the same initial population),
    with torch on one thread; ``resume``, a :func:`checkpoint` of an earlier run of the same
    config, continues it exactly where that checkpoint was taken."""
    config.validate()
    cache = FitnessCache(evaluate, map_fn)
    with python_random(config.seed, "gp-variation"), single_thread():
        toolbox = build_gp_toolbox(config, evaluate, map_fn)
        if resume is None:
            state = start_gp_search(toolbox, cache, config)
            if on_generation:
                on_generation(state)
        else:
            state = restore(resume, cache)
        if config.algorithm == "efficiency":
            return efficiency_gp(state, toolbox, population_size=config.population,
                                 tournament_size=config.tournament_size, top_n=config.top_n,
                                 ngen=config.generations, max_evaluations=config.max_evaluations,
                                 on_generation=on_generation)
        return standard_gp(state, toolbox, population_size=config.population, crossover_prob=config.crossover_prob,
                           mutation_prob=config.mutation_prob, elite=config.elite, ngen=config.generations,
                           max_evaluations=config.max_evaluations, on_generation=on_generation)


