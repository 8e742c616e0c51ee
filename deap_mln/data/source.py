"""One data source for every command: a name, a file or arrays, loaded the same way for the
searches and the meta-test.

``--data SOURCE`` (every command that trains) and ``source`` (every library entry point):

- a name, :data:`deap_mln.data.datasets.DATASETS` (``digits``, ``mnist1d``, ``mnist``,
  ``fashion-mnist``, ``cifar10``, ``synthetic-linear``, ``synthetic-nonlinear``):
  :func:`deap_mln.data.datasets.load_dataset`, with the data set's own train / test split;
- ``csv:PATH``: a header row, then one row per example; the label column by name (``label``,
  default the last), every other column numeric; a seeded 80 / 20 train / test split of the rows;
- ``npz:PATH``: arrays ``x`` (N, ...), ``y`` (N,) and optionally ``x_test``, ``y_test`` (else 80 / 20);
- arrays ``(X, y)`` or ``(X, y, X_test, y_test)`` (library only): numpy arrays or tensors, as npz.

Labels: integers 0 .. K-1 (K = largest label + 1), or class names (any non-numeric label
column), mapped to 0 .. K-1 in sorted order and kept as :attr:`ClassificationData.class_names`.
File and array inputs are standardised per feature with the training part's statistics (a
feature constant there is only centred), keeping their shape.

A search reads only the training part (:attr:`ClassificationData.x_train`); the test part
belongs to the meta-test alone. Bad input (a missing file, a bad shape, NaN, a single class, an
unknown label column) is a one-line ``ValueError`` or ``FileNotFoundError``.
"""
from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import torch

from deap_mln.data.datasets import DATASETS, ClassificationData, load_dataset
from deap_mln.seeding import generator

FILE_KINDS = ("csv", "npz")
FILE_TEST_FRACTION = 0.2   # of a file without its own test split, held out as the test part
MIN_TRAINING_POINTS = 8    # a smaller training part cannot give a train / validation split
SOURCES_HELP = (f"{', '.join(DATASETS)}, csv:PATH (a header row; the label column named by --label, "
                "default the last; class names or integer labels) or npz:PATH (arrays x, y, optionally x_test, y_test)")

ArraySource: TypeAlias = "tuple[Any, Any] | tuple[Any, Any, Any, Any]"
Source: TypeAlias = "str | ArraySource | ClassificationData"


def check_source(source: str) -> None:
    """Raise ValueError unless ``source`` names a data source (a file is not read here)."""
    kind, _, path = source.partition(":")
    if source in DATASETS or (kind in FILE_KINDS and path):
        return
    raise ValueError(f"unknown data source {source!r}; choose from {SOURCES_HELP}")


def source_name(source: Source) -> str:
    """How a source is written in a run's files: its string, or ``arrays`` for arrays."""
    if isinstance(source, str):
        return source
    return source.name if isinstance(source, ClassificationData) else "arrays"


def load_source(source: Source, *, label: str | None = None, data_dir: str | Path | None = None,
                download: bool = False, data_seed: int = 0) -> ClassificationData:
    """The data of ``source`` (see the module's table) with its training and test parts.

    ``label`` names a CSV file's label column (default: the last); ``data_dir`` and
    ``download`` matter for the torchvision data sets only; ``data_seed`` fixes every split."""
    if isinstance(source, ClassificationData):
        return source
    if isinstance(source, tuple):
        if len(source) not in (2, 4):
            raise ValueError(f"arrays: give (X, y) or (X, y, X_test, y_test), got {len(source)} arrays")
        x, y = np.asarray(source[0]), np.asarray(source[1])
        x_test, y_test = (np.asarray(source[2]), np.asarray(source[3])) if len(source) == 4 else (None, None)
        return from_arrays("arrays", x, y, x_test, y_test, where="arrays", data_seed=data_seed)
    if not isinstance(source, str):
        raise ValueError(f"a data source is a name, csv:PATH, npz:PATH or arrays (X, y), got {type(source).__name__}")
    check_source(source)
    kind, _, path = source.partition(":")
    if label is not None and kind != "csv":
        raise ValueError(f"--label names a CSV file's label column; {source} is not a CSV file")
    if kind == "csv":
        x, y, names = read_csv_data(Path(path), label)
        return from_arrays(source, x, y, None, None, where=path, class_names=names, data_seed=data_seed)
    if kind == "npz":
        return from_arrays(source, *read_npz_data(Path(path)), where=path, data_seed=data_seed)
    return load_dataset(source, Path(data_dir) if data_dir is not None else None, download, data_seed)


# ------------------------------------------------------------------------------ files


def read_csv_data(path: Path, label: str | None = None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...] | None]:
    """Inputs, integer labels and the class names (None for integer labels) of a CSV file.

    The first row is a header when it holds a name where the next row holds a number (or when
    every cell of it is a name); the label column is ``label`` (which needs the header) or the last."""
    if not path.is_file():
        raise FileNotFoundError(f"no such CSV file: {path}")
    with open(path, newline="") as handle:
        rows = [[cell.strip() for cell in row] for row in csv.reader(handle) if row and any(c.strip() for c in row)]
    header = rows[0] if rows and _is_header(rows) else None
    rows = rows[1:] if header else rows
    if not rows:
        raise ValueError(f"{path}: no data rows")
    width = len(rows[0])
    if width < 2:
        raise ValueError(f"{path}: each row needs at least one input column and a label column, got {width} column")
    column = width - 1
    if label is not None:
        if header is None:
            raise ValueError(f"{path}: --label {label} names a column, but the file has no header row")
        if label not in header:
            raise ValueError(f"{path}: no column {label!r}; the header has {', '.join(header)}")
        column = header.index(label)
    if header is not None and len(header) != width:
        raise ValueError(f"{path}: the header has {len(header)} columns, the first data row {width}")
    for number, row in enumerate(rows, 1):
        if len(row) != width:
            raise ValueError(f"{path}: data row {number} has {len(row)} columns, the first has {width}")
        if not _numeric(row[:column] + row[column + 1:]):
            raise ValueError(f"{path}: data row {number} has a non-numeric value")
    x = np.array([[float(c) for c in row[:column] + row[column + 1:]] for row in rows])
    labels = [row[column] for row in rows]
    if _numeric(labels):
        return x, np.array([float(v) for v in labels]), None
    names = tuple(sorted(set(labels)))
    index = {name: i for i, name in enumerate(names)}
    return x, np.array([index[v] for v in labels], dtype=np.int64), names


def _is_header(rows: list[list[str]]) -> bool:
    first = rows[0]
    if not any(_numeric([cell]) for cell in first):
        return True
    return len(rows) > 1 and any(not _numeric([a]) and _numeric([b]) for a, b in zip(first, rows[1]))


def _numeric(cells: Sequence[str]) -> bool:
    try:
        [float(cell) for cell in cells]
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


# ------------------------------------------------------------------------------ arrays


def check_arrays(x: np.ndarray, y: np.ndarray, where: str) -> None:
    """One-line ValueError for arrays a classifier cannot be trained on."""
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


def standardise_features(x_train: np.ndarray, x_test: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 inputs, each feature with the training part's mean 0 and standard deviation 1 (a
    feature constant in the training part is only centred); shapes are kept."""
    a = x_train.reshape(len(x_train), -1).astype(np.float64)
    b = x_test.reshape(len(x_test), -1).astype(np.float64)
    mean, std = a.mean(axis=0), a.std(axis=0)
    std = np.where(std > 1e-8, std, 1.0)
    return (torch.as_tensor(((a - mean) / std).astype(np.float32)).reshape(x_train.shape),
            torch.as_tensor(((b - mean) / std).astype(np.float32)).reshape(x_test.shape))


def from_arrays(name: str, x: np.ndarray, y: np.ndarray, x_test: np.ndarray | None, y_test: np.ndarray | None, *,
                where: str, class_names: tuple[str, ...] | None = None, data_seed: int = 0) -> ClassificationData:
    """Checked, split (a seeded 80 / 20 split when there is no test part) and standardised data."""
    check_arrays(x, y, where)
    train_rows = test_rows = None
    if x_test is None or y_test is None:
        order = generator(data_seed, "user-data-test-split").permutation(len(y))
        n_test = max(1, round(FILE_TEST_FRACTION * len(y)))
        test_rows, train_rows = np.sort(order[:n_test]), np.sort(order[n_test:])
        x, y, x_test, y_test = x[train_rows], y[train_rows], x[test_rows], y[test_rows]
        how = f"{len(train_rows)} train / {len(test_rows)} test rows (seeded {FILE_TEST_FRACTION:.0%} held out)"
    else:
        check_arrays(x_test, y_test, f"{where} (test arrays)")
        if x_test.shape[1:] != x.shape[1:]:
            raise ValueError(f"{where}: x_test's inputs have shape {x_test.shape[1:]}, x's {x.shape[1:]}")
        how = f"{len(y)} train / {len(y_test)} test (its own test arrays)"
    if len(y) < MIN_TRAINING_POINTS:
        raise ValueError(f"{where}: {len(y)} training points; a search needs at least {MIN_TRAINING_POINTS}")
    if len(np.unique(y)) < 2:
        raise ValueError(f"{where}: the training part has a single class ({int(y[0])}); classification needs two")
    classes = int(max(y.max(), y_test.max())) + 1
    if class_names is not None:
        classes = len(class_names)
    xt, xs = standardise_features(x, x_test)
    named = f", classes {', '.join(class_names)}" if class_names else ""
    return ClassificationData(name, xt, torch.as_tensor(y.astype(np.int64)), xs, torch.as_tensor(y_test.astype(np.int64)),
                              classes, f"{where}: {how}, {classes} classes{named}", class_names=class_names,
                              train_rows=train_rows, test_rows=test_rows)


def describe(data: ClassificationData) -> dict:
    """What a run's files record about its data: the source line, sizes and class names."""
    return dict(name=data.name, source=data.source, train=len(data.y_train), test=len(data.y_test),
                classes=data.num_classes, class_names=list(data.class_names) if data.class_names else None)
