"""Synthetic meta-tasks of the Adaptive-MLN paper.

Points are drawn from a mixture of Gaussians (a fixed pool per run); a task is a random
ground-truth classifier with Glorot initialisation that labels a sample of the pool into
two classes, split into training and validation points. ``linear`` tasks use a
single-layer perceptron as ground truth, ``nonlinear`` tasks a three-layer perceptron.
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


@dataclass(frozen=True)
class GroundTruth:
    """A ground-truth classifier: an MLP with tanh hidden units and a sigmoid output."""

    weights: tuple[np.ndarray, ...]  # (out, in) matrices
    biases: tuple[np.ndarray, ...]

    def probability(self, x: np.ndarray) -> np.ndarray:
        """P(class 1 | x) for points x of shape (n, d)."""
        h = x.astype(np.float64)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w.T + b
            if i < len(self.weights) - 1:
                h = np.tanh(h)
        return 1.0 / (1.0 + np.exp(-h[:, 0]))


@dataclass(frozen=True)
class Task:
    """One meta-task: training points with labels, validation points with the ground
    truth's probabilities, and the ground truth itself."""

    x_train: torch.Tensor    # (n_train, d) float32
    y_train: torch.Tensor    # (n_train,) int64 in {0, 1}
    x_val: torch.Tensor      # (n_val, d) float32
    p_val: torch.Tensor      # (n_val,) float32, ground-truth P(class 1)
    ground_truth: GroundTruth
    seed: int                # seeds the classifier's initial weights and batch order


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


def make_task(seed: int, generation: int, index: int, *, kind: str = "linear", dim: int = 5,
              components: int = 50, pool_size: int = 500_000, train_size: int = 50_000,
              val_size: int = 10_000, stream: str = "task") -> Task:
    """Task ``index`` of ``generation`` under run ``seed``: the same key gives the same task.

    ``stream`` names an independent family of tasks (evaluation tasks use "task").
    """
    pool = mixture_pool(seed, pool_size, dim, components)
    rng = generator(seed, stream, generation, index)
    sizes = [dim, 1] if kind == "linear" else [dim, NONLINEAR_HIDDEN, NONLINEAR_HIDDEN, 1]
    truth = glorot_ground_truth(sizes, rng)
    chosen = rng.choice(pool_size, size=train_size + val_size, replace=False)
    x = pool[chosen]
    p = truth.probability(x)
    x_t = torch.as_tensor(x, dtype=torch.float32)
    return Task(
        x_train=x_t[:train_size],
        y_train=torch.as_tensor(p[:train_size] > 0.5, dtype=torch.int64),
        x_val=x_t[train_size:],
        p_val=torch.as_tensor(p[train_size:], dtype=torch.float32),
        ground_truth=truth,
        seed=int(rng.integers(2**31)),
    )


def config_tasks(config: Any, stream: str, generation: int, count: int) -> list[Task]:
    """``count`` tasks of ``stream`` for ``generation``, at the sizes of an evolution config."""
    return [
        make_task(config.seed, generation, i, kind=config.task_kind, dim=config.input_dim,
                  components=config.mixture_components, pool_size=config.pool_size,
                  train_size=config.train_size, val_size=config.val_size, stream=stream)
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
