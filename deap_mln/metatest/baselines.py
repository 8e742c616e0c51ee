"""Losses that evolved losses are compared against, and how ``--loss`` names are resolved.

Every loss here takes ``(logits (N, K), target (N,))`` like ``nn.CrossEntropyLoss`` and
returns the batch mean:

- ``ce``: cross-entropy, -log p_y.
- ``mse``: squared error between softmax probabilities and the one-hot target, summed over
  the K classes (so a binary prediction q for the true class costs 2 (1 - q)^2, the form
  :mod:`deap_mln.mln.plots` draws).
- ``focal``: focal loss -(1 - p_y)^gamma log p_y with gamma = 2 (Lin et al. 2017).
- ``ls`` (also ``label-smoothing``): cross-entropy against targets smoothed by 0.1
  (Szegedy et al. 2016), ``nn.CrossEntropyLoss(label_smoothing=0.1)``; ``ls:EPS`` smooths by
  another epsilon in [0, 1) (``ls:0.2``), labelled by its name (``ls:0.1`` is ``ls``).
- ``ls-tuned``: label smoothing whose epsilon a meta-test chooses from :data:`LS_TUNED_EPSILONS`
  together with its learning rate, on the tuned protocol's validation split
  (:func:`deap_mln.metatest.train.tune_label_smoothing`); until then it has no epsilon, and its
  module refuses to be called (a fixed epsilon is ``ls:EPS``).
- ``poly1``: Poly-1 (Leng et al. 2022, PolyLoss): CE + epsilon (1 - p_y) with epsilon = 1.
- ``baikal``: the Baikal loss (Gonzalez and Miikkulainen 2020), sum_k [-(log p_k - y_k / p_k)],
  the formula of :data:`deap_mln.gp.tree.KNOWN_LOSSES`, used as a :class:`~deap_mln.gp.tree.GPLoss`.
- ``ngl``: NGL, "Next Generation Loss" (Akhmedova and Koerber 2024), likewise from ``KNOWN_LOSSES``
  (one definition each: :mod:`deap_mln.gp.tree` documents both formulas).

Anything else given to :func:`resolve_loss` is read as a saved evolved loss with
:func:`deap_mln.saved_losses.load_saved_loss`: an MLN (``deap_mln.mln.save_loss``, used as
:class:`deap_mln.mln.MLNLoss` by Eq. 4), a compiled MLN table, a GP formula or a TaylorGLO polynomial. A saved MLN
trains through a compiled table by default (``mln_path="table"``) or as the network itself
(``"exact"``).

The compiler lives in the deploy wing, a layer above this one. It is named by the string
:data:`MLN_COMPILER` and imported when first used, the way :data:`deap_mln.saved_losses.FORMATS`
names the loaders of saved-loss formats (it already reaches the same deploy module for
table files): the meta-test depends on that one function, not on the deploy wing's code.
"""
from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from deap_mln.saved_losses import MLN_FORMAT, MLN_FORMATS, loss_from_record, read_record

BASELINES = ("ce", "mse", "focal", "ls", "poly1", "baikal", "ngl", "ls-tuned")
ALIASES = {"label-smoothing": "ls"}  # other --loss names of a baseline
FOCAL_GAMMA = 2.0
LABEL_SMOOTHING = 0.1
LABEL_SMOOTHING_PREFIX = "ls:"  # ls:EPS names label smoothing at another epsilon
LS_TUNED = "ls-tuned"  # label smoothing with epsilon and rate chosen together on the validation split
LS_TUNED_EPSILONS = (0.02, 0.05, 0.1, 0.2, 0.3)  # the epsilons ls-tuned chooses from
POLY1_EPSILON = 1.0
GP_BASELINES = {"baikal": "baikal", "ngl": "ngl"}  # --loss name -> its formula's key in gp.tree.KNOWN_LOSSES
MLN_PATHS = ("table", "exact")  # how a saved MLN is trained: compiled table (default) or the network
# "module:attribute" of the function (MLN module -> table loss at its default resolution); see the module docstring
MLN_COMPILER = "deap_mln.deploy.compiled:CompiledMLNLoss.from_mln"


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


class Poly1Loss(nn.Module):
    """Poly-1 (Leng et al. 2022): mean of -log p_y + epsilon (1 - p_y), the first polynomial term of CE raised by epsilon."""

    def __init__(self, epsilon: float = POLY1_EPSILON):
        super().__init__()
        self.epsilon = float(epsilon)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = torch.log_softmax(logits, dim=1).gather(1, target.view(-1, 1)).squeeze(1)
        return (-log_p + self.epsilon * (1.0 - log_p.exp())).mean()


class UntunedLabelSmoothing(nn.Module):
    """The loss of ``ls-tuned`` before a meta-test has chosen its epsilon: calling it is an error."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise RuntimeError(f"{LS_TUNED} has no epsilon until a meta-test tunes it (tuned protocol); "
                           f"name a fixed one as {LABEL_SMOOTHING_PREFIX}EPS")


def label_smoothing_epsilon(name: str) -> float | None:
    """The epsilon of a label-smoothing name: ``ls`` (or ``label-smoothing``) -> 0.1, ``ls:EPS`` ->
    EPS; None for any other name. ValueError for an ``ls:`` whose epsilon is not a number in [0, 1)."""
    if ALIASES.get(name, name) == "ls":
        return LABEL_SMOOTHING
    if not name.startswith(LABEL_SMOOTHING_PREFIX):
        return None
    text = name[len(LABEL_SMOOTHING_PREFIX):]
    try:
        epsilon = float(text)
    except ValueError:
        epsilon = math.nan
    if not 0 <= epsilon < 1:
        raise ValueError(f"loss {name!r}: label smoothing takes an epsilon in [0, 1), as in ls:0.2")
    return epsilon


def is_baseline(name: str) -> bool:
    """Whether ``name`` names a baseline loss: :data:`BASELINES`, an alias or ``ls:EPS``."""
    return name in BASELINES or name in ALIASES or name.startswith(LABEL_SMOOTHING_PREFIX)


def baseline_loss(name: str) -> nn.Module:
    """A fresh baseline loss module: one of :data:`BASELINES`, an alias (``label-smoothing``) or
    label smoothing at another epsilon (``ls:0.2``)."""
    epsilon = label_smoothing_epsilon(name)
    if epsilon is not None:
        return nn.CrossEntropyLoss(label_smoothing=epsilon)
    name = ALIASES.get(name, name)
    if name == LS_TUNED:
        return UntunedLabelSmoothing()
    if name in GP_BASELINES:
        from deap_mln.gp.tree import KNOWN_LOSSES, GPLoss

        return GPLoss(KNOWN_LOSSES[GP_BASELINES[name]])
    if name == "poly1":
        return Poly1Loss()
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
    Meta-Loss Network (the paper's protocol trains those at its MLN learning rate, 1e-4).

    ``mln_path`` says how an MLN file is computed: ``"table"`` (compiled here),
    ``"exact"`` (the network) or ``"table file"`` (a compiled table read from disk);
    empty for other losses.
    """

    label: str
    module: nn.Module
    mln: bool
    mln_path: str = ""


def compile_mln(module: nn.Module) -> nn.Module:
    """``module`` (an MLN loss) as a compiled table loss at the compiler's default resolution (:data:`MLN_COMPILER`)."""
    module_name, attribute = MLN_COMPILER.split(":")
    compiler: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        compiler = getattr(compiler, part)
    return compiler(module)


def label_smoothing_spec(epsilon: float, label: str | None = None) -> LossSpec:
    """Label smoothing at ``epsilon`` as a loss to meta-test, labelled ``label`` (default its
    :func:`resolve_loss` name: ``ls`` for 0.1, else ``ls:EPS``)."""
    name = "ls" if epsilon == LABEL_SMOOTHING else f"{LABEL_SMOOTHING_PREFIX}{epsilon:g}"
    return LossSpec(label or name, baseline_loss(name), mln=False)


def resolve_loss(spec: str, mln_path: str = "table") -> LossSpec:
    """A baseline name (:data:`BASELINES`, :data:`ALIASES`, ``ls:EPS``) -> that baseline; otherwise a path to a saved
    evolved loss. A saved MLN is compiled to a table unless ``mln_path`` is ``"exact"``."""
    if mln_path not in MLN_PATHS:
        raise ValueError(f"unknown MLN path {mln_path!r}; choose from {', '.join(MLN_PATHS)}")
    if is_baseline(spec):
        epsilon = label_smoothing_epsilon(spec)
        name = "ls" if epsilon == LABEL_SMOOTHING else ALIASES.get(spec, spec)
        return LossSpec(name, baseline_loss(name), mln=False)
    path = Path(spec)
    if not path.is_file():
        names = ", ".join([*BASELINES, *ALIASES])
        raise FileNotFoundError(f"--loss {spec}: not one of {names} or ls:EPS, and no such loss file")
    record = read_record(path)
    kind, module = record["format"], loss_from_record(record, source=spec)
    if kind == MLN_FORMAT:
        if mln_path == "table":
            return LossSpec(spec, compile_mln(module), mln=True, mln_path="table")
        return LossSpec(spec, module, mln=True, mln_path="exact")
    return LossSpec(spec, module, mln=kind in MLN_FORMATS, mln_path="table file" if kind in MLN_FORMATS else "")
