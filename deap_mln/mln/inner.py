"""Inner loop: train a whole population's classifiers on one task, each with its own loss.

Every member starts from the same classifier weights and sees the same mini-batches
(common random numbers), so losses are compared on equal terms.

Binary tasks (the paper's): labels enter as signs s = +1 (class 1) / -1 (class 0), and a
binary classifier's logit z gives the true class the probability q = sigmoid(s * z).
K-class tasks: labels enter as class indices, and a classifier's K logits give the
probabilities softmax(z).

Classifiers match the ground truth's shape: a single-layer perceptron (d -> 1, or d -> K) for
linear tasks, a three-layer perceptron (d -> 32 -> 32 -> 1 or K, tanh) for nonlinear ones.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import torch

from deap_mln.data.synthetic import NONLINEAR_HIDDEN, Task, output_units
from deap_mln.seeding import torch_generator


class PopulationLoss(Protocol):
    """P candidate losses applied at once to a batch of B predictions.

    Binary tasks: logits (P, B) and label signs (B,) in {+1, -1}. K-class tasks: logits
    (P, B, K) and class indices (B,) (int64).
    """

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, /) -> torch.Tensor:
        """Each member's mean loss over the batch, shape (P,)."""

    def logit_gradient(self, logits: torch.Tensor, labels: torch.Tensor, /) -> torch.Tensor:
        """Gradient of each member's mean loss with respect to its logits, the logits' shape."""


def classifier_sizes(task_kind: str, input_dim: int, classes: int = 2) -> list[int]:
    """Layer sizes of the classifier trained on tasks of this kind (input first): one output
    for binary tasks, ``classes`` outputs otherwise."""
    out = output_units(classes)
    if task_kind == "linear":
        return [input_dim, out]
    return [input_dim, NONLINEAR_HIDDEN, NONLINEAR_HIDDEN, out]


def glorot_layers(sizes: Sequence[int], seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One classifier's initial (weight (in, out), bias (out,)) per layer: Glorot uniform, zero bias."""
    g = torch_generator(seed, "classifier-init")
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        layers.append(((torch.rand(fan_in, fan_out, generator=g) * 2 - 1) * bound, torch.zeros(fan_out)))
    return layers


class PerceptronPopulation:
    """P single-layer perceptrons z = W x + b with closed-form SGD steps (no autograd)."""

    def __init__(self, layers: list[tuple[torch.Tensor, torch.Tensor]], population: int):
        (w, b), = layers
        self.weight = w[:, 0].expand(population, -1).clone()   # (P, d)
        self.bias = b.expand(population, 1).clone()             # (P, 1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, self.weight, x.T)

    def sgd_step(self, x: torch.Tensor, logit_grad: torch.Tensor, lr: float) -> None:
        self.weight.addmm_(logit_grad, x, alpha=-lr)
        self.bias.sub_(logit_grad.sum(dim=1, keepdim=True), alpha=lr)

    def parameters(self) -> list[torch.Tensor]:
        return [self.weight, self.bias]


class SoftmaxPerceptronPopulation:
    """P single-layer K-class perceptrons z = x W + b (logits (P, B, K)) with closed-form SGD steps."""

    def __init__(self, layers: list[tuple[torch.Tensor, torch.Tensor]], population: int):
        (w, b), = layers
        self.weight = w.expand(population, -1, -1).clone()      # (P, d, K)
        self.bias = b.expand(population, 1, -1).clone()         # (P, 1, K)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x.expand(self.weight.shape[0], -1, -1), self.weight)

    def sgd_step(self, x: torch.Tensor, logit_grad: torch.Tensor, lr: float) -> None:
        self.weight.sub_(torch.matmul(x.T, logit_grad), alpha=lr)
        self.bias.sub_(logit_grad.sum(dim=1, keepdim=True), alpha=lr)

    def parameters(self) -> list[torch.Tensor]:
        return [self.weight, self.bias]


class MLPPopulation:
    """P MLPs with tanh hidden units, stored with a leading population axis; autograd steps.
    Logits are (P, B) for one output unit, (P, B, K) for K."""

    def __init__(self, layers: list[tuple[torch.Tensor, torch.Tensor]], population: int):
        self.params = []
        for w, b in layers:
            self.params += [w.expand(population, -1, -1).clone().requires_grad_(),
                            b.expand(population, 1, -1).clone().requires_grad_()]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        h = x.unsqueeze(0).expand(self.params[0].shape[0], -1, -1)
        n_layers = len(self.params) // 2
        for i in range(n_layers):
            h = torch.baddbmm(self.params[2 * i + 1], h, self.params[2 * i])
            if i < n_layers - 1:
                h = torch.tanh(h)
        return h.squeeze(-1)

    def sgd_step(self, x: torch.Tensor, logit_grad: torch.Tensor, lr: float) -> None:
        with torch.enable_grad():
            grads = torch.autograd.grad(self.logits(x), self.params, grad_outputs=logit_grad)
        with torch.no_grad():
            for p, g in zip(self.params, grads):
                p.sub_(g, alpha=lr)

    def parameters(self) -> list[torch.Tensor]:
        return self.params


def make_population_classifier(sizes: Sequence[int], population: int, seed: int):
    """The classifier population for these layer sizes, every member with the same initial weights."""
    layers = glorot_layers(sizes, seed)
    if len(layers) > 1:
        return MLPPopulation(layers, population)
    return PerceptronPopulation(layers, population) if sizes[-1] == 1 else SoftmaxPerceptronPopulation(layers, population)


def train_population(loss: PopulationLoss, task: Task, population: int, *, task_kind: str = "linear",
                     lr: float = 0.1, batch: int = 100, epochs: int = 10):
    """Train ``population`` classifiers by plain SGD on ``task`` with ``loss``; return them.

    Each epoch visits a fresh permutation of the training points in batches of ``batch``
    (a last partial batch is dropped). Members whose loss turns non-finite keep training;
    their weights become non-finite and the fitness marks them as failed. The loss receives
    label signs on binary tasks and class indices on K-class tasks (see :class:`PopulationLoss`).
    """
    sizes = classifier_sizes(task_kind, task.x_train.shape[1], task.classes)
    classifier = make_population_classifier(sizes, population, task.seed)
    order = torch_generator(task.seed, "batch-order")
    n = task.x_train.shape[0]
    label_all = task.y_train.to(torch.float32) * 2 - 1 if task.classes == 2 else task.y_train
    with torch.no_grad():
        for _ in range(epochs):
            perm = torch.randperm(n, generator=order)
            xs, labels = task.x_train[perm], label_all[perm]
            for s in range(n // batch):
                xb, lb = xs[s * batch:(s + 1) * batch], labels[s * batch:(s + 1) * batch]
                logits = classifier.logits(xb)
                classifier.sgd_step(xb, loss.logit_gradient(logits, lb), lr)
    return classifier


def probability_mse(p: torch.Tensor, p_val: torch.Tensor) -> torch.Tensor:
    """Eq. 1's MSE between predicted and ground-truth probabilities, per member (leading axis).

    Binary, p (P, n) and p_val (n,) of class 1: mean over points of (p - p_gt)^2.
    K classes, p (P, n, K) and p_val (n, K): mean over points of half the squared distance
    between the probability vectors, 1/2 sum_k (p_k - p_gt,k)^2. For K = 2 the two are the
    same number (both classes' differences have the same square), and for any K it is at most 1.
    """
    if p_val.dim() == 1:
        return ((p - p_val) ** 2).mean(dim=1)
    return ((p - p_val) ** 2).sum(dim=-1).mean(dim=1) / 2


def validation_mse(classifier, task: Task) -> torch.Tensor:
    """Eq. 1's inner term: each member's :func:`probability_mse` between its predicted
    probabilities and the ground truth's on the validation points; shape (P,)."""
    with torch.no_grad():
        logits = classifier.logits(task.x_val)
        p = torch.sigmoid(logits) if task.classes == 2 else torch.softmax(logits, dim=-1)
        return probability_mse(p, task.p_val)
