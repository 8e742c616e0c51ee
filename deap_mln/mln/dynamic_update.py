"""Dynamic parameter update: meta-gradient steps on MLN genomes (Algorithm 1, lines 12-21).

    for t = 1 .. T_inner:
        M <- M - alpha * grad_M L_meta(M)
        M <- mutate(M) with probability lambda_mut

L_meta is the fitness's MSE (Eq. 1) after a *truncated, differentiable* run of the inner
training: ``truncation`` SGD steps of the classifier with the MLN as loss, unrolled so the
validation MSE can be differentiated with respect to the MLN's parameters (second-order,
through the classifier's updates). The steps are applied to the genome itself (Lamarckian).

The fast path differentiates through the same table of g'(q) the fitness trains with: the
table is built once per step with its graph to the genome, so the MLN runs on the grid's
points instead of on every mini-batch. Its meta-gradient agrees with the exact unrolled one
to a cosine above 0.999 on every genome tested (tests/mln/test_dynamic_update.py; at least
0.99999 at paper size, docs/method.md). On K-class tasks (``config.classes`` > 2) the same
holds with the 2-D table of dg/dp_true and dg/dp_false (:mod:`deap_mln.mln.pair_table`) and
Eq. 4's softmax gradient (:mod:`deap_mln.mln.kclass_loss`; tests/mln/test_kclass.py).

With a data source (``config.tasks_source``) L_meta is the validation cross-entropy of the
fitness's own brief training, its first ``truncation`` steps unrolled through the same 2-D table
(:mod:`deap_mln.mln.data_update`), on a split drawn from its own stream.

``update_rule = "normalised"`` keeps the earlier variant: one step of fixed length,
theta <- theta - step * g / ||g||, comparable with a mutation's expected length sigma sqrt(n).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from deap_mln.data.synthetic import Task, make_task
from deap_mln.data.user_data import DataTask
from deap_mln.mln.config import EvolutionConfig
from deap_mln.mln.data_update import truncated_data_loss, update_data_task
from deap_mln.mln.inner import classifier_sizes, glorot_layers, probability_mse
from deap_mln.mln.kclass_loss import ExactKClassMLNLoss, eq4_pairs, false_classes, kclass_logit_gradient
from deap_mln.mln.network import batched_mln_forward, eq4_inputs
from deap_mln.mln.pair_table import cell_coefficients, interpolate_pairs, tabulate_pair_mln
from deap_mln.mln.population_loss import interpolate, tabulate_binary_mln
from deap_mln.parallel import single_thread
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


LogitGradient = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def exact_logit_gradient(genomes: torch.Tensor, hidden: Sequence[int]) -> LogitGradient:
    """d/dz of each member's batch-mean loss, the MLNs run at every step, with its graph kept."""
    def gradient(z: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
        q = torch.sigmoid(sign * z)
        loss = batched_mln_forward(genomes, eq4_inputs(q, 1 - q), hidden).mean(dim=1).sum()
        return torch.autograd.grad(loss, z, create_graph=True)[0]
    return gradient


def table_logit_gradient(genomes: torch.Tensor, hidden: Sequence[int], grid_size: int) -> LogitGradient:
    """The same from the fast path's table of g'(q), tabulated once with its graph to the genomes:
    dg/dz = g'(q) s q (1 - q) / B, with g' interpolated linearly between grid points."""
    _, slopes = tabulate_binary_mln(genomes, hidden, grid_size, differentiable=True)
    steps = slopes.diff(dim=1)

    def gradient(z: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
        q = torch.sigmoid(sign * z)
        return interpolate(slopes, steps, q) * (q * (1 - q) * sign / z.shape[1])
    return gradient


def exact_kclass_logit_gradient(genomes: torch.Tensor, hidden: Sequence[int]) -> LogitGradient:
    """K-class tasks: d/dz of each member's batch-mean Eq. 4 loss (logits (P, B, K), class
    indices), the MLNs run at every step, with its graph kept."""
    loss = ExactKClassMLNLoss(genomes, hidden)

    def gradient(z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.autograd.grad(loss(z, target).sum(), z, create_graph=True)[0]
    return gradient


def table_kclass_logit_gradient(genomes: torch.Tensor, hidden: Sequence[int], resolution: int) -> LogitGradient:
    """The same from the fast K-class path's 2-D table of dg/dp_true and dg/dp_false, tabulated
    once with its graph to the genomes and interpolated bilinearly."""
    slopes = cell_coefficients(tabulate_pair_mln(genomes, hidden, resolution, differentiable=True)[:, 1:])

    def gradient(z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p, p_true, p_false = eq4_pairs(z, target)
        read = interpolate_pairs(slopes, resolution, p_true, p_false)
        return kclass_logit_gradient(p, target, false_classes(target, p.shape[2]), read[..., 0], read[..., 1])
    return gradient


def logit_gradient_for(genomes: torch.Tensor, config: EvolutionConfig, classes: int, path: str) -> LogitGradient:
    """The differentiable logit gradient of ``path`` ("exact" or "fast") for tasks of ``classes`` classes."""
    if classes == 2:
        return (exact_logit_gradient(genomes, config.hidden) if path == "exact"
                else table_logit_gradient(genomes, config.hidden, config.grid_size))
    return (exact_kclass_logit_gradient(genomes, config.hidden) if path == "exact"
            else table_kclass_logit_gradient(genomes, config.hidden, config.pair_grid_size))


def truncated_meta_loss(genomes: torch.Tensor, task: Task, config: EvolutionConfig, truncation: int,
                        path: str = "exact") -> torch.Tensor:
    """Validation MSE (P,) after ``truncation`` differentiable SGD steps with each genome's MLN as loss.

    Uses the task's first ``truncation`` mini-batches in its usual batch order, the usual
    initial classifier weights and ``config.inner_lr``. ``path`` "exact" runs the MLNs at every
    step (the reference); "fast" reads them through a table built once (:func:`table_logit_gradient`,
    or :func:`table_kclass_logit_gradient` on a K-class task).
    """
    if path not in ("exact", "fast"):
        raise ValueError(f"path must be 'exact' or 'fast', got {path!r}")
    population, dtype = genomes.shape[0], genomes.dtype
    params = []
    for w, b in glorot_layers(classifier_sizes(config.task_kind, task.x_train.shape[1], task.classes), task.seed):
        params += [w.to(dtype).expand(population, -1, -1).clone().requires_grad_(),
                   b.to(dtype).expand(population, 1, -1).clone().requires_grad_()]
    perm = torch.randperm(task.x_train.shape[0], generator=torch_generator(task.seed, "batch-order"))
    binary = task.classes == 2
    x_train, label_all = task.x_train.to(dtype), (task.y_train.to(dtype) * 2 - 1 if binary else task.y_train)
    batch = config.inner_batch
    logit_gradient = logit_gradient_for(genomes, config, task.classes, path)
    for k in range(truncation):
        idx = perm[(k * batch) % len(perm):][:batch]
        z = _logits(params, x_train[idx])
        grads = torch.autograd.grad(z, params, grad_outputs=logit_gradient(z, label_all[idx]), create_graph=True)
        params = [p - config.inner_lr * g for p, g in zip(params, grads)]
    z_val = _logits(params, task.x_val.to(dtype))
    p_val = torch.sigmoid(z_val) if binary else torch.softmax(z_val, dim=-1)
    return probability_mse(p_val, task.p_val.to(dtype))


def update_task(config: EvolutionConfig, rng: np.random.Generator) -> Task | DataTask:
    """A task for the meta-gradient, drawn from its own stream (never an evaluation task): a
    synthetic task, or with a data source a resampled split of its search part."""
    seed = int(rng.integers(2**31))
    if config.tasks_source != "synthetic":
        return update_data_task(config, seed)
    return make_task(config.seed, seed, 0, stream="dynamic-update", kind=config.task_kind,
                     dim=config.input_dim, components=config.mixture_components, pool_size=config.pool_size,
                     train_size=config.train_size, val_size=config.val_size, classes=config.classes)


def meta_loss(genomes: torch.Tensor, task: Task | DataTask, config: EvolutionConfig, truncation: int,
              path: str = "exact") -> torch.Tensor:
    """L_meta (P,) on ``task``: Eq. 1's MSE on a synthetic task (:func:`truncated_meta_loss`), the
    validation cross-entropy on a data task (:func:`deap_mln.mln.data_update.truncated_data_loss`)."""
    if not isinstance(task, DataTask):
        return truncated_meta_loss(genomes, task, config, truncation, path)
    if path not in ("exact", "fast"):
        raise ValueError(f"path must be 'exact' or 'fast', got {path!r}")
    gradient = (exact_kclass_logit_gradient(genomes, config.hidden) if path == "exact"
                else table_kclass_logit_gradient(genomes, config.hidden, config.pair_grid_size))
    return truncated_data_loss(gradient, task, config, truncation, genomes.shape[0], genomes.dtype)


def meta_gradient(genomes: np.ndarray, task: Task | DataTask, config: EvolutionConfig, truncation: int,
                  path: str = "exact") -> np.ndarray:
    """d L_meta / d genome for each row of ``genomes`` (P, D)."""
    g = torch.as_tensor(np.ascontiguousarray(genomes, dtype=np.float32)).clone().requires_grad_()
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(meta_loss(g, task, config, truncation, path).sum(), g)
    return grad.numpy()


def dynamic_update(individuals: list, rng: np.random.Generator, *, config: EvolutionConfig,
                   mutate: Callable[[Any], tuple]) -> list:
    """Refine each offspring in place by meta-gradient steps (Algorithm 1, lines 12-21).

    ``config.update_rule``:

    * ``algorithm-1``: ``update_steps`` times, M <- M - ``update_lr`` * grad L_meta(M), then
      with probability ``update_mutation_rate`` M <- mutate(M) (the registered mutation);
    * ``normalised``: one step of fixed length ``update_step``, M <- M - step * g / ||g||.

    The gradient is taken on one freshly drawn task shared by all individuals (common random
    numbers), through the fast path's table (``update_path`` "fast") or the MLN itself
    ("exact"). An individual whose gradient is zero or non-finite is not moved by that step.
    Returns the individuals.
    """
    if not individuals:
        return individuals
    task = update_task(config, rng)
    steps = config.update_steps if config.update_rule == "algorithm-1" else 1
    with single_thread():  # as every evaluation: the same numbers on any machine
        _refine_chunks(individuals, task, rng, config, mutate, steps)
    return individuals


def _refine_chunks(individuals: list, task: Task | DataTask, rng: np.random.Generator, config: EvolutionConfig,
                   mutate: Callable[[Any], tuple], steps: int) -> None:
    for start in range(0, len(individuals), config.chunk_size):
        chunk = individuals[start:start + config.chunk_size]
        for _ in range(steps):
            grads = meta_gradient(np.stack(chunk), task, config, config.update_truncation, config.update_path)
            norms = np.linalg.norm(grads.astype(np.float64), axis=1)
            for ind, grad, norm in zip(chunk, grads, norms):
                if np.isfinite(norm) and norm > 0:
                    scale = config.update_lr if config.update_rule == "algorithm-1" else config.update_step / norm
                    np.subtract(ind, (scale * grad).astype(np.float32), out=ind)
                if config.update_rule == "algorithm-1" and rng.random() < config.update_mutation_rate:
                    mutate(ind)


def keep_unchanged(individuals: list) -> list:
    """The refinement step of runs without a dynamic update."""
    return individuals
