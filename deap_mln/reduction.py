"""The ``reduction`` argument every loss module takes, as ``torch.nn`` losses do."""
from __future__ import annotations

import torch

REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: str) -> str:
    """``reduction`` if it is one of :data:`REDUCTIONS`, else ``ValueError``."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return reduction


def reduce_losses(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    """Per-sample losses reduced as ``reduction`` says: their mean, their sum, or as they are."""
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample
