"""Dynamic parameter update: a meta-gradient step on MLN genomes (Algorithm 1, line 18).

    M <- M - alpha * grad_M L_meta

L_meta is the fitness's MSE (Eq. 1) after a *truncated, differentiable* run of the inner
training: ``truncation`` SGD steps of the classifier with the MLN as loss, unrolled so the
validation MSE can be differentiated with respect to the MLN's parameters (second-order,
through the classifier's updates). The step is applied to the genome itself (Lamarckian).

The step is normalised, theta <- theta - alpha * g / ||g||: a move of fixed length alpha in
parameter space. The raw gradient's scale follows the MSE's (about 1e-2 here) and the
genome's size, so a fixed multiplier would be either negligible or destructive; a length
is comparable with a mutation's, whose expected length is sigma * sqrt(n).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from deap_mln.data.synthetic import Task, make_task
from deap_mln.mln.config import EvolutionConfig
from deap_mln.mln.inner import classifier_sizes, glorot_layers
from deap_mln.mln.network import batched_mln_forward, eq4_inputs
from deap_mln.seeding import torch_generator


def _logits(params: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Functional batched MLP: params are (P, in, out) weights and (P, 1, out) biases."""
    h = x.unsqueeze(0).expand(params[0].shape[0], -1, -1)
    n_layers = len(params) // 2
    for i in range(n_layers):
        h = torch.baddbmm(params[2 * i + 1], h, params[2 * i])
        if i < n_layers - 1:
            h = torch.tanh(h)
    return h.squeeze(-1)


def truncated_meta_loss(genomes: torch.Tensor, task: Task, config: EvolutionConfig, truncation: int) -> torch.Tensor:
    """Validation MSE (P,) after ``truncation`` differentiable SGD steps with each genome's MLN as loss.

    Uses the task's first ``truncation`` mini-batches in its usual batch order, the usual
    initial classifier weights and ``config.inner_lr``.
    """
    population, dtype = genomes.shape[0], genomes.dtype
    params = []
    for w, b in glorot_layers(classifier_sizes(config.task_kind, task.x_train.shape[1]), task.seed):
        params += [w.to(dtype).expand(population, -1, -1).clone().requires_grad_(),
                   b.to(dtype).expand(population, 1, -1).clone().requires_grad_()]
    perm = torch.randperm(task.x_train.shape[0], generator=torch_generator(task.seed, "batch-order"))
    x_train, sign_all = task.x_train.to(dtype), task.y_train.to(dtype) * 2 - 1
    batch = config.inner_batch
    for k in range(truncation):
        idx = perm[(k * batch) % len(perm):][:batch]
        z = _logits(params, x_train[idx])
        q = torch.sigmoid(sign_all[idx] * z)
        loss = batched_mln_forward(genomes, eq4_inputs(q, 1 - q), config.hidden).mean(dim=1).sum()
        grads = torch.autograd.grad(loss, params, create_graph=True)
        params = [p - config.inner_lr * g for p, g in zip(params, grads)]
    p_val = torch.sigmoid(_logits(params, task.x_val.to(dtype)))
    return ((p_val - task.p_val.to(dtype)) ** 2).mean(dim=1)


def update_task(config: EvolutionConfig, rng: np.random.Generator) -> Task:
    """A task for the meta-gradient, drawn from its own stream (never an evaluation task)."""
    return make_task(config.seed, int(rng.integers(2**31)), 0, stream="dynamic-update", kind=config.task_kind,
                     dim=config.input_dim, components=config.mixture_components, pool_size=config.pool_size,
                     train_size=config.train_size, val_size=config.val_size)


def meta_gradient(genomes: np.ndarray, task: Task, config: EvolutionConfig, truncation: int) -> np.ndarray:
    """d L_meta / d genome for each row of ``genomes`` (P, D)."""
    g = torch.as_tensor(np.ascontiguousarray(genomes, dtype=np.float32)).clone().requires_grad_()
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(truncated_meta_loss(g, task, config, truncation).sum(), g)
    return grad.numpy()


def dynamic_update(individuals: list, rng: np.random.Generator, *, config: EvolutionConfig,
                   step_size: float, truncation: int) -> list:
    """Move each individual's genome a length ``step_size`` down its meta-gradient, in place.

    All individuals share one freshly drawn task (common random numbers); an individual whose
    gradient is zero or non-finite is left unchanged. Returns the individuals.
    """
    if not individuals:
        return individuals
    task = update_task(config, rng)
    for start in range(0, len(individuals), config.chunk_size):
        chunk = individuals[start:start + config.chunk_size]
        grads = meta_gradient(np.stack(chunk), task, config, truncation)
        norms = np.linalg.norm(grads.astype(np.float64), axis=1)
        for ind, grad, norm in zip(chunk, grads, norms):
            if np.isfinite(norm) and norm > 0:
                ind -= (step_size / norm * grad).astype(np.float32)
    return individuals


def keep_unchanged(individuals: list) -> list:
    """The refinement step of runs without a dynamic update."""
    return individuals
