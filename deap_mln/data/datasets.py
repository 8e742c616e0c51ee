"""Classification data for meta-testing: synthetic tasks and real data sets, as tensors.

Every loader returns a :class:`ClassificationData`: training and test tensors, the number
of classes and a one-line note saying where the data came from and how it was split.

| name | source | split |
|---|---|---|
| synthetic-linear / -nonlinear | :func:`deap_mln.data.synthetic.make_task` | training points / validation points, p_val > 0.5 |
| digits | scikit-learn ``load_digits`` (1,797 8x8 images, ships with the package) | stratified 1,347 / 450 |
| mnist1d | ``mnist1d.data.make_dataset`` (generated locally, no network) | the package's 4,000 / 1,000 |
| mnist, fashion-mnist | torchvision ``MNIST`` / ``FashionMNIST`` (IDX files) | official 60,000 / 10,000 |
| cifar10 | torchvision ``CIFAR10`` (pickled batches, md5-checked) | official 50,000 / 10,000 |

Where only the official MNIST (or Fashion-MNIST) *test* files are present, that set of
10,000 images is split by a permutation seeded with ``data_seed`` into 8,000 training and
2,000 test images (:func:`split_official_test_set`). Every split depends on ``data_seed`` only.
"""
from __future__ import annotations

import gzip
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deap_mln.data.synthetic import make_task
from deap_mln.seeding import generator

DATASETS = ("synthetic-linear", "synthetic-nonlinear", "digits", "mnist1d", "mnist", "fashion-mnist", "cifar10")
DEFAULT_DATA_DIR = Path("data")
SHARED_MNIST = Path("..") / "shared" / "data" / "mnist"  # the official MNIST test split, beside the repository
TEST_ONLY_TRAIN_SIZE = 8_000  # of the 10,000 official test images; the other 2,000 are the test set
# make_task key for meta-test tasks: evolution runs use generations 0, 1, ... and never reach it
META_TEST_GENERATION = 1_000_000
SYNTHETIC_SIZES: dict[str, Any] = dict(pool_size=500_000, train_size=50_000, val_size=10_000)  # the paper's


@dataclass(frozen=True)
class ClassificationData:
    """Training and test examples; x float32 of shape (N, *input_shape), y int64 in [0, K)."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    source: str  # one line: where the data came from and how it was split
    class_names: tuple[str, ...] | None = None  # label i is class_names[i] (a CSV's class-name labels)
    # a file without a test split: its rows in each part
    train_rows: np.ndarray | None = field(default=None, compare=False, repr=False)
    test_rows: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def standardise(x_train: np.ndarray, x_test: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, C, H, W) in [0, 1] -> float32 tensors with the training set's per-channel
    mean 0 and standard deviation 1 (statistics from the training split only)."""
    mean = x_train.mean(axis=(0, 2, 3), keepdims=True)
    std = x_train.std(axis=(0, 2, 3), keepdims=True) + 1e-8
    return (torch.as_tensor(((x_train - mean) / std).astype(np.float32)),
            torch.as_tensor(((x_test - mean) / std).astype(np.float32)))


def _images(name: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
            num_classes: int, source: str) -> ClassificationData:
    xt, xs = standardise(x_train.astype(np.float64), x_test.astype(np.float64))
    return ClassificationData(name, xt, torch.as_tensor(y_train, dtype=torch.int64), xs,
                              torch.as_tensor(y_test, dtype=torch.int64), num_classes, source)


def load_synthetic(kind: str, data_seed: int = 0) -> ClassificationData:
    """A binary synthetic task (``kind`` linear or nonlinear) at the paper's sizes.

    Test labels are the ground truth's decisions on the task's validation points (p_val > 0.5).
    """
    task = make_task(data_seed, META_TEST_GENERATION, 0, kind=kind, **SYNTHETIC_SIZES)
    source = (f"synthetic {kind} task: make_task(seed={data_seed}, generation={META_TEST_GENERATION}, index=0), "
              f"{len(task.y_train)} train / {len(task.p_val)} test points")
    return ClassificationData(f"synthetic-{kind}", task.x_train, task.y_train, task.x_val,
                              (task.p_val > 0.5).to(torch.int64), 2, source)


def load_digits_data(data_seed: int = 0) -> ClassificationData:
    """scikit-learn's 1,797 8x8 digits as (1, 8, 8) images; stratified 75/25 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = bunch.images.reshape(-1, 1, 8, 8) / 16.0
    x_tr, x_te, y_tr, y_te = train_test_split(x, bunch.target, test_size=0.25, stratify=bunch.target,
                                              random_state=data_seed)
    return _images("digits", x_tr, y_tr, x_te, y_te, 10,
                   f"scikit-learn load_digits, stratified split (random_state={data_seed}): {len(y_tr)} train / {len(y_te)} test")


def load_mnist1d(data_seed: int = 0) -> ClassificationData:
    """MNIST-1D generated locally by the ``mnist1d`` package (its default arguments, seed 42):
    40-point signals, 4,000 train / 1,000 test. ``data_seed`` does not change it."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        raise FileNotFoundError("mnist1d: the mnist1d package is not installed (pip install mnist1d)") from None
    state = np.random.get_state()  # make_dataset seeds numpy's global generator; leave it as it was
    try:
        d = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(state)
    return ClassificationData("mnist1d", torch.as_tensor(d["x"], dtype=torch.float32), torch.as_tensor(d["y"], dtype=torch.int64),
                              torch.as_tensor(d["x_test"], dtype=torch.float32), torch.as_tensor(d["y_test"], dtype=torch.int64),
                              10, f"mnist1d.data.make_dataset (generated locally, seed 42): "
                                  f"{len(d['y'])} train / {len(d['y_test'])} test")


# --------------------------------------------------------------------------- MNIST / Fashion-MNIST

IDX_STEMS = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
             "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}


def _torchvision_class(name: str):
    from torchvision import datasets

    return {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST, "cifar10": datasets.CIFAR10}[name]


def find_idx_files(root: Path, folder: str) -> dict[str, Path]:
    """The IDX files present under ``root``: torchvision's ``<root>/<folder>/raw/`` first, then
    ``root`` itself (a flat folder such as the shared MNIST test split). Each file may be
    plain or gzip (``.gz``); the plain one wins."""
    found: dict[str, Path] = {}
    for raw in (root / folder / "raw", root):
        for key, stem in IDX_STEMS.items():
            for candidate in (raw / stem, raw / (stem + ".gz")):
                if key not in found and candidate.is_file():
                    found[key] = candidate
    return found


def read_idx(path: Path, images: bool) -> np.ndarray:
    """Read one IDX file (plain or gzip) with torchvision's own MNIST reader.

    torchvision's reader opens plain files only, so a ``.gz`` file is decompressed into a
    temporary folder first (as torchvision's own download step would)."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    reader = read_image_file if images else read_label_file
    if path.suffix != ".gz":
        return reader(str(path)).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / path.stem
        with gzip.open(path, "rb") as src, open(plain, "wb") as dst:
            shutil.copyfileobj(src, dst)
        return reader(str(plain)).numpy()


def split_official_test_set(n: int, data_seed: int, train_size: int = TEST_ONLY_TRAIN_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) of the fixed split of an official test set: the first
    ``train_size`` entries of a permutation drawn from ``generator(data_seed, "test-only-split")``."""
    if not 0 < train_size < n:
        raise ValueError(f"cannot split {n} examples into {train_size} train and the rest test")
    order = generator(data_seed, "test-only-split").permutation(n)
    return order[:train_size], order[train_size:]


def _download(name: str, root: Path) -> None:
    """Let torchvision fetch ``name`` into ``root`` (it skips files already there)."""
    cls = _torchvision_class(name)
    try:
        cls(str(root), train=True, download=True)
    except Exception as exc:  # URLError, RuntimeError, OSError: all mean the same to the user
        reason = " ".join(str(exc).split()) or exc.__class__.__name__
        reason = reason if len(reason) <= 240 else reason[:237] + "..."
        raise FileNotFoundError(f"{name}: could not download into {root} ({reason}); "
                                f"put the files under --data-dir instead") from None


def load_mnist_like(name: str, root: Path, download: bool = False, data_seed: int = 0) -> ClassificationData:
    """MNIST or Fashion-MNIST from ``root`` through torchvision.

    torchvision's layout (``<root>/MNIST/raw/`` or ``<root>/FashionMNIST/raw/``, all four files
    decompressed, as its download leaves them) is read by the torchvision dataset class itself;
    gzip-only or flat folders are read file by file with torchvision's IDX reader. With only
    the two test files present, :func:`split_official_test_set` makes the 8,000 / 2,000 split.
    """
    cls = _torchvision_class(name)
    folder = cls.__name__
    if download:
        _download(name, root)
    files = find_idx_files(root, folder)
    if len(files) == 4:
        raw = root / folder / "raw"
        if all(files[k] == raw / IDX_STEMS[k] for k in IDX_STEMS):
            train, test = cls(str(root), train=True), cls(str(root), train=False)
            arrays: tuple[np.ndarray, ...] = (train.data.numpy(), train.targets.numpy(), test.data.numpy(),
                                              test.targets.numpy())
            how = f"torchvision {folder} in {root}"
        else:
            arrays = tuple(read_idx(files[k], images=k.endswith("images")) for k in IDX_STEMS)
            how = f"IDX files in {files['train_images'].parent}"
        x_tr, y_tr, x_te, y_te = arrays
        source = f"{how}: official {len(y_tr)} train / {len(y_te)} test"
    elif "test_images" in files and "test_labels" in files:
        x_all = read_idx(files["test_images"], images=True)
        y_all = read_idx(files["test_labels"], images=False)
        if len(x_all) != len(y_all):
            raise ValueError(f"{name}: {files['test_images']} has {len(x_all)} images but the labels file has {len(y_all)}")
        tr, te = split_official_test_set(len(y_all), data_seed, min(TEST_ONLY_TRAIN_SIZE, int(0.8 * len(y_all))))
        x_tr, y_tr, x_te, y_te = x_all[tr], y_all[tr], x_all[te], y_all[te]
        source = (f"only the official test split found ({files['test_images'].parent}): fixed split of its "
                  f"{len(y_all)} images by a permutation with data seed {data_seed}: {len(tr)} train / {len(te)} test")
    else:
        raise FileNotFoundError(f"{name}: no {folder} files in {root} (looked for {folder}/raw/{IDX_STEMS['train_images']}[.gz] "
                                f"and the other IDX files); pass --data-dir DIR that holds them, or --download")
    x_tr = x_tr[:, None].astype(np.float64) / 255.0
    x_te = x_te[:, None].astype(np.float64) / 255.0
    return _images(name, x_tr, y_tr, x_te, y_te, 10, source)


def load_cifar10(root: Path, download: bool = False) -> ClassificationData:
    """CIFAR-10 through torchvision's ``CIFAR10`` from ``<root>/cifar-10-batches-py/``.

    torchvision checks every batch file and ``batches.meta`` against the md5 sums in
    ``CIFAR10.train_list``, ``test_list`` and ``meta``; files that fail are refused."""
    cls = _torchvision_class("cifar10")
    if download:
        _download("cifar10", root)
    folder = root / cls.base_folder
    if not folder.is_dir():
        raise FileNotFoundError(f"cifar10: no {cls.base_folder} folder in {root}; "
                                "pass --data-dir DIR that holds it, or --download")
    try:
        train, test = cls(str(root), train=True), cls(str(root), train=False)
    except RuntimeError as exc:
        raise ValueError(f"cifar10: the files in {folder} are missing or fail torchvision's md5 check ({exc})") from None
    x_tr = train.data.transpose(0, 3, 1, 2) / 255.0
    x_te = test.data.transpose(0, 3, 1, 2) / 255.0
    return _images("cifar10", x_tr, np.asarray(train.targets), x_te, np.asarray(test.targets), len(train.classes),
                   f"torchvision CIFAR10 in {root}: {len(train.targets)} train / {len(test.targets)} test")


def default_data_dir(name: str, cwd: Path | None = None) -> Path:
    """Where data is looked for without ``--data-dir``: ``./data``; for ``mnist``, when
    ``./data`` holds no MNIST files, the shared MNIST test split ``../shared/data/mnist``
    relative to the working directory or, failing that, to the repository."""
    cwd = Path.cwd() if cwd is None else cwd
    base = cwd / DEFAULT_DATA_DIR
    if name != "mnist" or find_idx_files(base, "MNIST"):
        return base
    repo = Path(__file__).resolve().parents[2]
    for candidate in (cwd / SHARED_MNIST, repo / SHARED_MNIST):
        if find_idx_files(candidate, "MNIST"):
            return candidate.resolve()
    return base


def load_dataset(name: str, data_dir: Path | None = None, download: bool = False, data_seed: int = 0) -> ClassificationData:
    """Load data set ``name`` (one of :data:`DATASETS`); ``data_dir`` only matters for the
    torchvision data sets (default: :func:`default_data_dir`)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    if name.startswith("synthetic-"):
        return load_synthetic(name.removeprefix("synthetic-"), data_seed)
    if name == "digits":
        return load_digits_data(data_seed)
    if name == "mnist1d":
        return load_mnist1d(data_seed)
    if data_dir is not None:
        root = Path(data_dir)
    else:  # a download goes to ./data, never into the shared read-only test split
        root = Path.cwd() / DEFAULT_DATA_DIR if download else default_data_dir(name)
    if name == "cifar10":
        return load_cifar10(root, download)
    return load_mnist_like(name, root, download, data_seed)
