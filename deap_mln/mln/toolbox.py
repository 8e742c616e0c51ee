"""The toolbox of an MLN evolution: every operator the loop calls, registered by name.

Individuals are ``creator.Individual`` (:mod:`deap_mln.mln.individual`). The toolbox is
compatible with DEAP's own algorithms: ``toolbox.select`` is the survival
selection (the best), as ``algorithms.eaMuPlusLambda`` expects; our loops additionally use
``toolbox.select_parents`` and ``toolbox.evaluate_population``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from deap import base, creator, tools

from deap_mln.data.user_data import load_task_data
from deap_mln.mln.config import EvolutionConfig
from deap_mln.mln.dynamic_update import dynamic_update, keep_unchanged
from deap_mln.mln.fitness import evaluate_chunk, held_out_fitness, make_chunks
from deap_mln.mln.individual import init_individual
from deap_mln.mln.operators import cx_one_point, mutate_chaotic, mutate_log_normal, select_roulette, select_uniform
from deap_mln.mln.warm_start import init_known_population


def evaluate_population(individuals: Sequence[np.ndarray], generation: int, *, config: EvolutionConfig,
                        map_fn: Callable = map) -> list[tuple[float]]:
    """Fitness tuples of ``individuals`` on ``generation``'s tasks, chunk by chunk through ``map_fn``."""
    results = map_fn(evaluate_chunk, make_chunks(individuals, config, generation))
    return [(f,) for chunk in results for f in chunk]


def evaluate_individual(individual: np.ndarray, *, config: EvolutionConfig, generation: int = 0) -> tuple[float]:
    """DEAP-style single evaluation (for ``algorithms.eaMuPlusLambda`` and custom loops)."""
    return evaluate_population([individual], generation, config=config)[0]


def eq4_classes(config: EvolutionConfig) -> int:
    """K of the predictions the run's losses are applied to by Eq. 4: the data's classes with a
    data source, ``edl_classes`` with the ranking fitness, else ``classes``."""
    if config.fitness == "ranking":
        return config.edl_classes
    if config.tasks_source != "synthetic":
        return load_task_data(config.tasks_source, config.data_label).classes
    return config.classes


def build_toolbox(config: EvolutionConfig, rng: np.random.Generator, map_fn: Callable = map) -> base.Toolbox:
    """Register everything an MLN evolution needs for ``config.algorithm``.

    hybrid: roulette parents, one-point crossover, log-normal mutation.
    es:     uniform parents, log-normal mutation (the loop is run with no crossover).
    ``refine`` is the dynamic (meta-gradient) update when ``config.dynamic_update``, else a no-op;
    ``validate`` and ``test`` score genomes on the run's fixed validation and test tasks.
    ``population`` draws Glorot networks, or with ``initial_population="known"`` the networks
    distilled from known losses (:mod:`deap_mln.mln.warm_start`), later copies mutated once.
    """
    tb = base.Toolbox()
    tb.register("individual", init_individual, creator.Individual, config.hidden, config.initial_sigma, rng)
    tb.register("mate", cx_one_point, rng=rng)
    if config.mutation == "chaotic":
        tb.register("mutate", mutate_chaotic, rng=rng, tau=config.tau, sigma_floor=config.sigma_floor, r=config.chaos_r)
    else:
        tb.register("mutate", mutate_log_normal, rng=rng, tau=config.tau, sigma_floor=config.sigma_floor)
    if config.initial_population == "known":
        tb.register("population", init_known_population, creator.Individual, config.hidden, config.initial_sigma,
                    eq4_classes(config), config.seed, tb.mutate)
    else:
        tb.register("population", tools.initRepeat, list, tb.individual)
    tb.register("select_parents", select_roulette if config.algorithm == "hybrid" else select_uniform, rng=rng)
    tb.register("select", tools.selBest)
    if config.dynamic_update:
        tb.register("refine", dynamic_update, rng=rng, config=config, mutate=tb.mutate)
    else:
        tb.register("refine", keep_unchanged)
    tb.register("map", map_fn)
    tb.register("evaluate", evaluate_individual, config=config)
    tb.register("evaluate_population", evaluate_population, config=config, map_fn=map_fn)
    tb.register("validate", held_out_fitness, config=config, split="validation", map_fn=map_fn)
    tb.register("test", held_out_fitness, config=config, split="test", map_fn=map_fn)
    return tb
