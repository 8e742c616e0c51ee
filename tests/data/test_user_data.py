"""Meta-tasks from a data set: loading, formats, one-line errors, splits that never touch the test part."""
import numpy as np
import pytest
import torch

from deap_mln.cli import main
from deap_mln.data.datasets import load_digits_data
from deap_mln.data.user_data import check_source, data_tasks, load_task_data, make_data_task, task_sizes
from tests.conftest import tiny_config


def write_csv(path, n=60, classes=3, header=True):
    """Rows with a unique id column (column 0), a noisy signal and the label last."""
    rng = np.random.default_rng(0)
    y = np.arange(n) % classes
    x = np.column_stack([np.arange(n), y + 0.1 * rng.standard_normal(n)])
    lines = (["id,signal,label"] if header else []) + [f"{a:g},{b:.6f},{c}" for (a, b), c in zip(x, y)]
    path.write_text("\n".join(lines) + "\n")
    return path


def row_ids(x, data):
    """The id column of standardised rows, mapped back to the file's row numbers."""
    raw = x[:, 0].double()
    train_ids = torch.as_tensor(data.train_rows, dtype=torch.float64)
    mean, std = train_ids.mean(), train_ids.std(unbiased=False)
    return set(np.round((raw * std + mean).numpy()).astype(int).tolist())


def test_a_csv_loads_with_its_header_standardised_by_training_statistics(tmp_path):
    data = load_task_data(f"csv:{write_csv(tmp_path / 'd.csv')}")
    assert data.classes == 3 and data.x_train.shape == (48, 2) and data.x_test.shape == (12, 2)
    assert torch.allclose(data.x_train.mean(0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(data.x_train.std(0, unbiased=False), torch.ones(2), atol=1e-5)
    assert set(data.train_rows) | set(data.test_rows) == set(range(60)) and not set(data.train_rows) & set(data.test_rows)
    assert "48 train / 12 test" in data.source


def test_an_npz_with_its_own_test_arrays_keeps_them_and_flattens_inputs(tmp_path):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "d.npz", x=rng.random((40, 2, 3)), y=np.arange(40) % 2, x_test=rng.random((10, 2, 3)),
             y_test=np.arange(10) % 2)
    data = load_task_data(f"npz:{tmp_path / 'd.npz'}")
    assert data.x_train.shape == (40, 6) and data.x_test.shape == (10, 6) and data.classes == 2
    assert data.train_rows is None and "own test arrays" in data.source


def bad_csv(text):
    return lambda path: path.write_text(text)


def bad_npz(**arrays):
    return lambda path: np.savez(path, **arrays)


GOOD_X = np.random.default_rng(2).random((20, 3))
GOOD_Y = np.arange(20) % 2


@pytest.mark.parametrize("suffix, write, message", [
    ("csv", bad_csv("a,b,y\n1,2,0\n3,4\n"), "data row 2 has 2 columns, the first has 3"),
    ("csv", bad_csv("1,2,0\n3,x,1\n"), "data row 2 has a non-numeric value"),
    ("csv", bad_csv("a,y\n" + "".join(f"{i},{i % 2}\n" for i in range(9)) + "nan,1\n"), "inputs hold NaN or infinite"),
    ("csv", bad_csv("".join(f"{i},{i % 2 + 0.5}\n" for i in range(20))), "labels must be integers"),
    ("csv", bad_csv("".join(f"{i},{i % 2 - 1}\n" for i in range(20))), "labels must be non-negative"),
    ("csv", bad_csv("".join(f"{i},3\n" for i in range(20))), "a single class"),
    ("csv", bad_csv("0\n1\n"), "at least one input column and a label column"),
    ("npz", bad_npz(x=GOOD_X), "needs arrays 'x' and 'y'"),
    ("npz", bad_npz(x=GOOD_X, y=GOOD_Y[:5]), "labels must have shape (20,)"),
    ("npz", bad_npz(x=GOOD_Y, y=GOOD_Y), "inputs must have shape (N, features...)"),
    ("npz", bad_npz(x=np.where(GOOD_X > 0.5, np.inf, GOOD_X), y=GOOD_Y), "inputs hold NaN or infinite"),
    ("npz", bad_npz(x=GOOD_X, y=GOOD_Y, x_test=GOOD_X), "both 'x_test' and 'y_test' or neither"),
    ("npz", bad_npz(x=GOOD_X, y=GOOD_Y, x_test=GOOD_X[:, :2], y_test=GOOD_Y), "x_test's inputs have shape"),
])
def test_bad_data_is_a_one_line_error(tmp_path, suffix, write, message):
    path = tmp_path / f"bad.{suffix}"
    write(path)
    with pytest.raises(ValueError) as error:
        load_task_data(f"{suffix}:{path}")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_the_cli_refuses_bad_data_with_exit_2_before_writing(tmp_path, capsys):
    (tmp_path / "bad.csv").write_text("".join(f"{i},1\n" for i in range(20)))
    out = tmp_path / "run"
    assert main(["evolve", "--tasks", f"csv:{tmp_path / 'bad.csv'}", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "a single class" in err and err.count("\n") == 1 and not out.exists()
    assert main(["evolve", "--tasks", "nonsense", "--out", str(out), "--quiet"]) == 2
    assert "tasks_source must be" in capsys.readouterr().err and not out.exists()


def test_sources_are_checked_by_name():
    for good in ("synthetic", "digits", "mnist1d", "mnist", "csv:a.csv", "npz:b.npz"):
        check_source(good)
    for bad in ("csv:", "cifar10", "tsv:x"):
        with pytest.raises(ValueError, match="tasks_source must be"):
            check_source(bad)


def test_task_sizes_are_capped_by_the_data():
    assert task_sizes(1347, 2000, 2000) == (1011, 336)
    assert task_sizes(100_000, 2000, 500) == (2000, 500)


def test_meta_tasks_never_include_test_rows(tmp_path):
    source = f"csv:{write_csv(tmp_path / 'd.csv', n=200)}"
    data = load_task_data(source)
    config = tiny_config(tasks_source=source, dynamic_update=False, train_size=100, val_size=40, validation_tasks=3,
                         test_tasks=2)
    train_rows, test_rows = set(data.train_rows.tolist()), set(data.test_rows.tolist())
    for split, generation in (("evolution", 0), ("evolution", 5), ("validation", 0)):
        for task in data_tasks(config, split, generation):
            fit, scored = row_ids(task.split.x_train, data), row_ids(task.split.x_eval, data)
            assert fit <= train_rows and scored <= train_rows and not fit & scored
            assert len(fit) == 100 and len(scored) == 40
    for task in data_tasks(config, "test", 0):  # the final score: trained on the training part, scored on the test part
        assert row_ids(task.split.x_train, data) <= train_rows and row_ids(task.split.x_eval, data) == test_rows


def test_digits_tasks_come_from_the_meta_test_training_split_only():
    data, meta_test = load_task_data("digits"), load_digits_data(0)
    assert torch.equal(data.y_train, meta_test.y_train) and torch.equal(data.y_test, meta_test.y_test)
    task = make_data_task(data, 0, "data-task", 3, 1, 2000, 2000)
    assert len(task.split.y_train) == 1011 and len(task.split.y_eval) == 336
    train = {tuple(row) for row in data.x_train.numpy().round(4).tolist()}
    assert all(tuple(row) in train for row in task.split.x_eval.numpy().round(4).tolist())
    again = make_data_task(data, 0, "data-task", 3, 1, 2000, 2000)
    assert torch.equal(task.split.x_train, again.split.x_train) and task.init_seed == again.init_seed
    other = make_data_task(data, 0, "data-task", 4, 1, 2000, 2000)
    assert not torch.equal(task.split.x_train, other.split.x_train)
