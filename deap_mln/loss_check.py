"""A K-class functional check of any loss module, as efficiency-based GP checks its trees.

A classification loss used with K classes must, for every true class t,

1. be finite, with a finite gradient, on every probe below;
2. score *some* correct prediction below the uniform one:
   min over c in C(K) of L(correct_c) < L(uniform);
3. score the uniform prediction below a confident wrong one: L(uniform) < L(wrong_c) at
   c = 0.9 and 0.99 (:data:`WRONG_CONFIDENCES`).

*correct_c* puts probability c on t and (1 - c) / (K - 1) on each other class: the path from
the uniform prediction (c = 1/K, 1/K everywhere) to the one-hot correct one (c = 1).
*wrong_c* puts c on the class t + 1 (mod K) and (1 - c) / (K - 1) on the rest. C(K) is
:data:`PATH_POINTS` confidences evenly spaced from :func:`lowest_confidence` (K) =
max(0.2, 1/K + 0.1) to 0.99 (:func:`path_confidences`).

Why *some* correct prediction: losses that stop short of certainty train well. Label
smoothing's minimum on the path lies at c = 1 - eps (K - 1) / K; for K = 10 Baikal's lies near
c = 0.3 and NGL's near 0.4, and both score a 0.9-confident correct prediction above the uniform
one, yet beat cross-entropy on digits. The check asks only that the loss pull a uniform prediction
towards the true class. It still rejects a loss whose minimum on the path lies at or below
uniform, as the MLN that motivated the check (evolved on binary tasks, it scored a uniform
10-class prediction below every confident correct one: its minimum lay near p_true = 0.1).

Why the lower end max(0.2, 1/K + 0.1): "correct" must mean clearly above uniform, or a loss
whose minimum sits a hair above 1/K would pass. The true class must get at least 0.1 more than
its uniform share 1/K (0.6 for K = 2, 0.43 for K = 3, 0.3 for K = 5), and at least 0.2 (from
K = 10 on: twice the uniform share at K = 10). A margin in odds instead (the true class twice
as probable as each other class, c = 2 / (K + 1): 0.67 for K = 2) would reject NGL for two
classes, whose minimum on the path lies at c = 0.56 (at K = 10 both rules give 0.2).

An MLN evolved on binary tasks only ever saw the line p_false = 1 - p_true and can break this
for K > 2. :func:`check_loss` checks any loss module ``loss(logits (N, K), target (N,))``: an
:class:`~deap_mln.mln.MLNLoss`, a compiled table, a GP formula, a TaylorGLO polynomial, a
baseline. ``meta-test`` and ``export`` flag losses that fail it; the TaylorGLO wing rejects
parameter vectors that fail it, and the K-class MLN searches genomes that fail it, without
training them. It is a shared leaf so that every wing uses the one check;
:mod:`deap_mln.mln.check` adds the batched check of many MLN genomes.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

PATH_POINTS = 16                  # correct predictions probed on the path from uniform to one-hot
LOWEST_CONFIDENCE = 0.2           # floor of the path's lower end (see the module docstring)
ABOVE_UNIFORM = 0.1               # how far the path's lower end lies above the uniform share 1/K
HIGHEST_CONFIDENCE = 0.99         # upper end of the path (certainty itself has log p = -inf elsewhere)
WRONG_CONFIDENCES = (0.9, 0.99)   # probability a confident wrong prediction gives the wrong class
KINDS = ("correct", "uniform", "wrong")
OK, NON_FINITE, PREFERS_UNIFORM, PREFERS_WRONG = "ok", "non-finite", "prefers-uniform", "prefers-wrong"
RULE = "some correct prediction < uniform < confident wrong, all finite"  # the check in a phrase, for warnings

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def lowest_confidence(classes: int) -> float:
    """The lower end of the probed path for ``classes`` classes: max(0.2, 1/K + 0.1), the true
    class's uniform share plus 0.1, and at least 0.2."""
    return max(LOWEST_CONFIDENCE, 1 / classes + ABOVE_UNIFORM)


def path_confidences(classes: int) -> tuple[float, ...]:
    """The confidences c of the probed correct predictions: :data:`PATH_POINTS` values evenly
    spaced from :func:`lowest_confidence` to :data:`HIGHEST_CONFIDENCE`."""
    low = lowest_confidence(classes)
    return tuple(low + (HIGHEST_CONFIDENCE - low) * i / (PATH_POINTS - 1) for i in range(PATH_POINTS))


@dataclass(frozen=True)
class LossCheck:
    """The verdict of the K-class check and the loss values it compared (means over true
    classes): the best correct prediction on the path and its confidence, the uniform one, and
    the lower of the two confident wrong ones."""

    classes: int
    ok: bool
    reason: str      # OK, NON_FINITE, PREFERS_UNIFORM or PREFERS_WRONG
    detail: str
    correct: float
    uniform: float
    wrong: float
    confidence: float  # the confidence of the best correct prediction on the path

    def __bool__(self) -> bool:
        return self.ok

    def line(self) -> str:
        """One line for a report: what failed, and the three values in order."""
        values = (f"best correct {self.correct:.4g} (confidence {self.confidence:.2f}), uniform {self.uniform:.4g}, "
                  f"wrong {self.wrong:.4g}")
        return f"{self.classes}-class check {'passed' if self.ok else 'FAILED (' + self.detail + ')'}: {values}"

    def to_dict(self) -> dict:
        return asdict(self)


def probe_predictions(classes: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """The probe logits log(p), shape ((len(path) + 1 + len(WRONG_CONFIDENCES)) x K, K), and their
    targets: the correct predictions at each confidence of :func:`path_confidences`, the uniform
    prediction, then the wrong ones at each of :data:`WRONG_CONFIDENCES`, each for every true
    class t = 0 .. K-1."""
    target = torch.arange(classes)
    rows = []
    for kind, confidences in (("correct", path_confidences(classes)), ("uniform", (1 / classes,)),
                              ("wrong", WRONG_CONFIDENCES)):
        for c in confidences:
            p = torch.full((classes, classes), (1 - c) / (classes - 1), dtype=torch.float64)
            p[target, target if kind == "correct" else (target + 1) % classes] = c
            if kind == "uniform":
                p.fill_(1 / classes)
            rows.append(p.log())
    return torch.cat(rows).to(dtype), target.repeat(len(rows))


def verdict(values: torch.Tensor, classes: int) -> LossCheck:
    """The check's verdict on per-probe loss values in :func:`probe_predictions`' order."""
    path = path_confidences(classes)
    v = values.detach().double().view(-1, classes)
    correct, uniform, wrong = v[:len(path)], v[len(path)], v[len(path) + 1:]
    best = int(correct.mean(dim=1).argmin()) if torch.isfinite(correct).all() else len(path) - 1

    def result(reason: str, detail: str = "") -> LossCheck:
        return LossCheck(classes, reason == OK, reason, detail, float(correct[best].mean()), float(uniform.mean()),
                         float(wrong.mean(dim=1).min()), path[best])

    if not torch.isfinite(v).all():
        return result(NON_FINITE, "non-finite loss on a probe")
    lowest = correct.min(dim=0).values  # per true class, its best correct prediction
    if not (lowest < uniform).all():
        t = int((lowest - uniform).argmax())
        return result(PREFERS_UNIFORM, f"no correct prediction with confidence {path[0]:.2f} to {path[-1]:g} scores "
                                       f"below uniform (best {lowest[t]:.4g}, uniform {uniform[t]:.4g})")
    for k, c in enumerate(WRONG_CONFIDENCES):
        if not (uniform < wrong[k]).all():
            return result(PREFERS_WRONG, f"uniform scores {uniform.max():.4g}, not below a {c:g}-confident "
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
        return LossCheck(classes, False, NON_FINITE, "non-finite gradient on a probe", result.correct,
                         result.uniform, result.wrong, result.confidence)
    return result
