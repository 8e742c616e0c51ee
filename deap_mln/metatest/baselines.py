"""Losses that evolved losses are compared against, and how ``--loss`` names are resolved.

Every loss here takes ``(logits (N, K), target (N,))`` like ``nn.CrossEntropyLoss`` and
returns the batch mean:

- ``ce``: cross-entropy, -log p_y.
- ``mse``: squared error between softmax probabilities and the one-hot target, summed over
  the K classes (so a binary prediction q for the true class costs 2 (1 - q)^2, the form
  :mod:`deap_mln.mln.plots` draws).
- ``focal``: focal loss -(1 - p_y)^gamma log p_y with gamma = 2 (Lin et al. 2017).

Anything else given to :func:`resolve_loss` is read as a saved evolved loss with
:func:`deap_mln.saved_losses.load_saved_loss`: an MLN (``deap_mln.mln.save_loss``, used as
:class:`deap_mln.mln.MLNLoss` by Eq. 4), a compiled MLN table, or a GP formula.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from deap_mln.saved_losses import MLN_FORMATS, load_saved_loss, read_record

BASELINES = ("ce", "mse", "focal")
FOCAL_GAMMA = 2.0


class SoftmaxMSELoss(nn.Module):
    """Mean over the batch of sum_k (softmax(logits)_k - onehot(target)_k)^2."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(logits, dim=1)
        onehot = F.one_hot(target, num_classes=logits.shape[1]).to(p.dtype)
        return ((p - onehot) ** 2).sum(dim=1).mean()


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017, no class weighting): mean of -(1 - p_y)^gamma log p_y."""

    def __init__(self, gamma: float = FOCAL_GAMMA):
        super().__init__()
        self.gamma = float(gamma)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = torch.log_softmax(logits, dim=1).gather(1, target.view(-1, 1)).squeeze(1)
        return (-(1.0 - log_p.exp()) ** self.gamma * log_p).mean()


def baseline_loss(name: str) -> nn.Module:
    """A fresh baseline loss module: ``ce``, ``mse`` or ``focal``."""
    if name == "ce":
        return nn.CrossEntropyLoss()
    if name == "mse":
        return SoftmaxMSELoss()
    if name == "focal":
        return FocalLoss()
    raise ValueError(f"unknown baseline loss {name!r}; choose from {', '.join(BASELINES)}")


@dataclass(frozen=True)
class LossSpec:
    """One loss to meta-test: its label in tables, the module, and whether it is a
    Meta-Loss Network (those train with the paper's MLN learning rate, 1e-4 by default)."""

    label: str
    module: nn.Module
    mln: bool


def resolve_loss(spec: str) -> LossSpec:
    """``ce``, ``mse`` or ``focal`` -> that baseline; otherwise a path to a saved evolved loss."""
    if spec in BASELINES:
        return LossSpec(spec, baseline_loss(spec), mln=False)
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"--loss {spec}: not one of {', '.join(BASELINES)} and no such loss file")
    return LossSpec(spec, load_saved_loss(path), mln=read_record(path)["format"] in MLN_FORMATS)
