"""The state of a GP search as explicit data, and its checkpoint as JSON-ready data.

A checkpoint holds the population (prefix expressions and fitness, in order), the logbook,
the fitness cache and Python's ``random`` state; a search restored from it goes on exactly
as an uninterrupted one would.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from deap import tools

from deap_mln.gp.fitness import FitnessCache
from deap_mln.gp.tree import parse_expression


@dataclass
class GPState:
    """Everything a GP loop needs to continue."""

    population: list
    logbook: tools.Logbook
    cache: FitnessCache
    generation: int = 0


CHECKPOINT_FORMAT = "deap_mln.gp_checkpoint/1"


def checkpoint(state: GPState) -> dict[str, Any]:
    """Everything a search needs to go on from ``state``, as JSON-ready data: the population
    (prefix expressions and fitness, in order), logbook, fitness cache and Python's
    ``random`` state. Take it in ``on_generation``, inside the search's random context."""
    version, internal, gauss_next = random.getstate()
    cache = state.cache
    return dict(format=CHECKPOINT_FORMAT, generation=state.generation,
                population=[[str(tree), tree.fitness.values[0]] for tree in state.population],
                logbook=[dict(row) for row in state.logbook],
                cache=dict(values=cache.values, trace=[list(t) for t in cache.trace], hits=cache.hits,
                           seconds=time.perf_counter() - cache.start),
                random_state=[version, list(internal), gauss_next])


def restore(data: dict[str, Any], cache: FitnessCache) -> GPState:
    """The state a :func:`checkpoint` holds, with its fitness cache loaded into ``cache``;
    also sets Python's ``random`` to the checkpoint's state. ValueError if ``data`` is not one."""
    if data.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"not a GP checkpoint (format {data.get('format')!r}, expected {CHECKPOINT_FORMAT!r})")
    try:
        population = []
        for expression, fitness in data["population"]:
            tree = parse_expression(expression)
            tree.fitness.values = (float(fitness),)
            population.append(tree)
        logbook = tools.Logbook()
        for row in data["logbook"]:
            logbook.record(**row)
        values = {str(key): float(value) for key, value in data["cache"]["values"].items()}
        trace = [(int(n), float(fit), float(sec)) for n, fit, sec in data["cache"]["trace"]]
        hits, seconds = int(data["cache"]["hits"]), float(data["cache"]["seconds"])
        version, internal, gauss_next = data["random_state"]
        random_state = (version, tuple(internal), gauss_next)
        generation = int(data["generation"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"not a valid GP checkpoint ({type(exc).__name__}: {exc})") from None
    random.setstate(random_state)
    cache.values, cache.trace, cache.hits = values, trace, hits
    cache.start = time.perf_counter() - seconds
    return GPState(population, logbook, cache, generation)
