"""The K-class functional check of many MLN genomes at once.

The check itself (probes, verdict, :func:`check_loss` for any loss module) is the shared leaf
:mod:`deap_mln.loss_check`, re-exported here. :func:`population_passes` checks many MLN
genomes at once with the same probes and the same verdict; the K-class fitness gives a genome
that fails it ``FAILED_MLN_FITNESS`` without training it.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from deap_mln.loss_check import (
    KINDS,
    NON_FINITE,
    OK,
    PREFERS_UNIFORM,
    PREFERS_WRONG,
    RULE,
    WRONG_CONFIDENCES,
    LossCheck,
    LossFunction,
    check_loss,
    lowest_confidence,
    path_confidences,
    probe_predictions,
    verdict,
)
from deap_mln.mln.kclass_loss import ExactKClassMLNLoss

__all__ = ["KINDS", "NON_FINITE", "OK", "PREFERS_UNIFORM", "PREFERS_WRONG", "RULE", "WRONG_CONFIDENCES", "LossCheck",
           "LossFunction", "check_loss", "lowest_confidence", "path_confidences", "population_checks",
           "population_passes", "probe_predictions", "verdict"]


def population_checks(genomes: torch.Tensor, hidden: Sequence[int], classes: int) -> list[LossCheck]:
    """:func:`check_loss` of each MLN genome (rows of ``genomes``), all at once; loss values only
    (a genome whose gradients turn non-finite in training fails there)."""
    logits, target = probe_predictions(classes, genomes.dtype)
    with torch.no_grad():
        values = ExactKClassMLNLoss(genomes, hidden).per_sample(logits.expand(genomes.shape[0], -1, -1), target)
    return [verdict(row, classes) for row in values]


def population_passes(genomes: np.ndarray | torch.Tensor, hidden: Sequence[int], classes: int) -> np.ndarray:
    """Which genomes pass the K-class check: a boolean array, one entry per row."""
    g = torch.as_tensor(genomes)
    return np.array([check.ok for check in population_checks(g, hidden, classes)], dtype=bool)
