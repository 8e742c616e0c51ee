"""Synthetic meta-tasks of the Adaptive-MLN paper.

Points are drawn from a mixture of Gaussians (a fixed pool per run); a task is a random
ground-truth classifier with Glorot initialisation that labels a sample of the pool into
two classes (the paper's tasks) or K classes, split into training and validation points.
``linear`` tasks use a single-layer perceptron as ground truth, ``nonlinear`` tasks a
three-layer perceptron. A binary ground truth has one output unit and a sigmoid (exactly the
paper's tasks); a K-class one has K output units and a softmax, and labels each point with
its most probable class.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from deap_mln.seeding import generator

NONLINEAR_HIDDEN = 32  # width of the nonlinear ground truth's two hidden layers
MAX_CLASSES = 10       # the most classes a synthetic task can have


@dataclass(frozen=True)
class GroundTruth:
    """A ground-truth classifier: an MLP with tanh hidden units and a sigmoid output (one
    unit: two classes) or a softmax output (K units: K classes)."""

    weights: tuple[np.ndarray, ...]  # (out, in) matrices
    biases: tuple[np.ndarray, ...]

    @property
    def classes(self) -> int:
        """Number of classes: 2 for one output unit, else the number of output units."""
        return max(2, self.weights[-1].shape[0])

    def probability(self, x: np.ndarray) -> np.ndarray:
        """For points x of shape (n, d): P(class 1 | x), shape (n,), for a binary ground truth;
        the softmax probabilities, shape (n, K), for a K-class one."""
        h = x.astype(np.float64)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w.T + b
            if i < len(self.weights) - 1:
                h = np.tanh(h)
        if h.shape[1] == 1:
            return 1.0 / (1.0 + np.exp(-h[:, 0]))
        e = np.exp(h - h.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Task:
    """One meta-task: training points with labels, validation points with the ground
    truth's probabilities, and the ground truth itself."""

    x_train: torch.Tensor    # (n_train, d) float32
    y_train: torch.Tensor    # (n_train,) int64 in {0, ..., classes - 1}
    x_val: torch.Tensor      # (n_val, d) float32
    p_val: torch.Tensor      # float32 ground truth: P(class 1), (n_val,), if binary; (n_val, classes) otherwise
    ground_truth: GroundTruth
    seed: int                # seeds the classifier's initial weights and batch order
    classes: int = 2


def glorot_ground_truth(sizes: list[int], rng: np.random.Generator) -> GroundTruth:
    """An MLP with layer sizes ``sizes`` (input first), Glorot uniform weights, zero biases."""
    weights, biases = [], []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        weights.append(rng.uniform(-bound, bound, size=(fan_out, fan_in)))
        biases.append(np.zeros(fan_out))
    return GroundTruth(tuple(weights), tuple(biases))


@functools.lru_cache(maxsize=4)
def mixture_pool(seed: int, size: int, dim: int, components: int) -> np.ndarray:
    """The run's pool of points from a mixture of ``components`` Gaussians.

    Component means are uniform in [-2, 2]^dim, each with its own diagonal standard
    deviations uniform in [0.2, 1.0]; components are equally likely. Cached per process
    because every task of a run samples the same pool.
    """
    rng = generator(seed, "mixture")
    means = rng.uniform(-2.0, 2.0, size=(components, dim))
    stds = rng.uniform(0.2, 1.0, size=(components, dim))
    which = rng.integers(components, size=size)
    pool = means[which] + stds[which] * rng.standard_normal((size, dim))
    pool.setflags(write=False)
    return pool


def output_units(classes: int) -> int:
    """Output units of a classifier for ``classes`` classes: one logit for two, else one per class."""
    if not 2 <= classes <= MAX_CLASSES:
        raise ValueError(f"classes must be in [2, {MAX_CLASSES}], got {classes}")
    return 1 if classes == 2 else classes


def make_task(seed: int, generation: int, index: int, *, kind: str = "linear", dim: int = 5,
              components: int = 50, pool_size: int = 500_000, train_size: int = 50_000,
              val_size: int = 10_000, stream: str = "task", classes: int = 2) -> Task:
    """Task ``index`` of ``generation`` under run ``seed``: the same key gives the same task.

    ``stream`` names an independent family of tasks (evaluation tasks use "task"). With
    ``classes`` = 2 the ground truth has one sigmoid output and labels by p > 0.5 (the paper's
    tasks, unchanged); with K > 2 it has K softmax outputs and labels by the most probable class.
    """
    pool = mixture_pool(seed, pool_size, dim, components)
    rng = generator(seed, stream, generation, index)
    out = output_units(classes)
    sizes = [dim, out] if kind == "linear" else [dim, NONLINEAR_HIDDEN, NONLINEAR_HIDDEN, out]
    truth = glorot_ground_truth(sizes, rng)
    chosen = rng.choice(pool_size, size=train_size + val_size, replace=False)
    x = pool[chosen]
    p = truth.probability(x)
    labels = p[:train_size] > 0.5 if classes == 2 else p[:train_size].argmax(axis=1)
    x_t = torch.as_tensor(x, dtype=torch.float32)
    return Task(
        x_train=x_t[:train_size],
        y_train=torch.as_tensor(labels, dtype=torch.int64),
        x_val=x_t[train_size:],
        p_val=torch.as_tensor(p[train_size:], dtype=torch.float32),
        ground_truth=truth,
        seed=int(rng.integers(2**31)),
        classes=classes,
    )


def config_tasks(config: Any, stream: str, generation: int, count: int) -> list[Task]:
    """``count`` tasks of ``stream`` for ``generation``, at the sizes of an evolution config."""
    return [
        make_task(config.seed, generation, i, kind=config.task_kind, dim=config.input_dim,
                  components=config.mixture_components, pool_size=config.pool_size,
                  train_size=config.train_size, val_size=config.val_size, stream=stream, classes=config.classes)
        for i in range(count)
    ]


def generation_tasks(config: Any, generation: int) -> list[Task]:
    """The tasks every individual evaluated in ``generation`` is trained on."""
    return config_tasks(config, "task", generation, config.tasks_per_eval)


def fixed_tasks(config: Any, split: str) -> list[Task]:
    """The run's fixed ``validation`` or ``test`` tasks: the same in every generation, from
    their own seed streams, never among the tasks evolution trains on."""
    count = {"validation": config.validation_tasks, "test": config.test_tasks}[split]
    return config_tasks(config, split, 0, count)
