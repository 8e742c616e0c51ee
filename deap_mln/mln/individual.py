"""An MLN individual: a float32 genome with a fitness and a mutation strength sigma.

``creator.Individual`` is a :class:`Genome` (a 1-D float32 numpy array) with a maximised
``fitness`` and a ``strategy`` attribute, its sigma (one per individual, as in Eq. 3); the
chaotic mutation adds ``chaos``, its logistic-map states. The creator classes are made when
this module is imported, so SCOOP and process-pool workers that import it can unpickle
individuals.
"""
from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from deap import base, creator

from deap_mln.mln.network import glorot_genome


class Genome(np.ndarray):
    """float32 1-D array that keeps its attributes when copied or pickled.

    DEAP's own numpy replacement builds arrays through ``list()``, which is slow for
    175,718 genes; this class copies the buffer directly.
    """

    fitness: Any                 # a deap.base.Fitness (set by creator.Individual)
    strategy: float              # sigma, the individual's mutation strength
    chaos: np.ndarray | None     # logistic-map states of the chaotic mutation (EDL), if used

    def __new__(cls, values: Iterable[float] = ()):
        return np.array(values, dtype=np.float32, copy=True).view(cls)

    def __deepcopy__(self, memo):
        clone = np.ndarray.copy(self).view(type(self))
        clone.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return clone

    def __reduce__(self):
        return (type(self), (np.asarray(self),), self.__dict__)

    def __setstate__(self, state):
        self.__dict__.update(state)


if not hasattr(creator, "FitnessMax"):
    creator.create("FitnessMax", base.Fitness, weights=(1.0,))
if not hasattr(creator, "Individual"):
    creator.create("Individual", Genome, fitness=creator.FitnessMax, strategy=None)


def init_individual(icls: type, hidden: Sequence[int], sigma: float, rng: np.random.Generator):
    """A Glorot-initialised MLN genome of class ``icls`` with mutation strength ``sigma``."""
    individual = icls(glorot_genome(hidden, rng))
    individual.strategy = float(sigma)
    return individual


def make_individual(genome: np.ndarray, sigma: float, fitness: float | None = None, chaos: np.ndarray | None = None):
    """Wrap a stored genome back into a ``creator.Individual`` (checkpoints, hall of fame)."""
    individual = creator.Individual(genome)
    individual.strategy = float(sigma)
    if fitness is not None:
        individual.fitness.values = (float(fitness),)
    if chaos is not None:
        individual.chaos = np.array(chaos, dtype=np.float64)
    return individual


