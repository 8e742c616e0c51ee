"""The dynamic update's meta-loss on a data set's meta-tasks (``tasks_source`` other than synthetic).

A data run's fitness is the validation accuracy (or exp(-CE)) of classifiers trained briefly
by the candidate loss (:func:`deap_mln.mln.fitness.data_task_fitness`). Accuracy has no
gradient, so the update differentiates a surrogate of it:

    L_data(M) = CE(C_M(x_val), y_val),   C_M = ``truncation`` steps of the fitness's training,

the validation cross-entropy of the classifier after the first ``truncation`` steps of the very
training the fitness runs (the same initial weights, the same mini-batches drawn with
replacement, Adam or SGD at ``task_lr``), unrolled so that it can be differentiated with
respect to the MLN's parameters through the classifier's updates, as the synthetic update
differentiates Eq. 1's MSE (:func:`deap_mln.mln.dynamic_update.truncated_meta_loss`). The
loss reaches the classifier only through its gradient with respect to the logits, read from
Eq. 4's 2-D table (or the exact MLN): the fitness's own path.

Adam is unrolled as ``torch.optim.Adam`` computes it (bias-corrected moments, eps 1e-8); the
square root of the second moment is taken of at least the smallest normal float, where its
derivative would otherwise be infinite for a weight whose gradient is exactly zero.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional

from deap_mln.data.brief_training import LogitGradient, classifier_logits, initial_parameters
from deap_mln.data.user_data import DataTask, load_task_data, make_data_task
from deap_mln.mln.config import EvolutionConfig

ADAM_BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults, as the fitness's training uses them
ADAM_EPS = 1e-8
UPDATE_STREAM = "data-update"


def update_data_task(config: EvolutionConfig, seed: int) -> DataTask:
    """A meta-task for the meta-gradient from its own stream (never an evaluation, validation or
    test task): a resampled split of the search part, with its own initial weights and batches."""
    data = load_task_data(config.tasks_source, config.data_label)
    return make_data_task(data, config.seed, UPDATE_STREAM, seed, 0, config.train_size, config.val_size)


def _sgd(params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], lr: float, _state: dict[str, list[torch.Tensor]],
         _step: int) -> list[torch.Tensor]:
    return [p - lr * g for p, g in zip(params, grads)]


def _adam(params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], lr: float, state: dict[str, list[torch.Tensor]],
          step: int) -> list[torch.Tensor]:
    """One step of torch.optim.Adam (no weight decay, no amsgrad), differentiable in everything."""
    beta1, beta2 = ADAM_BETAS
    zeros = [torch.zeros_like(g) for g in grads]
    m = [beta1 * a + (1 - beta1) * g for a, g in zip(state.get("m", zeros), grads)]
    v = [beta2 * a + (1 - beta2) * g * g for a, g in zip(state.get("v", zeros), grads)]
    state["m"], state["v"] = m, v
    step_size, root = lr / (1 - beta1 ** step), (1 - beta2 ** step) ** 0.5
    return [p - step_size * a / (b.clamp_min(torch.finfo(b.dtype).tiny).sqrt() / root + ADAM_EPS)
            for p, a, b in zip(params, m, v)]


UNROLLED_STEPS = {"adam": _adam, "sgd": _sgd}


def unrolled_data_training(logit_gradient: LogitGradient, task: DataTask, config: EvolutionConfig, truncation: int,
                           population: int, dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    """The stacked classifiers' parameters after the first ``truncation`` steps of the fitness's
    training (:func:`deap_mln.data.brief_training.train_briefly`: ``task_hidden``, ``inner_batch``,
    ``task_optimizer`` at ``task_lr``), each a differentiable function of the losses'
    ``logit_gradient`` (which must keep its graph to the genomes)."""
    split = task.split
    params = [p.detach().to(dtype).requires_grad_() for p in
              initial_parameters(split.x_train.shape[1], split.classes, config.task_hidden, population, task.init_seed)]
    batches = torch.Generator().manual_seed(task.batch_seed)
    x, y = split.x_train.to(dtype), split.y_train
    step_fn, state = UNROLLED_STEPS[config.task_optimizer], dict[str, list[torch.Tensor]]()
    for step in range(1, truncation + 1):
        index = torch.randint(len(y), (config.inner_batch,), generator=batches)
        logits = classifier_logits(params, x[index])
        grads = torch.autograd.grad(logits, params, grad_outputs=logit_gradient(logits, y[index]), create_graph=True)
        params = step_fn(params, grads, config.task_lr, state, step)
    return params


def truncated_data_loss(logit_gradient: LogitGradient, task: DataTask, config: EvolutionConfig, truncation: int,
                        population: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """L_data (P,): each member's validation cross-entropy on ``task`` after
    :func:`unrolled_data_training`."""
    params = unrolled_data_training(logit_gradient, task, config, truncation, population, dtype)
    logits = classifier_logits(params, task.split.x_eval.to(dtype))
    target = task.split.y_eval
    return torch.stack([functional.cross_entropy(member, target) for member in logits])
