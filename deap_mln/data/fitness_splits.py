"""The train / validation / test splits that the real-data fitness of the GP and TaylorGLO wings uses.

``digits``: scikit-learn's 8x8 digits (10 classes) through :func:`deap_mln.data.datasets.load_digits_data`;
its training split (1,347 images) is divided by a seeded permutation into 1,000 images to train
on and 347 to validate on; the test split (450) is never seen by a search.
``mnist1d``: MNIST-1D's 4,000 training signals divided the same way into 3,000 and 1,000; its
1,000 test signals are never seen by a search.
Any other data source (:func:`deap_mln.data.source.load_source`: ``csv:PATH``, ``npz:PATH``,
``mnist``, ...): its training part divided the same way, a quarter of it to validate on.
``synthetic``: a binary task of :func:`deap_mln.data.synthetic.make_task` (linear ground truth, 5 inputs)
with 2,000 training, 1,000 validation and 1,000 test points.

Both wings read the same splits (same data seed, same permutation), so their fitness values
are comparable; how a candidate is trained and scored on them is :mod:`deap_mln.training.splits`.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch

from deap_mln.data.source import check_source, load_source
from deap_mln.seeding import generator

FITNESS_DATASETS = ("digits", "mnist1d", "synthetic")  # named here; any source of load_source works too
VALIDATION_FRACTION = 0.25                   # of another source's training part
DIGITS_VAL_SIZE = 347                        # of the 1,347 training images; 1,000 remain to train on
VALIDATION_SIZES = {"digits": DIGITS_VAL_SIZE, "mnist1d": 1_000}  # of MNIST-1D's 4,000: 3,000 remain
SYNTHETIC_SIZES: dict[str, Any] = dict(pool_size=20_000, train_size=2_000, val_size=2_000)  # val half is the test set


@dataclass(frozen=True)
class FitnessData:
    """Train / validation / test tensors of one fitness setting (inputs flattened)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    source: str
    class_names: tuple[str, ...] | None = None


def check_fitness_source(dataset: str) -> None:
    """Raise ValueError unless ``dataset`` is ``synthetic`` or a data source."""
    if dataset != "synthetic":
        check_source(dataset)


@functools.lru_cache(maxsize=4)
def load_fitness_data(dataset: str, data_seed: int = 0, label: str = "") -> FitnessData:
    """The data of ``dataset`` (``synthetic`` or a data source); the same seed gives the same splits."""
    if dataset == "synthetic":
        from deap_mln.data.synthetic import make_task

        task = make_task(data_seed, 0, 0, kind="linear", **SYNTHETIC_SIZES)
        labels = (task.p_val > 0.5).to(torch.int64)
        half = len(labels) // 2
        return FitnessData(task.x_train, task.y_train, task.x_val[:half], labels[:half], task.x_val[half:],
                           labels[half:], 2, f"make_task(seed={data_seed}, 0, 0, linear): "
                           f"{len(task.y_train)} train / {half} validation / {len(labels) - half} test")
    check_fitness_source(dataset)
    data = load_source(dataset, label=label or None, data_seed=data_seed)
    x, y = data.x_train.flatten(1), data.y_train
    n_val = VALIDATION_SIZES.get(dataset, max(1, round(VALIDATION_FRACTION * len(y))))
    # the stream keeps its GP name: the splits are those GP runs have always used
    order = torch.as_tensor(generator(data_seed, "gp-validation-split").permutation(len(y)))
    val, train = order[:n_val], order[n_val:]
    return FitnessData(x[train], y[train], x[val], y[val], data.x_test.flatten(1), data.y_test, data.num_classes,
                       f"{data.source}; training split -> {len(train)} train / {len(val)} validation",
                       data.class_names)


def fitness_data_of(settings: Any) -> FitnessData:
    """The fitness data a config or :class:`~deap_mln.training.splits.SplitTraining` names
    (its ``dataset``, ``data_seed`` and ``data_label``)."""
    return load_fitness_data(settings.dataset, settings.data_seed, settings.data_label)
