"""The state of a TaylorGLO search as explicit data, and its checkpoint as JSON-ready data.

A checkpoint holds what changes while DEAP's CMA-ES runs: the ``deap.cma.Strategy``'s
mutable attributes (:data:`STRATEGY_STATE`; the rest are functions of the config), the hall
of fame's best vector and its fitness, the logbook rows (with the evaluation counts) and
numpy's global RNG state, which ``Strategy.generate`` draws from. A search restored from it
goes on exactly as an uninterrupted one would.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from deap import base, cma, creator, tools

from deap_mln.taylor.config import TaylorConfig

# the individuals: lists of 8 floats with a maximised fitness (created once per process)
if not hasattr(creator, "TaylorIndividual"):
    creator.create("TaylorFitnessMax", base.Fitness, weights=(1.0,))
    creator.create("TaylorIndividual", list, fitness=creator.TaylorFitnessMax)

CHECKPOINT_FORMAT = "deap_mln.taylor_checkpoint/1"

# what deap.cma.Strategy.update changes (deap 1.4: __init__ and update); the rest (dim, lambda_,
# mu, weights, mueff, cc, cs, ccov1, ccovmu, damps, chiN, params) comes from the config
STRATEGY_STATE = ("centroid", "sigma", "pc", "ps", "C", "B", "diagD", "BD", "cond", "update_count")


@dataclass
class TaylorState:
    """Everything a TaylorGLO loop needs to continue: the CMA-ES, the best vector ever evaluated,
    one logbook row per generation done, and the ``time.perf_counter()`` the search began at."""

    strategy: cma.Strategy
    hall_of_fame: Any   # tools.HallOfFame of one creator.TaylorIndividual
    logbook: list[dict] = field(default_factory=list)
    start: float = field(default_factory=time.perf_counter)

    @property
    def generation(self) -> int:
        """Generations done."""
        return len(self.logbook)


def new_taylor_state(config: TaylorConfig) -> TaylorState:
    """The state before generation 0: a fresh ``deap.cma.Strategy`` of ``config``, an empty hall of fame."""
    strategy = cma.Strategy(centroid=list(config.centroid), sigma=config.sigma, lambda_=config.lambda_)
    return TaylorState(strategy, tools.HallOfFame(1, similar=lambda a, b: list(a) == list(b)))


def checkpoint(state: TaylorState) -> dict[str, Any]:
    """Everything a search needs to go on from ``state``, as JSON-ready data (floats round-trip
    exactly through JSON). Take it after a generation's update, inside the search's random context."""
    legacy: Any = np.random.get_state()   # the tuple (name, keys, pos, has_gauss, gauss): RandomState's whole state
    name, keys, pos, has_gauss, gauss = legacy
    best = state.hall_of_fame[0]
    strategy = {key: np.asarray(getattr(state.strategy, key)).tolist() for key in STRATEGY_STATE}
    return dict(format=CHECKPOINT_FORMAT, generation=state.generation, strategy=strategy,
                best=[float(v) for v in best], best_fitness=float(best.fitness.values[0]),
                logbook=[dict(row) for row in state.logbook], seconds=time.perf_counter() - state.start,
                numpy_random_state=[name, keys.tolist(), pos, has_gauss, gauss])


def restore(data: dict[str, Any], config: TaylorConfig) -> TaylorState:
    """The state a :func:`checkpoint` of a run of ``config`` holds; also sets numpy's global RNG
    to the checkpoint's state. ValueError if ``data`` is not one."""
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"not a TaylorGLO checkpoint (format {found!r}, expected {CHECKPOINT_FORMAT!r})")
    state = new_taylor_state(config)
    try:
        for key in STRATEGY_STATE:
            fresh = getattr(state.strategy, key)
            value = data["strategy"][key]
            if key == "update_count":
                setattr(state.strategy, key, int(value))
                continue
            array = np.array(value, dtype=np.float64)
            if array.shape != np.shape(fresh):
                raise ValueError(f"strategy {key} has shape {array.shape}, the config's {np.shape(fresh)}")
            if array.ndim:  # in DEAP's memory layout (B, BD: Fortran order): a product's rounding depends on it
                array = np.copy(array, order="F" if np.isfortran(fresh) else "C")
            setattr(state.strategy, key, array if array.ndim else np.float64(array))
        best = creator.TaylorIndividual(float(v) for v in data["best"])
        best.fitness.values = (float(data["best_fitness"]),)
        state.hall_of_fame.update([best])
        state.logbook = [dict(row) for row in data["logbook"]]
        state.start = time.perf_counter() - float(data["seconds"])
        name, keys, pos, has_gauss, gauss = data["numpy_random_state"]
        random_state = (str(name), np.array(keys, dtype=np.uint32), int(pos), int(has_gauss), float(gauss))
        if int(data["generation"]) != state.generation:
            raise ValueError(f"generation {data['generation']} with {state.generation} logbook rows")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"not a valid TaylorGLO checkpoint ({type(exc).__name__}: {exc})") from None
    np.random.set_state(random_state)
    return state
