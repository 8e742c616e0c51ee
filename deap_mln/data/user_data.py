"""Meta-tasks from a real data set: resampled train/validation splits of its training part.

``tasks_source`` names the data (``deap-mln evolve --data``): any source of
:func:`deap_mln.data.source.load_source` (a named data set, ``csv:PATH``, ``npz:PATH``), loaded
with data seed 0 as ``meta-test`` loads it. Inputs are flattened and standardised per feature
with the training part's statistics.

A search never reads the data's test part (that belongs to ``meta-test``). The training part is
divided once, by a permutation of data seed 0, into a *search part* (80%), which evolution and
validation resample into meta-tasks, and a *held-out part* (20%), on which the run's test tasks
(stream ``"data-test"``) score the kept loss once after training on a sample of the search part.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from deap_mln.data.brief_training import Split
from deap_mln.data.datasets import ClassificationData
from deap_mln.data.source import MIN_TRAINING_POINTS, check_source, load_source, standardise_features
from deap_mln.seeding import generator, seed_sequence

HOLDOUT_FRACTION = 0.2     # of the training part, held out for the run's test tasks
DATA_SEED = 0              # the splits of the data, as ``meta-test --data-seed 0`` makes them

__all__ = ["DataTask", "TaskData", "check_source", "data_tasks", "load_task_data", "make_data_task", "search_data",
           "task_sizes"]


@dataclass(frozen=True)
class TaskData:
    """The data a run's meta-tasks are drawn from, all of it from the source's training part: a
    search part (resampled into meta-tasks) and a held-out part (only for the final test score);
    x float32 (N, features), y int64."""

    name: str
    x_train: torch.Tensor      # the search part
    y_train: torch.Tensor
    x_holdout: torch.Tensor    # the held-out part of the training part; never the source's test part
    y_holdout: torch.Tensor
    classes: int
    source: str                # one line: where the data came from and how it was divided
    class_names: tuple[str, ...] | None = None
    search_rows: np.ndarray | None = field(default=None, compare=False, repr=False)   # of the training part
    holdout_rows: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class DataTask:
    """One meta-task: a split to train and score on, and the seeds of the classifier's initial
    weights and mini-batches."""

    split: Split
    init_seed: int
    batch_seed: int


@functools.lru_cache(maxsize=4)
def load_task_data(source: str, label: str = "") -> TaskData:
    """The data of ``tasks_source`` (anything but ``synthetic``), divided into the search and
    held-out parts of its training part; cached per process."""
    if source == "synthetic":
        raise ValueError("synthetic tasks are made by deap_mln.data.synthetic, not loaded")
    data = load_source(source, label=label or None, data_seed=DATA_SEED)
    x = data.x_train.flatten(1).numpy()
    n = len(data.y_train)
    n_holdout = max(1, round(HOLDOUT_FRACTION * n))
    if n - n_holdout < MIN_TRAINING_POINTS:
        raise ValueError(f"{source}: {n} training points leave {n - n_holdout} to search on after holding out "
                         f"{n_holdout}; a search needs at least {MIN_TRAINING_POINTS}")
    order = generator(DATA_SEED, "search-holdout").permutation(n)
    holdout, search = np.sort(order[:n_holdout]), np.sort(order[n_holdout:])
    xs, xh = standardise_features(x[search], x[holdout])
    return TaskData(source, xs, data.y_train[search], xh, data.y_train[holdout], data.num_classes,
                    f"{data.source}; training part -> {len(search)} search / {n_holdout} held out "
                    "(the test part is not read)", data.class_names, search, holdout)


@functools.lru_cache(maxsize=4)
def search_data(source: str, label: str = "") -> ClassificationData:
    """The search part (as training examples) and the held-out part (as test examples) of
    ``source``'s training part, inputs in their own shape: what the faithful fitness of an
    ``evolve --data`` run trains on (it validates on splits of the search part)."""
    data, parts = load_source(source, label=label or None, data_seed=DATA_SEED), load_task_data(source, label)
    search, holdout = torch.as_tensor(parts.search_rows), torch.as_tensor(parts.holdout_rows)
    return ClassificationData(f"{data.name} (search part)", data.x_train[search], data.y_train[search],
                              data.x_train[holdout], data.y_train[holdout], data.num_classes,
                              f"{parts.source}", data.class_names)


def task_sizes(n: int, train_size: int, val_size: int) -> tuple[int, int]:
    """(training, validation) points of a meta-task from a training part of ``n`` points:
    validation ``val_size`` capped at a quarter of ``n``, training ``train_size`` capped at the rest."""
    n_val = max(1, min(val_size, n // 4))
    return min(train_size, n - n_val), n_val


def _seed(seed: int, *key: int | str) -> int:
    return int(seed_sequence(seed, *key).generate_state(1)[0])


def make_data_task(data: TaskData, seed: int, stream: str, generation: int, index: int, train_size: int,
                   val_size: int) -> DataTask:
    """Meta-task ``index`` of ``generation`` in ``stream``: a seeded permutation of the training
    search part gives its training and validation points. Stream ``"data-test"`` trains on such a
    sample and scores on the held-out part."""
    n_train, n_val = task_sizes(len(data.y_train), train_size, val_size)
    order = torch.as_tensor(generator(seed, stream, generation, index).permutation(len(data.y_train)))
    train = order[:n_train]
    if stream == "data-test":
        split = Split(data.x_train[train], data.y_train[train], data.x_holdout, data.y_holdout, data.classes)
    else:
        val = order[n_train:n_train + n_val]
        split = Split(data.x_train[train], data.y_train[train], data.x_train[val], data.y_train[val], data.classes)
    return DataTask(split, _seed(seed, stream, generation, index, "classifier-init"),
                    _seed(seed, stream, generation, index, "batches"))


STREAMS = {"evolution": "data-task", "validation": "data-validation", "test": "data-test"}


def data_tasks(config: Any, split: str, generation: int) -> list[DataTask]:
    """The meta-tasks of an evolution config: the generation's own (``split`` "evolution",
    ``tasks_per_eval`` of them) or the run's fixed ``validation`` / ``test`` tasks."""
    count = {"evolution": config.tasks_per_eval, "validation": config.validation_tasks,
             "test": config.test_tasks}[split]
    data = load_task_data(config.tasks_source, config.data_label)
    key = generation if split == "evolution" else 0
    return [make_data_task(data, config.seed, STREAMS[split], key, i, config.train_size, config.val_size)
            for i in range(count)]
