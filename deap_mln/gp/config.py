"""Configuration of a GP run: one dataclass, presets, JSON in and out (docs/gp.md)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deap_mln.configs import JSONConfig, require
from deap_mln.data.fitness_splits import check_fitness_source
from deap_mln.training.splits import SplitTrainingFields, preset_fitness

GP_ALGORITHMS = ("efficiency", "standard")


@dataclass
class GPConfig(SplitTrainingFields, JSONConfig):
    """Everything that determines a GP run's numbers; ``docs/gp.md`` describes each field."""

    algorithm: str = "efficiency"      # efficiency-based GP, or standard GP (the baseline)
    population: int = 20               # P
    generations: int = 15
    max_evaluations: int = 0           # stop after the generation that reaches this many trainings (0: no limit)
    tournament_size: int = 8           # efficiency: trees sampled per generation; standard: selection tournament
    top_n: int = 4                     # efficiency: best of the tournament that are mutated (N)
    subtree_prob: float = 0.5          # subtree mutation, else one-point mutation
    crossover_prob: float = 0.5        # standard: chance a pair of offspring is crossed
    mutation_prob: float = 0.2         # standard: chance an offspring is mutated
    elite: int = 1                     # standard: best trees kept from the previous population
    init_min_height: int = 1
    init_max_height: int = 3
    mutation_max_height: int = 2       # height of the subtree grown by subtree mutation
    max_height: int = 8                # gp.staticLimit on every child
    seed_known_losses: bool = True     # start from cross-entropy, Baikal, NGL and squared error
    # seed and the fitness fields (dataset, data_seed, hidden, steps, batch_size, lr): SplitTrainingFields

    def validate(self) -> GPConfig:
        """Raise ValueError naming the first field that is out of range."""
        require(self.algorithm in GP_ALGORITHMS, f"algorithm must be one of {GP_ALGORITHMS}, got {self.algorithm!r}")
        check_fitness_source(self.dataset)
        self.validate_training(self.dataset)
        require(self.halving_rungs == 0, "successive halving scores a cohort, but GP caches each tree's fitness as its own "
                "(a tree is trained once); use it with evolve-taylor, whose CMA-ES ranks each generation alone")
        for name in ("population", "tournament_size", "top_n", "init_min_height", "max_height", "steps", "batch_size"):
            require(getattr(self, name) >= 1, f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("generations", "max_evaluations", "elite", "mutation_max_height", "hidden"):
            require(getattr(self, name) >= 0, f"{name} must be non-negative, got {getattr(self, name)}")
        for name in ("subtree_prob", "crossover_prob", "mutation_prob"):
            require(0.0 <= getattr(self, name) <= 1.0, f"{name} must be in [0, 1], got {getattr(self, name)}")
        require(self.tournament_size <= self.population,
             f"tournament_size ({self.tournament_size}) must not exceed population ({self.population})")
        require(self.top_n <= self.tournament_size,
                f"top_n ({self.top_n}) must not exceed tournament_size ({self.tournament_size})")
        require(self.elite < self.population, f"elite ({self.elite}) must be below population ({self.population})")
        require(self.init_min_height <= self.init_max_height <= self.max_height,
             f"need init_min_height <= init_max_height <= max_height, got {self.init_min_height}, "
             f"{self.init_max_height}, {self.max_height}")
        require(self.lr > 0, f"lr must be positive, got {self.lr}")
        return self


GP_PRESETS: dict[str, dict[str, Any]] = {
    # About a minute on a 2-core CPU: 20 trees, 40 generations of (at most) 4 children, 100 training steps.
    "quick": dict(generations=40),
    # Tens of minutes: a larger population and longer training.
    "standard": dict(population=50, generations=60, tournament_size=12, top_n=8, steps=300),
}


def gp_preset(name: str, **overrides: Any) -> GPConfig:
    if name not in GP_PRESETS:
        raise ValueError(f"unknown GP preset {name!r}; choose from {', '.join(GP_PRESETS)}")
    return GPConfig.from_dict({**preset_fitness(overrides), **GP_PRESETS[name], **overrides})


