"""Train classifiers briefly with a candidate loss on a data split and score them.

The fitness both wings use on real data (the GP wing's validation accuracy, the MLN wing's
``tasks_source`` meta-tasks): P small classifiers, every member with the same initial weights
and the same mini-batches (common random numbers), each trained by its own loss for a fixed
number of steps, then scored on the split's evaluation points.

* The classifier is logistic regression (``hidden`` 0) or an MLP with one hidden ReLU layer,
  PyTorch's default initialisation under ``torch.manual_seed(init_seed)``; the P members'
  parameters are stacked along a leading axis.
* A step draws ``batch_size`` indices with replacement from ``torch.Generator().manual_seed(
  batch_seed)``, asks the loss for the gradient of each member's mean loss with respect to its
  logits (:data:`LogitGradient`), back-propagates it through the classifiers and takes an Adam
  (or plain SGD) step at ``lr``.
* A member whose gradient turns non-finite, or whose weights end non-finite, is failed: its
  score is NaN and each wing maps that to its own worst fitness.

With one member the classifier is evaluated with the same operations as an ``nn.Linear`` /
``nn.Sequential`` module, so the GP wing's single-tree fitness is bit for bit what it was when
it trained a module directly.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional

OPTIMIZERS = ("adam", "sgd")
MEASURES = ("accuracy", "cross-entropy")

# logits (P, B, K), targets (B,) -> d(each member's mean loss)/d(logits) (P, B, K); None: the
# loss does not depend on the prediction (the classifiers never move, training stops)
LogitGradient = Callable[[torch.Tensor, torch.Tensor], "torch.Tensor | None"]


@dataclass(frozen=True)
class Split:
    """Points to train on and points to score on; x float32 (N, features), y int64 in [0, classes)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_eval: torch.Tensor
    y_eval: torch.Tensor
    classes: int


@dataclass(frozen=True)
class BriefTraining:
    """How each candidate loss trains its classifier: the same for every member of a run."""

    hidden: int = 32          # MLP hidden units; 0 means logistic regression
    steps: int = 100
    batch_size: int = 64
    lr: float = 0.01
    optimizer: str = "adam"   # adam or sgd
    init_seed: int = 0        # torch.manual_seed for the initial weights
    batch_seed: int = 0       # seeds the mini-batch draws


def build_classifier(inputs: int, classes: int, hidden: int) -> nn.Module:
    """Logistic regression (``hidden`` 0) or Linear -> ReLU -> Linear, PyTorch's default init."""
    if hidden == 0:
        return nn.Linear(inputs, classes)
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, classes))


def initial_parameters(inputs: int, classes: int, hidden: int, population: int, seed: int) -> list[torch.Tensor]:
    """[weight (P, out, in), bias (P, out)] per layer: ``population`` copies of one classifier
    initialised under ``torch.manual_seed(seed)`` (the global RNG is left as it was)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        module = build_classifier(inputs, classes, hidden)
    return [p.detach().unsqueeze(0).expand(population, *p.shape).clone().requires_grad_()
            for p in module.parameters()]


def classifier_logits(params: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Logits (P, N, K) of the stacked classifiers on points x (N, features)."""
    layers = len(params) // 2
    if params[0].shape[0] == 1:  # one member: exactly nn.Linear's operations
        h = x
        for i in range(layers):
            h = functional.linear(h, params[2 * i][0], params[2 * i + 1][0])
            if i < layers - 1:
                h = torch.relu(h)
        return h.unsqueeze(0)
    h = x.expand(params[0].shape[0], -1, -1)
    for i in range(layers):
        h = torch.baddbmm(params[2 * i + 1].unsqueeze(1), h, params[2 * i].transpose(1, 2))
        if i < layers - 1:
            h = torch.relu(h)
    return h


def make_optimizer(name: str, params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    return torch.optim.Adam(params, lr=lr) if name == "adam" else torch.optim.SGD(params, lr=lr)


def train_briefly(logit_gradient: LogitGradient, split: Split, population: int,
                  settings: BriefTraining) -> tuple[list[torch.Tensor], np.ndarray]:
    """Train ``population`` classifiers, member i by the gradient ``logit_gradient`` gives its
    logits; return their parameters and which members failed (non-finite gradient or weights)."""
    params = initial_parameters(split.x_train.shape[1], split.classes, settings.hidden, population,
                                settings.init_seed)
    optimizer = make_optimizer(settings.optimizer, params, settings.lr)
    batches = torch.Generator().manual_seed(settings.batch_seed)
    failed = torch.zeros(population, dtype=torch.bool)
    x, y = split.x_train, split.y_train
    for _ in range(settings.steps):
        index = torch.randint(len(y), (settings.batch_size,), generator=batches)
        logits = classifier_logits(params, x[index])
        grad = logit_gradient(logits.detach(), y[index])
        if grad is None:  # the loss ignores the prediction: the classifiers would never move
            break
        bad = ~torch.isfinite(grad).flatten(1).all(dim=1)
        if bad.any():
            failed |= bad
            if failed.all():
                break
            grad = torch.where(failed.view(-1, 1, 1), torch.zeros_like(grad), grad)
        optimizer.zero_grad()
        grads = torch.autograd.grad(logits, params, grad_outputs=grad)
        for p, g in zip(params, grads):
            p.grad = g
        optimizer.step()
    with torch.no_grad():
        for p in params:
            failed |= ~torch.isfinite(p).flatten(1).all(dim=1)
    return params, failed.numpy()


@torch.no_grad()
def score_logits(logits: torch.Tensor, y: torch.Tensor, measure: str = "accuracy") -> np.ndarray:
    """Each member's score on points with labels ``y``: ``accuracy``, or for ``cross-entropy``
    exp(-mean CE), the geometric mean of the probability given to the true class (in (0, 1],
    ordered as -CE)."""
    if measure == "accuracy":
        return (logits.argmax(dim=-1) == y).to(torch.float64).mean(dim=1).numpy()
    if measure == "cross-entropy":
        ce = torch.stack([functional.cross_entropy(member.double(), y) for member in logits])
        return torch.exp(-ce).numpy()
    raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")


def train_and_score(logit_gradient: LogitGradient, split: Split, population: int, settings: BriefTraining,
                    measure: str = "accuracy") -> np.ndarray:
    """Scores (P,) of classifiers trained briefly with each member's loss on ``split.x_train``
    and scored on ``split.x_eval``; NaN for a member that failed."""
    params, failed = train_briefly(logit_gradient, split, population, settings)
    with torch.no_grad():
        scores = score_logits(classifier_logits(params, split.x_eval), split.y_eval, measure)
    return np.where(failed, np.nan, scores)


def module_logit_gradient(loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> LogitGradient:
    """The :data:`LogitGradient` of one loss module ``loss(logits (B, K), target (B,))`` (mean
    reduced) for a single member: NaN where the loss value is not finite, None where it does
    not depend on the logits."""
    def gradient(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
        z = logits[0].detach().requires_grad_()
        with torch.enable_grad():
            value = loss(z, target)
        if not torch.isfinite(value):
            return torch.full_like(logits, float("nan"))
        if not value.requires_grad:
            return None
        (grad,) = torch.autograd.grad(value, z)
        return grad.unsqueeze(0)
    return gradient


class _InjectedGradient(torch.autograd.Function):
    """A zero-valued node whose gradient with respect to ``logits`` is ``grad`` (times the upstream gradient)."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(grad)
        return logits.new_zeros(())

    @staticmethod
    def backward(ctx, upstream: torch.Tensor) -> tuple[torch.Tensor, None]:
        (grad,) = ctx.saved_tensors
        return grad * upstream, None


class LogitGradientLoss(nn.Module):
    """A loss module known only by its :data:`LogitGradient` (one member): ``loss(logits (B, K),
    target (B,))`` is 0 with the exact gradient of the member's mean loss (NaN where that gradient
    is not finite), so any trainer can train with it; the inverse of :func:`module_logit_gradient`."""

    def __init__(self, gradient: LogitGradient):
        super().__init__()
        self.gradient = gradient

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # the gradient's tables live on the CPU: a model on another device sends its logits over
        grad = self.gradient(logits.detach().cpu().unsqueeze(0), target.cpu())
        if grad is None:  # the loss ignores the prediction
            return (logits * 0).sum()
        value = _InjectedGradient.apply(logits, grad[0].to(device=logits.device, dtype=logits.dtype))
        return value if bool(torch.isfinite(grad).all()) else value + float("nan")
