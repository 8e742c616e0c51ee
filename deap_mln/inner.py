"""Inner loop: train a whole population's classifiers on one task, each with its own loss.

Every member of the population starts from the same classifier weights and sees the same
mini-batches (common random numbers), so two losses are compared on equal terms and
a member's result does not depend on which other members share its batch.

Classifiers are MLPs stored with a leading population axis and run with ``bmm``:
a single-layer perceptron (d -> 1) for linear tasks and a three-layer perceptron
(d -> 32 -> 32 -> 1, tanh) for nonlinear ones, matching the ground truth's shape.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from .seeding import torch_generator
from .tasks import NONLINEAR_HIDDEN, Task

# A population loss maps logits (P, B) and labels (B,) to each member's mean loss (P,).
PopulationLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def classifier_sizes(task_kind: str, input_dim: int) -> list[int]:
    """Layer sizes of the classifier trained on tasks of this kind (input first)."""
    if task_kind == "linear":
        return [input_dim, 1]
    return [input_dim, NONLINEAR_HIDDEN, NONLINEAR_HIDDEN, 1]


def init_classifier(sizes: Sequence[int], population: int, seed: int) -> list[torch.Tensor]:
    """Glorot-uniform weights (P, in, out) and zero biases (P, 1, out), the same for every member."""
    g = torch_generator(seed, "classifier-init")
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        w = (torch.rand(1, fan_in, fan_out, generator=g) * 2 - 1) * bound
        params += [w.expand(population, -1, -1).clone(), torch.zeros(population, 1, fan_out)]
    return params


def classifier_logits(params: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Logits (P, B) of every member for shared inputs x (B, d)."""
    h = x.unsqueeze(0).expand(params[0].shape[0], -1, -1)
    n_layers = len(params) // 2
    for i in range(n_layers):
        h = torch.baddbmm(params[2 * i + 1], h, params[2 * i])
        if i < n_layers - 1:
            h = torch.tanh(h)
    return h.squeeze(-1)


def train_population(loss: PopulationLoss, task: Task, population: int, *, task_kind: str = "linear",
                     lr: float = 0.1, batch: int = 100, epochs: int = 10) -> list[torch.Tensor]:
    """Train ``population`` classifiers by plain SGD on ``task`` with ``loss``; return their parameters.

    Each epoch visits a fresh permutation of the training points in batches of ``batch``
    (a last partial batch is dropped). Members whose loss turns non-finite keep training;
    their parameters become non-finite and the fitness marks them as failed.
    """
    sizes = classifier_sizes(task_kind, task.x_train.shape[1])
    params = [p.requires_grad_() for p in init_classifier(sizes, population, task.seed)]
    order = torch_generator(task.seed, "batch-order")
    n = task.x_train.shape[0]
    steps_per_epoch = n // batch
    for _ in range(epochs):
        perm = torch.randperm(n, generator=order)
        xs, ys = task.x_train[perm], task.y_train[perm]
        for s in range(steps_per_epoch):
            xb, yb = xs[s * batch:(s + 1) * batch], ys[s * batch:(s + 1) * batch]
            # Members are independent, so the gradient of the sum is each member's own gradient.
            grads = torch.autograd.grad(loss(classifier_logits(params, xb), yb).sum(), params)
            with torch.no_grad():
                for p, g in zip(params, grads):
                    p.sub_(lr * g)
    return [p.detach() for p in params]


def validation_mse(params: Sequence[torch.Tensor], task: Task) -> torch.Tensor:
    """Eq. 1's inner term: each member's mean squared difference between its predicted
    probabilities and the ground truth's on the validation points; shape (P,)."""
    with torch.no_grad():
        p = torch.sigmoid(classifier_logits(params, task.x_val))
        return ((p - task.p_val) ** 2).mean(dim=1)
