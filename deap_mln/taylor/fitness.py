"""Fitness of a TaylorGLO parameter vector: the invariant check, then validation accuracy after brief training.

**Invariant check** (:func:`check_taylor`). TaylorGLO rejects parameter vectors that cannot
train before spending a training run on them. Here a vector must

1. pass the K-class functional check :func:`deap_mln.loss_check.check_loss` (finite values and
   gradients; for every true class, some correct prediction scores below the uniform one and the
   uniform one below a confident wrong one), and
2. at the uniform prediction, have a negative derivative with respect to the true class's
   logit: the first gradient step must raise the true class, or training never starts.

A rejected vector gets :data:`REJECTED_ACCURACY` without training.

**Fitness** (:func:`evaluate_parameters`): the validation accuracy of a classifier trained
with the loss by :func:`deap_mln.data.brief_training.train_and_score`, on the splits the GP
wing uses (:func:`deap_mln.data.fitness_splits.load_fitness_data`, ``digits`` by default:
1,000 images to train on, 347 to validate on, the 450 test images never seen). The
classifier's initial weights and batch order come from the run seed only, so a vector's
fitness is a function of the vector. A loss that turns NaN or infinite in training also
gets :data:`REJECTED_ACCURACY`. Training runs torch on one thread.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from deap_mln.data.fitness_splits import fitness_data_of
from deap_mln.loss_check import LossCheck, check_loss
from deap_mln.taylor.loss import TaylorGLOLoss
from deap_mln.training.splits import SplitTraining, split_accuracy, split_halving

REJECTED_ACCURACY = 0.0    # fitness of a vector that fails the invariant check or diverges


@dataclass(frozen=True)
class TaylorCheck:
    """Whether a parameter vector can train, and why not."""

    ok: bool
    detail: str
    kclass: LossCheck

    def __bool__(self) -> bool:
        return self.ok


def uniform_true_logit_slope(loss: TaylorGLOLoss, classes: int) -> float:
    """dL/dz_true at the uniform prediction (all logits 0), true class 0."""
    logits = torch.zeros(1, classes, dtype=torch.float64, requires_grad=True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(loss(logits, torch.zeros(1, dtype=torch.int64)), logits)
    return float(grad[0, 0])


def check_taylor(parameters: Sequence[float], classes: int = 10) -> TaylorCheck:
    """The invariant check of the module docstring for ``classes`` classes."""
    loss = TaylorGLOLoss(torch.as_tensor(list(parameters), dtype=torch.float64))
    kclass = check_loss(loss, classes)
    if not kclass:
        return TaylorCheck(False, kclass.detail, kclass)
    slope = uniform_true_logit_slope(loss, classes)
    if not slope < 0:
        return TaylorCheck(False, f"at the uniform prediction dL/dz_true = {slope:.4g} is not negative", kclass)
    return TaylorCheck(True, "", kclass)


def train_with_parameters(parameters: Sequence[float], settings: SplitTraining, final: bool = False) -> float:
    """Validation accuracy (test accuracy after training on train + validation when ``final``) of a
    classifier trained with the TaylorGLO loss of ``parameters``; REJECTED_ACCURACY if it diverged
    (:func:`deap_mln.data.fitness_splits.split_accuracy`, shared with the GP wing)."""
    score = split_accuracy(TaylorGLOLoss(torch.as_tensor(list(parameters), dtype=torch.float64)), settings, final)
    return REJECTED_ACCURACY if np.isnan(score) else score


def evaluate_parameters(parameters: Sequence[float], settings: SplitTraining) -> float:
    """Fitness of a parameter vector (what the search sends to ``toolbox.map``): rejected
    vectors score REJECTED_ACCURACY without training."""
    if not check_taylor(parameters, fitness_data_of(settings).num_classes):
        return REJECTED_ACCURACY
    return train_with_parameters(parameters, settings)


def evaluate_generation_by_halving(vectors: Sequence[Sequence[float]], settings: SplitTraining) -> list[float]:
    """Fitness of a whole generation by successive halving (``settings.halving_rungs``): rejected
    vectors score REJECTED_ACCURACY untrained; the others ``rung reached + validation accuracy``
    (:func:`deap_mln.training.splits.split_halving`), so that a vector trained longer ranks above
    every vector that stopped earlier; a diverged one REJECTED_ACCURACY."""
    classes = fitness_data_of(settings).num_classes
    scores = [REJECTED_ACCURACY] * len(vectors)
    kept = [i for i, v in enumerate(vectors) if check_taylor(v, classes)]
    losses = [TaylorGLOLoss(torch.as_tensor(list(vectors[i]), dtype=torch.float64)) for i in kept]
    for i, value in zip(kept, split_halving(losses, settings)):
        scores[i] = REJECTED_ACCURACY if np.isnan(value) else value
    return scores
