"""Configuration of a TaylorGLO run: one dataclass, presets, JSON in and out (docs/taylor.md)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from deap_mln.configs import JSONConfig, require
from deap_mln.data.fitness_splits import check_fitness_source
from deap_mln.taylor.loss import PARAMETERS
from deap_mln.training.splits import SplitTrainingFields, preset_fitness

# theta_0 = theta_1 = 0, theta_3 = -2, theta_5 = 2: squared error up to a constant (taylor/loss.py),
# a trainable start, so the first generation is not mostly rejected
SQUARED_ERROR_THETA = (0.0, 0.0, 0.0, -2.0, 0.0, 2.0, 0.0, 0.0)


@dataclass
class TaylorConfig(SplitTrainingFields, JSONConfig):
    """Everything that determines a TaylorGLO run's numbers; ``docs/taylor.md`` describes each field."""

    TRAINING_STREAM = "taylor"

    generations: int = 12
    lambda_: int = 10                  # CMA-ES offspring per generation (deap.cma.Strategy's lambda_)
    sigma: float = 1.2                 # initial CMA-ES step size
    centroid: tuple[float, ...] = SQUARED_ERROR_THETA   # initial mean of the 8 parameters
    # seed and the fitness fields (dataset, data_seed, hidden, steps, batch_size, lr): SplitTrainingFields,
    # the GP wing's splits and training

    def validate(self) -> TaylorConfig:
        """Raise ValueError naming the first field that is out of range."""
        check_fitness_source(self.dataset)
        self.validate_training(self.dataset)
        for name in ("generations", "steps", "batch_size"):
            require(getattr(self, name) >= 1, f"{name} must be at least 1, got {getattr(self, name)}")
        require(self.hidden >= 0, f"hidden must be non-negative, got {self.hidden}")
        require(self.lambda_ >= 2, f"lambda_ must be at least 2 (CMA-ES recombines the best half), got {self.lambda_}")
        require(math.isfinite(self.sigma) and self.sigma > 0, f"sigma must be positive, got {self.sigma}")
        require(len(self.centroid) == PARAMETERS and all(math.isfinite(v) for v in self.centroid),
                f"centroid must be {PARAMETERS} finite numbers, got {list(self.centroid)}")
        require(self.lr > 0, f"lr must be positive, got {self.lr}")
        return self


TAYLOR_PRESETS: dict[str, dict[str, Any]] = {
    # About 35 s on a 2-core CPU: 40 generations of 12 candidates (480 evaluations), 100 training steps each.
    "quick": dict(generations=40, lambda_=12),
    # The paper's population size (28) and longer training; tens of minutes.
    "standard": dict(generations=50, lambda_=28, steps=300),
}


def taylor_preset(name: str, **overrides: Any) -> TaylorConfig:
    if name not in TAYLOR_PRESETS:
        raise ValueError(f"unknown TaylorGLO preset {name!r}; choose from {', '.join(TAYLOR_PRESETS)}")
    return TaylorConfig.from_dict({**preset_fitness(overrides), **TAYLOR_PRESETS[name], **overrides})
