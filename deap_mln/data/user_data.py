"""Meta-tasks from a real data set: resampled train/validation splits of its training part.

``tasks_source`` names the data (``deap-mln evolve --tasks``):

| source | data | training part / test part |
|---|---|---|
| ``digits`` | :func:`deap_mln.data.datasets.load_digits_data` (data seed 0) | its 1,347 / 450 split |
| ``mnist1d`` | :func:`deap_mln.data.datasets.load_mnist1d` | its 4,000 / 1,000 |
| ``mnist`` | :func:`deap_mln.data.datasets.load_dataset` ("mnist", as ``meta-test`` finds it) | its train / test |
| ``csv:PATH`` | numeric columns, the last one the integer label; an optional header row | a seeded 80 / 20 split of the rows |
| ``npz:PATH`` | arrays ``x`` (N, ...), ``y`` (N,); optional ``x_test``, ``y_test`` | ``x``, ``y`` / the test arrays, else 80/20 |

Inputs are flattened and standardised per feature with the training part's statistics (a
feature constant there is only centred). Labels are integers 0 .. K-1, K = largest label + 1.
The test part is used only for the run's final test score (:func:`data_tasks` with stream
``"data-test"``): evolution and validation resample the training part alone. The split of a
file into parts uses data seed 0, as ``meta-test`` does, so a run never sees the test part that
``meta-test --data-seed 0`` scores on (for ``digits``, ``mnist1d``, ``mnist``).
"""
from __future__ import annotations

import csv
import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deap_mln.data.brief_training import Split
from deap_mln.seeding import generator, seed_sequence

NAMED_SOURCES = ("digits", "mnist1d", "mnist")
FILE_KINDS = ("csv", "npz")
FILE_TEST_FRACTION = 0.2   # of a file without its own test split, held out as the test part
MIN_TRAINING_POINTS = 8    # a smaller training part cannot give a train / validation split
DATA_SEED = 0              # the file's train / test split and the named data sets' splits


@dataclass(frozen=True)
class TaskData:
    """The data a run's meta-tasks are drawn from: a training part (resampled into meta-tasks)
    and a test part (only for the final test score); x float32 (N, features), y int64."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: int
    source: str                    # one line: where the data came from and how it was split
    train_rows: np.ndarray | None  # for a file without a test split: its rows in each part
    test_rows: np.ndarray | None


@dataclass(frozen=True)
class DataTask:
    """One meta-task: a split to train and score on, and the seeds of the classifier's initial
    weights and mini-batches."""

    split: Split
    init_seed: int
    batch_seed: int


def check_source(source: str) -> None:
    """Raise ValueError unless ``source`` names a data source (the file is not read here)."""
    kind, _, path = source.partition(":")
    if source == "synthetic" or source in NAMED_SOURCES:
        return
    if kind in FILE_KINDS and path:
        return
    raise ValueError(f"tasks_source must be synthetic, {', '.join(NAMED_SOURCES)}, csv:PATH or npz:PATH, got {source!r}")


def check_arrays(x: np.ndarray, y: np.ndarray, where: str) -> None:
    """One-line ValueError for data a meta-task cannot be made of."""
    if x.ndim < 2 or x.shape[0] == 0 or math.prod(x.shape[1:]) == 0:
        raise ValueError(f"{where}: inputs must have shape (N, features...) with N >= 1, got {x.shape}")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"{where}: labels must have shape ({x.shape[0]},), one per input, got {y.shape}")
    if not np.issubdtype(x.dtype, np.number) or not np.issubdtype(y.dtype, np.number):
        raise ValueError(f"{where}: inputs and labels must be numeric, got {x.dtype} and {y.dtype}")
    if not np.isfinite(x).all():
        raise ValueError(f"{where}: inputs hold NaN or infinite values ({int((~np.isfinite(x)).sum())} entries)")
    if not np.isfinite(y).all() or (y != np.round(y)).any():
        raise ValueError(f"{where}: labels must be integers")
    if (y < 0).any():
        raise ValueError(f"{where}: labels must be non-negative, got {y.min():g}")


def read_csv_data(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and labels of a CSV file: numeric columns, the last the label; an optional header."""
    if not path.is_file():
        raise FileNotFoundError(f"no such CSV file: {path}")
    with open(path, newline="") as handle:
        rows = [row for row in csv.reader(handle) if row and any(cell.strip() for cell in row)]
    if rows and not _numeric(rows[0]):
        rows = rows[1:]  # a header
    if not rows:
        raise ValueError(f"{path}: no data rows")
    width = len(rows[0])
    if width < 2:
        raise ValueError(f"{path}: each row needs at least one input column and a label column, got {width} column")
    for number, row in enumerate(rows, 1):
        if len(row) != width:
            raise ValueError(f"{path}: data row {number} has {len(row)} columns, the first has {width}")
        if not _numeric(row):
            raise ValueError(f"{path}: data row {number} has a non-numeric value")
    table = np.array([[float(cell) for cell in row] for row in rows])
    return table[:, :-1], table[:, -1]


def _numeric(row: list[str]) -> bool:
    try:
        [float(cell) for cell in row]
    except ValueError:
        return False
    return True


def read_npz_data(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``x``, ``y`` and the optional ``x_test``, ``y_test`` of an npz file (no pickled objects)."""
    if not path.is_file():
        raise FileNotFoundError(f"no such npz file: {path}")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            found = {name: arrays[name] for name in arrays.files}
    except Exception as exc:  # BadZipFile, ValueError for object arrays, OSError
        raise ValueError(f"{path}: not a readable npz file ({' '.join(str(exc).split())})") from None
    if "x" not in found or "y" not in found:
        raise ValueError(f"{path}: needs arrays 'x' and 'y', has {sorted(found)}")
    if ("x_test" in found) != ("y_test" in found):
        raise ValueError(f"{path}: give both 'x_test' and 'y_test' or neither")
    return found["x"], found["y"], found.get("x_test"), found.get("y_test")


def standardise_features(x_train: np.ndarray, x_test: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Flattened float32 features with the training part's per-feature mean 0 and standard
    deviation 1 (a feature constant in the training part is only centred)."""
    a, b = x_train.reshape(len(x_train), -1).astype(np.float64), x_test.reshape(len(x_test), -1).astype(np.float64)
    mean, std = a.mean(axis=0), a.std(axis=0)
    std = np.where(std > 1e-8, std, 1.0)
    return torch.as_tensor(((a - mean) / std).astype(np.float32)), torch.as_tensor(((b - mean) / std).astype(np.float32))


def _from_arrays(name: str, x: np.ndarray, y: np.ndarray, x_test: np.ndarray | None, y_test: np.ndarray | None,
                 where: str) -> TaskData:
    check_arrays(x, y, where)
    train_rows = test_rows = None
    if x_test is None or y_test is None:
        order = generator(DATA_SEED, "user-data-test-split").permutation(len(y))
        n_test = max(1, round(FILE_TEST_FRACTION * len(y)))
        test_rows, train_rows = np.sort(order[:n_test]), np.sort(order[n_test:])
        x, y, x_test, y_test = x[train_rows], y[train_rows], x[test_rows], y[test_rows]
        how = f"{len(train_rows)} train / {len(test_rows)} test rows (seeded {FILE_TEST_FRACTION:.0%} held out)"
    else:
        check_arrays(x_test, y_test, f"{where} (test arrays)")
        if x_test.shape[1:] != x.shape[1:]:
            raise ValueError(f"{where}: x_test's inputs have shape {x_test.shape[1:]}, x's {x.shape[1:]}")
        how = f"{len(y)} train / {len(y_test)} test (the file's own test arrays)"
    if len(y) < MIN_TRAINING_POINTS:
        raise ValueError(f"{where}: {len(y)} training points; meta-tasks need at least {MIN_TRAINING_POINTS}")
    if len(np.unique(y)) < 2:
        raise ValueError(f"{where}: the training part has a single class ({int(y[0])}); classification needs two")
    classes = int(max(y.max(), y_test.max())) + 1
    xt, xs = standardise_features(x, x_test)
    return TaskData(name, xt, torch.as_tensor(y.astype(np.int64)), xs, torch.as_tensor(y_test.astype(np.int64)),
                    classes, f"{where}: {how}, {classes} classes", train_rows, test_rows)


@functools.lru_cache(maxsize=4)
def load_task_data(source: str) -> TaskData:
    """The data of ``tasks_source`` (anything but ``synthetic``); cached per process."""
    check_source(source)
    kind, _, path = source.partition(":")
    if kind == "csv":
        x, y = read_csv_data(Path(path))
        return _from_arrays(source, x, y, None, None, str(path))
    if kind == "npz":
        return _from_arrays(source, *read_npz_data(Path(path)), str(path))
    if source == "synthetic":
        raise ValueError("synthetic tasks are made by deap_mln.data.synthetic, not loaded")
    from deap_mln.data.datasets import load_dataset

    data = load_dataset(source, data_seed=DATA_SEED)
    xt, xs = standardise_features(data.x_train.numpy(), data.x_test.numpy())
    return TaskData(source, xt, data.y_train, xs, data.y_test, data.num_classes,
                    f"{data.source}; training part resampled into meta-tasks", None, None)


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
    part gives its training and validation points. Stream ``"data-test"`` trains on such a sample
    and scores on the data's test part."""
    n_train, n_val = task_sizes(len(data.y_train), train_size, val_size)
    order = torch.as_tensor(generator(seed, stream, generation, index).permutation(len(data.y_train)))
    train = order[:n_train]
    if stream == "data-test":
        split = Split(data.x_train[train], data.y_train[train], data.x_test, data.y_test, data.classes)
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
    data = load_task_data(config.tasks_source)
    key = generation if split == "evolution" else 0
    return [make_data_task(data, config.seed, STREAMS[split], key, i, config.train_size, config.val_size)
            for i in range(count)]
