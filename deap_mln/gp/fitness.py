"""Fitness of a symbolic loss: validation accuracy of a small classifier trained briefly with it.

The data (``digits`` or ``synthetic``) and its train / validation / test splits are
:func:`deap_mln.data.fitness_splits.load_fitness_data`, re-exported here; the TaylorGLO wing
reads the same splits.

The classifier (an MLP with one hidden ReLU layer, or logistic regression) is trained with Adam
for a fixed number of steps on mini-batches drawn with replacement, by the training both wings
share (:mod:`deap_mln.data.brief_training`). Its initial weights and
batch order come from the run seed only, so a tree's fitness is a function of the tree: the
search caches it by canonical expression (:class:`FitnessCache`) and never trains a repeated
tree twice. A loss that turns NaN or infinite gets :data:`FAILED_ACCURACY`. Training runs torch
on one thread.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from torch import nn

from deap_mln.data.fitness_splits import (  # noqa: F401  (re-exported: the GP wing's data)
    DIGITS_VAL_SIZE,
    FITNESS_DATASETS,
    SYNTHETIC_SIZES,
    FitnessData,
    fitness_data_of,
    load_fitness_data,
)
from deap_mln.gp.tree import GPLoss, canonical_string, parse_expression
from deap_mln.training.splits import SplitTraining as TrainingSettings
from deap_mln.training.splits import split_accuracy

GP_DATASETS = FITNESS_DATASETS
FAILED_ACCURACY = 0.0


def train_with_loss(loss: nn.Module, settings: TrainingSettings, final: bool = False) -> float:
    """Validation accuracy of a classifier trained briefly with ``loss`` (test accuracy after
    training on train + validation when ``final``), or FAILED_ACCURACY if the loss diverged
    (:func:`deap_mln.data.fitness_splits.split_accuracy`, shared with the TaylorGLO wing)."""
    score = split_accuracy(loss, settings, final)
    return FAILED_ACCURACY if np.isnan(score) else score


def evaluate_expression(expression: str, settings: TrainingSettings) -> float:
    """Fitness of a prefix expression (what the cache sends to ``toolbox.map``)."""
    return train_with_loss(GPLoss(parse_expression(expression)), settings)


def test_accuracy(expression: str, settings: TrainingSettings) -> float:
    """Test accuracy of a classifier trained on train + validation with the expression."""
    return train_with_loss(GPLoss(parse_expression(expression)), settings, final=True)


@dataclass
class FitnessCache:
    """Fitness by canonical expression; every real evaluation is counted and traced.

    ``trace`` holds (evaluation number, fitness, seconds since the cache was made) of each
    training run in the order they finished; ``hits`` counts trees served from the cache.
    """

    evaluate: Callable[[str], float]
    map: Callable = map
    values: dict[str, float] = field(default_factory=dict)
    trace: list[tuple[int, float, float]] = field(default_factory=list)
    hits: int = 0
    start: float = field(default_factory=time.perf_counter)

    @property
    def evaluations(self) -> int:
        return len(self.trace)

    def assign(self, individuals: Sequence) -> int:
        """Set the fitness of ``individuals``, training only trees not seen before (each
        distinct one once); returns the number of real evaluations."""
        keys = [canonical_string(ind) for ind in individuals]
        todo = list(dict.fromkeys(k for k in keys if k not in self.values))
        for key, fit in zip(todo, self.map(self.evaluate, todo)):
            self.values[key] = float(fit)
            self.trace.append((len(self.trace) + 1, float(fit), time.perf_counter() - self.start))
        for ind, key in zip(individuals, keys):
            ind.fitness.values = (self.values[key],)
        self.hits += len(individuals) - len(todo)
        return len(todo)


def best_so_far(trace: Iterable[tuple[int, float, float]], budget: int) -> float:
    """The best fitness among the first ``budget`` evaluations of a trace."""
    values = [fit for n, fit, _ in trace if n <= budget]
    return max(values) if values else FAILED_ACCURACY


def first_reaching(trace: Iterable[tuple[int, float, float]], level: float) -> tuple[int, float] | None:
    """(evaluations, seconds) when a trace first reached fitness ``level``, or None."""
    for n, fit, seconds in trace:
        if fit >= level:
            return n, seconds
    return None
