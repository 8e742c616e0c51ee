"""Fitness of candidate losses (Eq. 1 of the Adaptive-MLN paper).

    f(theta) = mean over the generation's tasks of  -MSE(C_GT(x_val), C_theta(x_val)),

where C_theta is a classifier trained with the loss theta. Higher is better, 0 is a
perfect match. A loss whose training or validation gives a non-finite value gets
``FAILED_MLN_FITNESS``: -MSE between probabilities is never below -1, so -1 is as bad as a
real loss can be, and the run goes on.

Two entry points compute the same numbers:

* :func:`population_fitness` trains a chunk of individuals together (fast or exact path);
* :func:`reference_fitness` trains one individual the straightforward way: an
  ``nn.Module`` classifier, :class:`~deap_mln.mln.MLNLoss`, ``torch.optim.SGD``. It is the
  readable specification the batched paths are tested against.

On K-class tasks (``config.classes`` > 2) the MSE is half the squared distance between
probability vectors (:func:`~deap_mln.mln.inner.probability_mse`; for K = 2 it is the binary
number), and a loss that fails the K-class check (:mod:`deap_mln.mln.check`: confident
correct < uniform < confident wrong) gets ``FAILED_MLN_FITNESS`` without being trained.
Binary tasks have no such check: there the fitness itself measures the loss on the only
predictions Eq. 4 will ever give it, and the paper's numbers stay as they were.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from deap_mln.data.brief_training import BriefTraining, LogitGradientLoss, train_and_score
from deap_mln.data.datasets import ClassificationData
from deap_mln.data.synthetic import Task, fixed_tasks, generation_tasks
from deap_mln.data.user_data import DataTask, data_tasks, search_data
from deap_mln.mln.check import check_loss, population_passes
from deap_mln.mln.config import EvolutionConfig
from deap_mln.mln.edl import ranking_fitness
from deap_mln.mln.inner import (
    PopulationLoss,
    classifier_sizes,
    glorot_layers,
    probability_mse,
    train_population,
    validation_mse,
)
from deap_mln.mln.kclass_loss import kclass_population_loss
from deap_mln.mln.network import MLNLoss, genome_to_module
from deap_mln.mln.population_loss import population_mln_loss
from deap_mln.parallel import single_thread
from deap_mln.seeding import seed_sequence, torch_generator
from deap_mln.training.fitness import faithful_fitness
from deap_mln.training.trainer import ClassifierTraining, TrainingSpec

FAILED_MLN_FITNESS = -1.0


def fitness_from_mse(mse: torch.Tensor) -> np.ndarray:
    """-MSE per member, with non-finite values replaced by ``FAILED_MLN_FITNESS``."""
    values = mse.double().numpy()
    return np.where(np.isfinite(values), -values, FAILED_MLN_FITNESS)


def population_fitness(genomes: np.ndarray, config: EvolutionConfig, tasks: Sequence[Task]) -> np.ndarray:
    """Fitness of each row of ``genomes`` (P, D), trained together on each task.

    With ``config.classes`` > 2 only the genomes that pass the K-class check are trained;
    the others get ``FAILED_MLN_FITNESS``.
    """
    if config.classes > 2:
        return kclass_population_fitness(genomes, config, tasks)
    g = torch.as_tensor(np.ascontiguousarray(genomes, dtype=np.float32))
    return trained_fitness(population_mln_loss(config.evaluation, g, config.hidden, config.grid_size), g.shape[0],
                           config, tasks)


def kclass_population_fitness(genomes: np.ndarray, config: EvolutionConfig, tasks: Sequence[Task]) -> np.ndarray:
    """Eq. 1 on K-class tasks for the genomes that pass the K-class check (trained together,
    Eq. 4 through the fast 2-D table or the exact MLN); ``FAILED_MLN_FITNESS`` for the others."""
    g = torch.as_tensor(np.ascontiguousarray(genomes, dtype=np.float32))
    passes = population_passes(g, config.hidden, config.classes)
    scores = np.full(g.shape[0], FAILED_MLN_FITNESS)
    if passes.any():
        kept = g[torch.as_tensor(passes)]
        loss = kclass_population_loss(config.evaluation, kept, config.hidden, config.pair_grid_size)
        scores[passes] = trained_fitness(loss, kept.shape[0], config, tasks)
    return scores


def trained_fitness(loss: PopulationLoss, population: int, config: EvolutionConfig, tasks: Sequence[Task]) -> np.ndarray:
    """-MSE of ``population`` classifiers trained with ``loss`` on each task, averaged over the tasks."""
    total = torch.zeros(population, dtype=torch.float64)
    for task in tasks:
        classifier = train_population(loss, task, population, task_kind=config.task_kind, lr=config.inner_lr,
                                      batch=config.inner_batch, epochs=config.inner_epochs)
        total += validation_mse(classifier, task).double()
    return fitness_from_mse(total / len(tasks))


def data_task_fitness(genomes: np.ndarray, config: EvolutionConfig, tasks: Sequence[DataTask]) -> np.ndarray:
    """Fitness on meta-tasks from a data set (``config.tasks_source``): the mean over the tasks of
    the validation accuracy (or exp(-CE), ``config.task_fitness``) of K-class classifiers trained
    briefly with each genome's loss (Eq. 4 through the fast 2-D table or the exact MLN,
    :func:`deap_mln.data.brief_training.train_and_score`, the GP wing's training too).

    For K > 2 a genome that fails the K-class check gets ``FAILED_MLN_FITNESS`` untrained, as on
    synthetic K-class tasks; so does one whose training turns non-finite.
    """
    g = torch.as_tensor(np.ascontiguousarray(genomes, dtype=np.float32))
    classes = tasks[0].split.classes
    passes = population_passes(g, config.hidden, classes) if classes > 2 else np.ones(g.shape[0], dtype=bool)
    scores = np.full(g.shape[0], FAILED_MLN_FITNESS)
    if passes.any():
        kept = g[torch.as_tensor(passes)]
        loss = kclass_population_loss(config.evaluation, kept, config.hidden, config.pair_grid_size)
        total = np.zeros(kept.shape[0])
        for task in tasks:
            total += train_and_score(loss.logit_gradient, task.split, kept.shape[0], brief_training(config, task),
                                     config.task_fitness)
        mean = total / len(tasks)
        scores[passes] = np.where(np.isfinite(mean), mean, FAILED_MLN_FITNESS)
    return scores


def brief_training(config: EvolutionConfig, task: DataTask) -> BriefTraining:
    """How every classifier of a data task trains (:func:`data_task_fitness`): ``task_hidden``,
    ``task_steps`` of ``inner_batch`` points, ``task_optimizer`` at ``task_lr``, the task's seeds."""
    return BriefTraining(hidden=config.task_hidden, steps=config.task_steps, batch_size=config.inner_batch,
                         lr=config.task_lr, optimizer=config.task_optimizer, init_seed=task.init_seed,
                         batch_seed=task.batch_seed)


def faithful_population_fitness(genomes: np.ndarray, config: EvolutionConfig, split: str, generation: int) -> np.ndarray:
    """The faithful fitness (:mod:`deap_mln.training.fitness`) of each genome: the user's spec
    (``config.training_spec``) trained for ``config.fraction`` of its steps with the genome's Eq. 4
    loss (through the same tables as :func:`data_task_fitness`) on splits of the search part,
    seeded per generation (``evolution``, ``fitness_splits`` splits) or fixed (``validation``,
    ``validation_tasks`` splits). ``test``: ``test_tasks`` trainings on the whole search part,
    scored on the held-out part. K-class check failures and diverged
    trainings get ``FAILED_MLN_FITNESS`` untrained."""
    data = search_data(config.tasks_source, config.data_label)
    spec, fitness = config.training_spec(config.tasks_source), config.faithful()
    seed = int(seed_sequence(config.seed, "mln-faithful", split, generation if split == "evolution" else 0)
               .generate_state(1)[0])
    if split == "validation":  # the run's fixed validation tasks: that many splits of the search part
        fitness = replace(fitness, splits=max(1, config.validation_tasks))
    g = torch.as_tensor(np.ascontiguousarray(genomes, dtype=np.float32))
    passes = population_passes(g, config.hidden, data.num_classes) if data.num_classes > 2 else np.ones(len(g), bool)
    scores = np.full(len(g), FAILED_MLN_FITNESS)
    for i in np.flatnonzero(passes):
        table = kclass_population_loss(config.evaluation, g[i:i + 1], config.hidden, config.pair_grid_size)
        loss = LogitGradientLoss(table.logit_gradient)
        if split == "test":  # test_tasks trainings on the whole search part, scored on the held-out part
            score = float(np.mean([held_out_accuracy(data, loss, seed + k, replace(spec, steps=fitness.steps(spec)))
                                   for k in range(max(1, config.test_tasks))]))
        else:
            score = faithful_fitness(loss, data, spec, fitness, seed)
        scores[i] = score if math.isfinite(score) else FAILED_MLN_FITNESS
    return scores


def held_out_accuracy(data: ClassificationData, loss: nn.Module, seed: int, spec: TrainingSpec) -> float:
    """Accuracy on ``data``'s test part (an evolve run's held-out part) of ``spec`` trained on its
    training part with ``loss``; NaN if the loss diverged."""
    run = ClassifierTraining(data, loss, seed, spec)
    run.train(spec.steps)
    return math.nan if run.diverged else run.accuracy()


SPLITS = ("evolution", "validation", "test")


@dataclass(frozen=True)
class Chunk:
    """The unit of work sent to a worker: plain data only (config, generation, genomes).

    ``split`` names the tasks: ``evolution`` (the generation's own, what selection sees),
    or the run's fixed ``validation`` tasks (which loss to keep) or ``test`` tasks (how good
    the kept loss is, measured once at the end).
    """

    config: EvolutionConfig
    generation: int
    genomes: np.ndarray  # (P, D) float32
    split: str = "evolution"


def evaluate_chunk(chunk: Chunk) -> list[float]:
    """Worker entry point: the fitness of every genome in the chunk, as plain floats.

    ``config.fitness`` picks Eq. 1 on synthetic tasks ("meta-mse") or EDL's ranking
    consistency ("ranking"); with a ``tasks_source`` other than synthetic, the meta-MSE is
    replaced by :func:`data_task_fitness`. A non-finite result becomes ``FAILED_MLN_FITNESS``.
    """
    config = chunk.config
    with single_thread():
        if config.fitness == "ranking":
            key = chunk.generation if chunk.split == "evolution" else chunk.split
            scores = ranking_fitness(chunk.genomes, config, key)
            scores = np.where(np.isfinite(scores), scores, FAILED_MLN_FITNESS)
        elif config.fitness_training == "faithful":
            scores = faithful_population_fitness(chunk.genomes, config, chunk.split, chunk.generation)
        elif config.tasks_source != "synthetic":
            scores = data_task_fitness(chunk.genomes, config, data_tasks(config, chunk.split, chunk.generation))
        else:
            tasks = (generation_tasks(config, chunk.generation) if chunk.split == "evolution"
                     else fixed_tasks(config, chunk.split))
            scores = population_fitness(chunk.genomes, config, tasks)
        return [float(f) for f in scores]


def make_chunks(genomes: Sequence[np.ndarray], config: EvolutionConfig, generation: int, split: str = "evolution",
                size: int | None = None) -> list[Chunk]:
    """Split genomes into consecutive chunks of ``size`` (default ``config.chunk_size``). The
    split depends on the config only, never on the number of workers, so results do not either."""
    size = size or config.chunk_size
    return [Chunk(config, generation, np.stack([np.asarray(x, dtype=np.float32) for x in genomes[i:i + size]]), split)
            for i in range(0, len(genomes), size)]


def held_out_fitness(genomes: Sequence[np.ndarray], config: EvolutionConfig, split: str,
                     map_fn: Callable = map) -> list[float]:
    """Fitness of each genome on the run's fixed ``validation`` or ``test`` tasks.

    The genomes are trained together in chunks, as in any evaluation (validating three
    survivors costs about what validating one does). The loop scores each genome once and
    keeps that score, so a survivor is never validated again.
    """
    if split not in ("validation", "test"):
        raise ValueError(f"held-out split must be 'validation' or 'test', got {split!r}")
    return [score for chunk in map_fn(evaluate_chunk, make_chunks(genomes, config, 0, split)) for score in chunk]


def reference_fitness(genome: np.ndarray, config: EvolutionConfig, tasks: Sequence[Task]) -> float:
    """Fitness of one genome, the straightforward way (autograd through the MLN at every step).

    The binary classifier's logit z is fed to :class:`MLNLoss` as the two-class logits
    [0, z], whose softmax gives p(class 1) = sigmoid(z), as in the batched paths. A K-class
    classifier's K logits go to it as they are, after the K-class check (:func:`check_loss`).
    """
    loss_fn = MLNLoss(genome_to_module(genome, config.hidden))
    for parameter in loss_fn.parameters():
        parameter.requires_grad_(False)
    if config.classes > 2 and not check_loss(loss_fn, config.classes):
        return FAILED_MLN_FITNESS
    mses = []
    for task in tasks:
        sizes = classifier_sizes(config.task_kind, task.x_train.shape[1], task.classes)
        classifier = _reference_classifier(sizes, task.seed)
        optimiser = torch.optim.SGD(classifier.parameters(), lr=config.inner_lr)
        order = torch_generator(task.seed, "batch-order")
        n, batch = task.x_train.shape[0], config.inner_batch
        for _ in range(config.inner_epochs):
            perm = torch.randperm(n, generator=order)
            for s in range(n // batch):
                idx = perm[s * batch:(s + 1) * batch]
                logits = classifier(task.x_train[idx])
                if task.classes == 2:
                    z = logits.squeeze(-1)
                    logits = torch.stack([torch.zeros_like(z), z], dim=1)
                optimiser.zero_grad()
                loss_fn(logits, task.y_train[idx]).backward()
                optimiser.step()
        with torch.no_grad():
            z = classifier(task.x_val)
            p = torch.sigmoid(z.squeeze(-1)) if task.classes == 2 else torch.softmax(z, dim=-1)
            mses.append(float(probability_mse(p.unsqueeze(0), task.p_val)[0]))
    mse = sum(mses) / len(mses)
    return -mse if math.isfinite(mse) else FAILED_MLN_FITNESS


def _reference_classifier(sizes: Sequence[int], seed: int) -> nn.Sequential:
    """nn.Sequential with the population classifiers' initial weights."""
    initial = glorot_layers(sizes, seed)
    layers: list[nn.Module] = []
    for i, (w, b) in enumerate(initial):
        linear = nn.Linear(sizes[i], sizes[i + 1])
        with torch.no_grad():
            linear.weight.copy_(w.T)
            linear.bias.copy_(b)
        layers += [linear, nn.Tanh()] if i < len(initial) - 1 else [linear]
    return nn.Sequential(*layers)
