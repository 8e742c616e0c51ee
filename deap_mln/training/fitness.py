"""The faithful fitness: a candidate loss scored by the user's own training, shortened.

The published loss searches score a candidate by the target model's validation accuracy after
a fraction of its full training (TaylorGLO about 10%, EvoMAL 5%). Here the target is the
user's :class:`~deap_mln.training.trainer.TrainingSpec`; a candidate's fitness is the mean
validation accuracy, over ``splits`` resampled train / validation splits of the data's
*training part* (the test part is never read), of the spec's model trained with the candidate
for ``fraction`` of the spec's steps by :class:`~deap_mln.training.trainer.ClassifierTraining`,
the meta-test's own trainer. Every candidate sees the same initial weights and batches (the
run seed's), so differences between candidates are differences between losses.

Each candidate can train at its own learning rate (``rates``):

- ``fixed``: the spec's rate for every candidate;
- ``search``: the spec's rate and its two neighbours on the 1-3-10 ladder, the best counts
  (3x the cost);
- ``normalised``: the candidate is rescaled so that its gradient with respect to the logits has
  CE's norm on the first training batch of the initial model (free; under SGD a loss's scale is
  its learning rate, under Adam it changes almost nothing).

:func:`successive_halving` scores a whole population with more training for the better ones:
every candidate trains ``fraction`` of the steps, the better half trains on from where it
stopped for as many steps again, and so on; a candidate's fitness is its score at the last rung
it reached, and candidates that reached a later rung rank above all that stopped earlier.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from deap_mln.data.datasets import ClassificationData
from deap_mln.seeding import generator, seed_sequence
from deap_mln.training.trainer import ClassifierTraining, TrainingSpec, run_seed

RATE_CHOICES = ("fixed", "search", "normalised")
VALIDATION_FRACTION = 0.2  # of the training part, per split


@dataclass(frozen=True)
class FaithfulFitness:
    """How a candidate is scored by the user's spec (module docstring)."""

    fraction: float = 0.1            # of the spec's steps
    splits: int = 1                  # resampled train / validation splits of the training part
    rates: str = "fixed"             # fixed, search or normalised
    validation_fraction: float = VALIDATION_FRACTION

    def __post_init__(self) -> None:
        if not 0 < self.fraction <= 1:
            raise ValueError(f"the fitness's fraction of the spec's steps must be in (0, 1], got {self.fraction}")
        if self.splits < 1:
            raise ValueError(f"splits must be at least 1, got {self.splits}")
        if self.rates not in RATE_CHOICES:
            raise ValueError(f"rates must be one of {RATE_CHOICES}, got {self.rates!r}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")

    def steps(self, spec: TrainingSpec) -> int:
        return max(1, round(self.fraction * spec.steps))


def fitness_splits(data: ClassificationData, count: int, data_seed: int = 0,
                   validation_fraction: float = VALIDATION_FRACTION) -> list[ClassificationData]:
    """``count`` resampled splits of ``data``'s training part, each a ClassificationData whose
    ``x_test`` / ``y_test`` are the split's validation points (never ``data``'s test part)."""
    n = len(data.y_train)
    held_out = max(1, round(validation_fraction * n))
    if held_out >= n:
        raise ValueError(f"{n} training examples cannot give a train / validation split")
    splits = []
    for i in range(count):
        order = torch.as_tensor(generator(data_seed, "faithful-fitness-split", i).permutation(n))
        val, train = order[:held_out], order[held_out:]
        splits.append(ClassificationData(f"{data.name} (fitness split {i})", data.x_train[train], data.y_train[train],
                                         data.x_train[val], data.y_train[val], data.num_classes,
                                         f"{n - held_out} / {held_out} of the training part (split {i})"))
    return splits


def neighbour_rates(lr: float) -> list[float]:
    """``lr`` and its neighbours on the ladder ..., 1e-3, 3e-3, 1e-2, ... (about half a decade each)."""
    rung = round(2 * math.log10(lr))
    return [float(f"{3 if r % 2 else 1}e{r // 2}") for r in (rung - 1, rung, rung + 1)]


class ScaledLoss(nn.Module):
    """``scale`` x ``loss``: the same minimisers, another step size under SGD."""

    def __init__(self, loss: nn.Module, scale: float):
        super().__init__()
        self.loss, self.scale = loss, scale

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.scale * self.loss(logits, target)


def gradient_scale(loss: nn.Module, data: ClassificationData, spec: TrainingSpec, seed: int) -> float:
    """CE's logit-gradient norm over ``loss``'s, on the first batch of the initial model (1.0
    when ``loss``'s gradient is zero or not finite)."""
    with torch.random.fork_rng():
        torch.manual_seed(run_seed(seed))
        model = spec.build(data.input_shape, data.num_classes)
    x, y = data.x_train[:spec.batch_size], data.y_train[:spec.batch_size]
    with torch.no_grad():
        logits = model(x)
    norms = []
    for fn in (functional.cross_entropy, loss):
        z = logits.clone().requires_grad_()
        value = fn(z, y)
        if not (value.requires_grad and torch.isfinite(value)):
            return 1.0
        (grad,) = torch.autograd.grad(value, z)
        norms.append(float(grad.norm()))
    ce, own = norms
    return ce / own if own > 0 and math.isfinite(own) else 1.0


def candidate_rates(spec: TrainingSpec, fitness: FaithfulFitness) -> list[float]:
    return neighbour_rates(spec.lr) if fitness.rates == "search" else [spec.lr]


def split_seed(seed: int, index: int) -> int:
    """The run seed of split ``index``'s training: the same for every candidate."""
    return int(seed_sequence(seed, "faithful-fitness", index).generate_state(1)[0])


def _prepared(loss: nn.Module, split: ClassificationData, spec: TrainingSpec, fitness: FaithfulFitness,
              seed: int) -> nn.Module:
    if fitness.rates != "normalised":
        return loss
    return ScaledLoss(loss, gradient_scale(loss, split, spec, seed))


def faithful_fitness(loss: nn.Module, data: ClassificationData, spec: TrainingSpec, fitness: FaithfulFitness,
                     seed: int, data_seed: int = 0) -> float:
    """Mean validation accuracy over the splits of ``spec``'s model trained with ``loss`` for
    ``fitness.fraction`` of its steps (the best over the candidate's rates); NaN if every rate
    diverged."""
    short = replace(spec, steps=fitness.steps(spec))
    splits = fitness_splits(data, fitness.splits, data_seed, fitness.validation_fraction)
    best = math.nan
    for lr in candidate_rates(spec, fitness):
        scores = []
        for i, split in enumerate(splits):
            s = split_seed(seed, i)
            run = ClassifierTraining(split, _prepared(loss, split, short, fitness, s), s, short, lr)
            run.train(short.steps)
            scores.append(math.nan if run.diverged else run.accuracy())
        mean = float(np.mean(scores))
        if not math.isnan(mean) and not mean <= best:
            best = mean
    return best


def successive_halving(losses: Sequence[nn.Module], data: ClassificationData, spec: TrainingSpec,
                       fitness: FaithfulFitness, seed: int, rungs: int = 3, data_seed: int = 0) -> list[float]:
    """Fitness of each loss by successive halving (module docstring), at the spec's rate (or the
    normalised scale): rung r trains the survivors ``fraction`` x ``spec.steps`` more steps. The
    value returned is ``rung reached + score`` so that a sort ranks later rungs first; subtract
    the integer part for the accuracy. NaN for a loss that diverged."""
    if rungs < 1:
        raise ValueError(f"rungs must be at least 1, got {rungs}")
    chunk = fitness.steps(spec)
    splits = fitness_splits(data, fitness.splits, data_seed, fitness.validation_fraction)
    runs = [[ClassifierTraining(split, _prepared(loss, split, spec, fitness, split_seed(seed, i)),
                                split_seed(seed, i), spec)
             for i, split in enumerate(splits)] for loss in losses]
    values = [math.nan] * len(losses)
    alive = list(range(len(losses)))
    for rung in range(rungs):
        scores = {}
        for k in alive:
            for run in runs[k]:
                run.train(chunk)
            accuracies = [math.nan if run.diverged else run.accuracy() for run in runs[k]]
            scores[k] = float(np.mean(accuracies))
            values[k] = rung + scores[k] if not math.isnan(scores[k]) else math.nan
        ranked = sorted((k for k in alive if not math.isnan(scores[k])), key=lambda k: -scores[k])
        alive = ranked[:(len(ranked) + 1) // 2]  # the better half, rounded up
        if len(alive) <= 1:
            break
    return values
