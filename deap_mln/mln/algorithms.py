"""Evolution loops: the hybrid ES-GA of the Adaptive-MLN paper and the ES it improves on.

Both are one loop, :func:`mu_plus_lambda`; the method is chosen by what is registered on
the toolbox (roulette or uniform parents) and by the crossover probability (0 for ES).

Which loss a run keeps is decided on fixed *validation* tasks, not by the generation's own
fitness: every generation draws new tasks, and the task explains far more of a single
measurement than most of what evolution improves, so the best single measurement over a run
is a lucky draw. When ``toolbox.validate`` is registered, the best few survivors of every
generation are scored on the run's validation tasks (each genome once) and the best of
them is kept as ``state.best_validated``.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from deap import base, tools

from deap_mln.mln.fitness import FAILED_MLN_FITNESS


@dataclass
class EvolutionState:
    """Everything a loop needs to continue: explicit data, so it can be checkpointed."""

    population: list
    hall_of_fame: tools.HallOfFame
    logbook: tools.Logbook
    generation: int = 0
    best_history: list = field(default_factory=list)  # what the convergence check watches, per generation
    best_validated: Any = None                        # the individual with the best validation score so far
    best_validation: float = float("-inf")            # ... and that score
    validation_scores: dict[str, float] = field(default_factory=dict)  # genome_key -> validation score


class BestMeasurementHallOfFame(tools.HallOfFame):
    """HallOfFame for individuals that are re-evaluated: when a genome already held is
    measured again with a better fitness, its entry takes the better measurement.
    (DEAP's HallOfFame refuses any individual similar to one it holds.)"""

    def update(self, population) -> None:
        for ind in population:
            for i, held in enumerate(self):
                if self.similar(ind, held) and ind.fitness > held.fitness:
                    self.remove(i)
                    break
        super().update(population)


def new_hall_of_fame(size: int = 1) -> tools.HallOfFame:
    """A hall of fame for numpy genomes (``operator.eq`` on arrays is element-wise)."""
    return BestMeasurementHallOfFame(size, similar=np.array_equal)


def population_record(population: Sequence, evaluated: Sequence, generation: int, seconds: float) -> dict:
    """One logbook row: fitness and sigma statistics of the survivors, and evaluation counts."""
    fit = np.array([ind.fitness.values[0] for ind in population])
    sigma = np.array([ind.strategy for ind in population])
    failed = sum(ind.fitness.values[0] == FAILED_MLN_FITNESS for ind in evaluated)
    return dict(gen=generation, evals=len(evaluated), failed=int(failed),
                best=float(fit.max()), mean=float(fit.mean()), std=float(fit.std()), worst=float(fit.min()),
                sigma_mean=float(sigma.mean()), sigma_min=float(sigma.min()), sigma_max=float(sigma.max()),
                seconds=round(seconds, 4))


def genome_key(individual: np.ndarray) -> str:
    """A short fingerprint of a genome's exact values (which genomes were validated already)."""
    return hashlib.sha1(np.ascontiguousarray(individual, dtype=np.float32).tobytes()).hexdigest()


def validate_survivors(state: EvolutionState, toolbox: base.Toolbox, top: int) -> tuple[float, int]:
    """Score the best ``top`` survivors on the validation tasks (genomes not seen before
    only) and keep the best validated individual; returns the best score among the ``top``
    and how many genomes were scored now (what the validation cost)."""
    candidates = tools.selBest(state.population, top)
    new = list({genome_key(ind): ind for ind in candidates if genome_key(ind) not in state.validation_scores}.items())
    for (key, _), score in zip(new, toolbox.validate([ind for _, ind in new])):
        state.validation_scores[key] = score
    scores = [state.validation_scores[genome_key(ind)] for ind in candidates]
    best = int(np.argmax(scores))
    if scores[best] > state.best_validation:
        state.best_validated, state.best_validation = toolbox.clone(candidates[best]), scores[best]
    return scores[best], len(new)


def has_converged(best_history: Sequence[float], epsilon: float, patience: int) -> bool:
    """True when the best fitness of the last ``patience`` generations beats the best
    before them by less than ``epsilon`` (never, when ``patience`` is 0)."""
    if patience <= 0 or len(best_history) <= patience:
        return False
    return max(best_history[-patience:]) - max(best_history[:-patience]) < epsilon


def assign_fitness(toolbox: base.Toolbox, individuals: list, generation: int) -> None:
    """Evaluate ``individuals`` on ``generation``'s tasks and store their fitness."""
    for ind, fit in zip(individuals, toolbox.evaluate_population(individuals, generation)):
        ind.fitness.values = fit


def vary(parents: Sequence, toolbox: base.Toolbox, cxpb: float, rng: np.random.Generator) -> list:
    """Clone the parents, cross consecutive pairs with probability ``cxpb``, mutate every child."""
    offspring = [toolbox.clone(p) for p in parents]
    for a, b in zip(offspring[::2], offspring[1::2]):
        if rng.random() < cxpb:
            toolbox.mate(a, b)
    for child in offspring:
        toolbox.mutate(child)
        del child.fitness.values
    return offspring


def start_evolution(toolbox: base.Toolbox, mu: int, validate_top: int = 0) -> EvolutionState:
    """Generation 0: create and evaluate mu individuals (and validate the best ``validate_top``)."""
    tic = time.perf_counter()
    population = toolbox.population(n=mu)
    assign_fitness(toolbox, population, 0)
    state = EvolutionState(population, new_hall_of_fame(), tools.Logbook())
    validation = validate_survivors(state, toolbox, validate_top) if validate_top else None
    record_mln_generation(state, population, tic, validation)
    return state


def record_mln_generation(state: EvolutionState, evaluated: Sequence, tic: float,
                          validation: tuple[float, int] | None) -> None:
    """Log the generation (with :func:`validate_survivors`' score and count when there is one);
    the convergence check watches the validation score when there is one."""
    state.hall_of_fame.update(state.population)
    row = population_record(state.population, evaluated, state.generation, time.perf_counter() - tic)
    if validation is not None:
        row |= dict(validation=validation[0], validated_best=state.best_validation, validated=validation[1])
    state.logbook.record(**row)
    state.best_history.append(row["best"] if validation is None else row["validation"])


def mu_plus_lambda(state: EvolutionState, toolbox: base.Toolbox, *, mu: int, lambda_: int, cxpb: float,
                   ngen: int, rng: np.random.Generator, epsilon: float = 0.0, patience: int = 0,
                   validate_top: int = 0,
                   on_generation: Callable[[EvolutionState], None] | None = None) -> EvolutionState:
    """(mu + lambda) evolution from ``state`` until generation ``ngen`` or convergence.

    Algorithm 1 of the Adaptive-MLN paper, one line a step::

        for g = 1 .. ngen:
            P' <- select_parents(P, lambda)            # roulette (hybrid) / uniform (ES)
            O  <- mutate(crossover(P', cxpb))          # Eq. 2, then Eq. 3
            O  <- refine(O)                            # dynamic update (line 18), if registered
            evaluate(P + O) on the tasks of g          # survivors re-evaluated: equal terms
            P  <- select(P + O, mu)                    # the best mu survive
            validate(best validate_top of P)           # fixed validation tasks: the loss to keep
            record; stop if the watched score improved < epsilon over `patience` generations

    Every individual of generation g is trained on the same tasks, so the fitness values
    compared by survival selection were measured under the same conditions. With
    ``validate_top`` > 0 the convergence check watches the validation score, which is
    measured on the same tasks every generation.
    """
    while state.generation < ngen and not has_converged(state.best_history, epsilon, patience):
        tic = time.perf_counter()
        generation = state.generation + 1
        parents = toolbox.select_parents(state.population, lambda_)
        offspring = toolbox.refine(vary(parents, toolbox, cxpb, rng))
        candidates = state.population + offspring
        assign_fitness(toolbox, candidates, generation)
        state.population = toolbox.select(candidates, mu)
        state.generation = generation
        validation = validate_survivors(state, toolbox, validate_top) if validate_top else None
        record_mln_generation(state, candidates, tic, validation)
        if on_generation is not None:
            on_generation(state)
    return state
