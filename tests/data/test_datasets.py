"""Data loaders on small files written in the real on-disk formats, and the real MNIST test split."""
from __future__ import annotations

import gzip
import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import datasets as tv

from deap_mln.cli import main
from deap_mln.data.datasets import (
    META_TEST_GENERATION,
    SHARED_MNIST,
    default_data_dir,
    find_idx_files,
    load_dataset,
    load_mnist_like,
    split_official_test_set,
)
from deap_mln.data.synthetic import make_task

REPO = Path(__file__).resolve().parents[2]
SHARED = (REPO / SHARED_MNIST).resolve()


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    """An IDX (ubyte) file as LeCun's MNIST files are written: magic 0x0000 08 <ndim>, big-endian sizes."""
    data = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data += np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def fake_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose mean brightness grows with the label, so a loader's pairing of images and labels shows."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    images = (labels[:, None, None] * 20 + rng.integers(0, 20, size=(n, 28, 28))).astype(np.uint8)
    return images, labels


def write_mnist(raw: Path, compress: bool, train: bool = True, n_train: int = 30, n_test: int = 12):
    sets = {}
    if train:
        sets["train"] = fake_digits(n_train, 1)
    sets["t10k"] = fake_digits(n_test, 2)
    for prefix, (images, labels) in sets.items():
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images, compress)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels, compress)
    return sets


def assert_pairs_kept(x: torch.Tensor, y: torch.Tensor) -> None:
    # brightness bands do not overlap across labels, so sorting by brightness sorts by label
    order = x.mean(dim=(1, 2, 3)).argsort()
    assert torch.equal(y[order], y[order].sort().values)


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_in_torchvision_layout(tmp_path, compress):
    sets = write_mnist(tmp_path / "MNIST" / "raw", compress)
    data = load_dataset("mnist", tmp_path)
    assert data.x_train.shape == (30, 1, 28, 28) and data.x_test.shape == (12, 1, 28, 28)
    assert data.y_train.tolist() == sets["train"][1].tolist()
    assert data.y_test.tolist() == sets["t10k"][1].tolist()
    assert ("torchvision MNIST" in data.source) != compress  # plain files go through torchvision's MNIST class
    assert abs(float(data.x_train.mean())) < 1e-5 and abs(float(data.x_train.std()) - 1) < 1e-3
    assert_pairs_kept(data.x_train, data.y_train)
    assert_pairs_kept(data.x_test, data.y_test)


def test_fashion_mnist_reads_its_own_folder(tmp_path):
    sets = write_mnist(tmp_path / "FashionMNIST" / "raw", compress=False)
    data = load_dataset("fashion-mnist", tmp_path)
    assert data.y_test.tolist() == sets["t10k"][1].tolist()
    assert "torchvision FashionMNIST" in data.source
    with pytest.raises(FileNotFoundError, match="MNIST"):
        load_dataset("mnist", tmp_path)  # Fashion-MNIST files are not MNIST


def test_test_only_files_give_a_fixed_split(tmp_path):
    images, labels = write_mnist(tmp_path, compress=True, train=False, n_test=50)["t10k"]  # flat folder, like the shared one
    a = load_mnist_like("mnist", tmp_path, data_seed=0)
    b = load_mnist_like("mnist", tmp_path, data_seed=0)
    c = load_mnist_like("mnist", tmp_path, data_seed=1)
    assert len(a.y_train) == 40 and len(a.y_test) == 10
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.y_train, c.y_train)
    tr, te = split_official_test_set(50, 0, 40)
    assert sorted(np.concatenate([tr, te]).tolist()) == list(range(50))
    assert a.y_train.tolist() == labels[tr].tolist() and a.y_test.tolist() == labels[te].tolist()
    assert "only the official test split" in a.source


@pytest.mark.skipif(not (SHARED / "t10k-images-idx3-ubyte.gz").is_file(), reason="shared MNIST test split not present")
def test_real_mnist_test_split_is_found_and_split_8000_2000(monkeypatch):
    monkeypatch.chdir(REPO)
    assert default_data_dir("mnist") == SHARED
    data = load_dataset("mnist")
    assert data.x_train.shape == (8000, 1, 28, 28) and data.x_test.shape == (2000, 1, 28, 28)
    labels = np.frombuffer(gzip.decompress((SHARED / "t10k-labels-idx1-ubyte.gz").read_bytes())[8:], dtype=np.uint8)
    images = gzip.decompress((SHARED / "t10k-images-idx3-ubyte.gz").read_bytes())
    assert hashlib.md5(images).hexdigest() == "2646ac647ad5339dbf082846283269ea"  # the README's checksum
    assert labels[:5].tolist() == [7, 2, 1, 0, 4]  # the official test set's first digits
    tr, te = split_official_test_set(10_000, 0)
    assert data.y_train.tolist() == labels[tr].tolist() and data.y_test.tolist() == labels[te].tolist()
    assert torch.bincount(data.y_test).min() > 150  # every digit well represented


def test_default_data_dir_finds_shared_split_beside_the_working_directory(tmp_path):
    work, shared = tmp_path / "work", tmp_path / "shared" / "data" / "mnist"
    work.mkdir()
    write_mnist(shared, compress=True, train=False)
    assert default_data_dir("mnist", cwd=work) == shared.resolve()
    assert default_data_dir("cifar10", cwd=work) == work / "data"
    write_mnist(work / "data" / "MNIST" / "raw", compress=False)
    assert default_data_dir("mnist", cwd=work) == work / "data"  # the user's own data wins
    assert set(find_idx_files(work / "data", "MNIST")) == {"train_images", "train_labels", "test_images", "test_labels"}


def write_cifar(root: Path, per_batch: int = 4, n_test: int = 3) -> dict[str, bytes]:
    """cifar-10-batches-py as the official archive holds it: pickled dicts with uint8 rows of 3072."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = n_test if name == "test_batch" else per_batch
        entry = {"batch_label": name, "labels": rng.integers(0, 10, size=n).tolist(),
                 "data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8), "filenames": [f"{i}.png" for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(entry))
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return {name: (folder / name).read_bytes() for name in names + ["batches.meta"]}


def test_cifar10_through_torchvision_with_md5_table_of_the_test_files(tmp_path, monkeypatch):
    files = write_cifar(tmp_path)
    with pytest.raises(ValueError, match="md5"):
        load_dataset("cifar10", tmp_path)  # torchvision refuses files that are not the official ones
    md5 = {name: hashlib.md5(content).hexdigest() for name, content in files.items()}
    # the only change: torchvision's table of expected checksums, pointed at the test files
    monkeypatch.setattr(tv.CIFAR10, "train_list", [[f"data_batch_{i}", md5[f"data_batch_{i}"]] for i in range(1, 6)])
    monkeypatch.setattr(tv.CIFAR10, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(tv.CIFAR10, "meta", {**tv.CIFAR10.meta, "md5": md5["batches.meta"]})
    data = load_dataset("cifar10", tmp_path)
    assert data.x_train.shape == (20, 3, 32, 32) and data.x_test.shape == (3, 3, 32, 32) and data.num_classes == 10
    test = pickle.loads(files["test_batch"])
    assert data.y_test.tolist() == test["labels"]
    # channel-first reshaping of the 3072-byte rows: red plane first, as in the official format
    red = test["data"][:, :1024].reshape(-1, 32, 32).astype(np.float64) / 255
    assert np.corrcoef(red.ravel(), data.x_test[:, 0].numpy().ravel())[0, 1] > 0.999


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist", "cifar10"])
def test_missing_data_exits_2_naming_the_flags(tmp_path, capsys, dataset):
    code = main(["meta-test", "--loss", "ce", "--dataset", dataset, "--data-dir", str(tmp_path / "none"),
                 "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "--data-dir" in err and "--download" in err
    assert not (tmp_path / "out").exists()


def test_synthetic_test_labels_are_ground_truth_decisions():
    data = load_dataset("synthetic-linear", data_seed=3)
    task = make_task(3, META_TEST_GENERATION, 0, kind="linear")
    assert data.num_classes == 2 and data.input_shape == (5,)
    assert torch.equal(data.y_test, (task.p_val > 0.5).long()) and torch.equal(data.x_train, task.x_train)


def test_digits_split_is_stratified_and_fixed():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert a.input_shape == (1, 8, 8) and len(a.y_train) + len(a.y_test) == 1797 and len(a.y_test) == 450
    assert torch.equal(a.x_test, b.x_test)
    test, total = torch.bincount(a.y_test, minlength=10), torch.bincount(torch.cat([a.y_train, a.y_test]), minlength=10)
    assert (test - 0.25 * total).abs().max() <= 1  # each class keeps its share in the test split


@pytest.mark.slow
def test_mnist1d_is_generated_offline_and_leaves_numpy_state_alone():
    np.random.seed(123)
    expected = np.random.random()
    np.random.seed(123)
    data = load_dataset("mnist1d")
    assert np.random.random() == expected
    assert data.x_train.shape == (4000, 40) and data.x_test.shape == (1000, 40) and data.num_classes == 10
    assert torch.bincount(data.y_train).min() > 300
