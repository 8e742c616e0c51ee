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
are comparable, and start their run directories the same way (:func:`open_split_run`).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deap_mln.data.brief_training import BriefTraining, Split, module_logit_gradient, train_and_score
from deap_mln.data.source import check_source, load_source
from deap_mln.io import CONFIG_FILE
from deap_mln.parallel import DispatchOptions, resolve_backend, single_thread
from deap_mln.seeding import generator, seed_sequence

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


@dataclass(frozen=True)
class SplitTraining:
    """How a search scores a candidate loss on these splits; the same for every candidate of a run."""

    dataset: str = "digits"
    data_seed: int = 0
    data_label: str = ""     # a CSV source's label column ("": the last)
    seed: int = 0            # the run seed: fixes initial weights and batch order
    hidden: int = 32         # MLP hidden units; 0 means logistic regression
    steps: int = 100
    batch_size: int = 64
    lr: float = 0.01         # Adam
    stream: str = "gp"       # names the seed streams "<stream>-classifier" and "<stream>-batches"


def split_accuracy(loss: nn.Module, settings: SplitTraining, final: bool = False) -> float:
    """Validation accuracy of a classifier trained briefly with ``loss`` (test accuracy after
    training on train + validation when ``final``); NaN if the loss diverged. Torch runs on
    one thread; the training is :func:`deap_mln.data.brief_training.train_and_score`."""
    data = load_fitness_data(settings.dataset, settings.data_seed, settings.data_label)
    x, y = data.x_train, data.y_train
    if final:
        x, y = torch.cat([x, data.x_val]), torch.cat([y, data.y_val])
        split = Split(x, y, data.x_test, data.y_test, data.num_classes)
    else:
        split = Split(x, y, data.x_val, data.y_val, data.num_classes)
    training = BriefTraining(
        hidden=settings.hidden, steps=settings.steps, batch_size=settings.batch_size, lr=settings.lr,
        optimizer="adam",
        init_seed=int(seed_sequence(settings.seed, f"{settings.stream}-classifier").generate_state(1)[0]),
        batch_seed=int(seed_sequence(settings.seed, f"{settings.stream}-batches").generate_state(1)[0]))
    with single_thread():
        return float(train_and_score(module_logit_gradient(loss), split, 1, training)[0])


@dataclass
class SplitTrainingFields:
    """The config fields of :class:`SplitTraining`, shared by the GP and TaylorGLO configs."""

    TRAINING_STREAM = "gp"   # class attribute, not a field: the wing's seed-stream name

    seed: int = 0            # the run seed
    # fitness: a classifier trained briefly with the candidate loss
    dataset: str = "digits"  # digits, mnist1d, synthetic or any data source (csv:PATH, npz:PATH, mnist, ...)
    data_seed: int = 0
    data_label: str = ""     # a CSV source's label column ("": the last)
    hidden: int = 32
    steps: int = 100
    batch_size: int = 64
    lr: float = 0.01

    def training(self) -> SplitTraining:
        return SplitTraining(dataset=self.dataset, data_seed=self.data_seed, data_label=self.data_label, seed=self.seed,
                             hidden=self.hidden, steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                             stream=self.TRAINING_STREAM)


def open_split_run(config: Any, out_dir: str | Path, backend: str | DispatchOptions, workers: int,
                   taken_hint: str = "choose another --out") -> Path:
    """Start the run directory of a search scored on these splits (GP, TaylorGLO): refuse a bad
    ``config``, a directory that already holds a run (``taken_hint`` says what to do), an
    unknown backend or missing data before anything is written; then create it and save the config."""
    out = Path(out_dir)
    config.validate()
    if (out / CONFIG_FILE).exists():
        raise FileExistsError(f"{out} already holds a run; {taken_hint}")
    resolve_backend(backend, workers)
    load_fitness_data(config.dataset, config.data_seed, config.data_label)
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / CONFIG_FILE)
    return out
