"""A K-class functional check of any loss module, as efficiency-based GP checks its trees.

A classification loss used with K classes must give, for every true class t,

    L(confident correct) < L(uniform) < L(confident wrong),     all finite,

where *confident correct* puts probability c on t and (1 - c) / (K - 1) on each other class,
*uniform* puts 1/K everywhere, and *confident wrong* puts c on the class t + 1 (mod K) and
(1 - c) / (K - 1) on the rest, at c = 0.9 and 0.99 (:data:`CONFIDENCES`). An MLN evolved on
binary tasks only ever saw the line p_false = 1 - p_true and can break this for K > 2 (a
quick-preset loss scored a uniform 10-class prediction below a confident correct one).

:func:`check_loss` checks any loss module ``loss(logits (N, K), target (N,))``: an
:class:`~deap_mln.mln.MLNLoss`, a compiled table, a GP formula, a TaylorGLO polynomial, a
baseline. ``meta-test`` and ``export`` flag losses that fail it; the TaylorGLO wing rejects
parameter vectors that fail it without training them. It is a shared leaf so that every wing
can use it; :mod:`deap_mln.mln.check` adds the batched check of many MLN genomes.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

CONFIDENCES = (0.9, 0.99)   # probability a confident prediction gives its class
KINDS = ("correct", "uniform", "wrong")
OK, NON_FINITE, PREFERS_UNIFORM, PREFERS_WRONG = "ok", "non-finite", "prefers-uniform", "prefers-wrong"

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class LossCheck:
    """The verdict of the K-class check and the loss values it compared (mean over true
    classes, at the highest confidence)."""

    classes: int
    ok: bool
    reason: str      # OK, NON_FINITE, PREFERS_UNIFORM or PREFERS_WRONG
    detail: str
    correct: float
    uniform: float
    wrong: float

    def __bool__(self) -> bool:
        return self.ok

    def line(self) -> str:
        """One line for a report: what failed, or the three values in order."""
        values = f"correct {self.correct:.4g}, uniform {self.uniform:.4g}, wrong {self.wrong:.4g}"
        return f"{self.classes}-class check {'passed' if self.ok else 'FAILED (' + self.detail + ')'}: {values}"

    def to_dict(self) -> dict:
        return asdict(self)


def probe_predictions(classes: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """The probe logits, shape (3 x len(CONFIDENCES) x K, K), and their targets: for each kind
    (correct, uniform, wrong), each confidence and each true class t = 0 .. K-1, the logits
    log(p) of that prediction."""
    target = torch.arange(classes)
    rows = []
    for kind in KINDS:
        for c in CONFIDENCES:
            p = torch.full((classes, classes), (1 - c) / (classes - 1), dtype=torch.float64)
            if kind == "uniform":
                p.fill_(1 / classes)
            else:
                p[target, target if kind == "correct" else (target + 1) % classes] = c
            rows.append(p.log())
    return torch.cat(rows).to(dtype), target.repeat(len(KINDS) * len(CONFIDENCES))


def verdict(values: torch.Tensor, classes: int) -> LossCheck:
    """The check's verdict on per-probe loss values in :func:`probe_predictions`' order."""
    v = values.detach().double().view(len(KINDS), len(CONFIDENCES), classes)
    means = v[:, -1].mean(dim=1).tolist()

    def result(reason: str, detail: str = "") -> LossCheck:
        return LossCheck(classes, reason == OK, reason, detail, *means)

    if not torch.isfinite(v).all():
        return result(NON_FINITE, "non-finite loss on a probe")
    correct, uniform, wrong = v
    for k, c in enumerate(CONFIDENCES):
        if not (correct[k] < uniform[k]).all():
            return result(PREFERS_UNIFORM, f"a {c:g}-confident correct prediction scores "
                                           f"{correct[k].max():.4g}, not below uniform {uniform[k].min():.4g}")
        if not (uniform[k] < wrong[k]).all():
            return result(PREFERS_WRONG, f"uniform scores {uniform[k].max():.4g}, not below a {c:g}-confident "
                                         f"wrong prediction {wrong[k].min():.4g}")
    return result(OK)


def check_loss(loss: LossFunction, classes: int) -> LossCheck:
    """Check a loss module (or any ``loss(logits, target)`` returning a reduced or per-sample
    loss) for ``classes`` classes; its gradient on the probes must be finite too."""
    if classes < 2:
        raise ValueError(f"classes must be at least 2, got {classes}")
    logits, target = probe_predictions(classes)
    logits.requires_grad_(True)
    with torch.enable_grad():
        values = torch.stack([loss(logits[i:i + 1], target[i:i + 1]).sum() for i in range(len(target))])
        (grad,) = torch.autograd.grad(values.sum(), logits, allow_unused=True)
    result = verdict(values, classes)
    if result.ok and grad is not None and not torch.isfinite(grad).all():
        return LossCheck(classes, False, NON_FINITE, "non-finite gradient on a probe",
                         result.correct, result.uniform, result.wrong)
    return result
