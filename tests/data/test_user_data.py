"""Meta-tasks from a data set: resampled splits of the search part; the test part is never read."""
import numpy as np
import torch

from deap_mln.cli import main
from deap_mln.data.datasets import load_digits_data
from deap_mln.data.user_data import data_tasks, load_task_data, make_data_task, task_sizes
from tests.conftest import tiny_config


def write_csv(path, n=60, classes=3, header=True):
    """Rows with a unique id column (column 0), a noisy signal and the label last."""
    rng = np.random.default_rng(0)
    y = np.arange(n) % classes
    x = np.column_stack([np.arange(n), y + 0.1 * rng.standard_normal(n)])
    lines = (["id,signal,label"] if header else []) + [f"{a:g},{b:.6f},{c}" for (a, b), c in zip(x, y)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_csv_training_part_is_divided_into_search_and_held_out_parts(tmp_path):
    data = load_task_data(f"csv:{write_csv(tmp_path / 'd.csv')}")
    assert data.classes == 3 and data.x_train.shape == (38, 2) and data.x_holdout.shape == (10, 2)
    assert torch.allclose(data.x_train.mean(0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(data.x_train.std(0, unbiased=False), torch.ones(2), atol=1e-5)
    assert "48 train / 12 test" in data.source and "38 search / 10 held out" in data.source


def test_the_cli_refuses_bad_data_with_exit_2_before_writing(tmp_path, capsys):
    (tmp_path / "bad.csv").write_text("".join(f"{i},1\n" for i in range(20)))
    out = tmp_path / "run"
    assert main(["evolve", "--tasks", f"csv:{tmp_path / 'bad.csv'}", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "a single class" in err and err.count("\n") == 1 and not out.exists()
    assert main(["evolve", "--data", "nonsense", "--out", str(out), "--quiet"]) == 2
    assert "unknown data source 'nonsense'" in capsys.readouterr().err and not out.exists()


def test_task_sizes_are_capped_by_the_data():
    assert task_sizes(1347, 2000, 2000) == (1011, 336)
    assert task_sizes(100_000, 2000, 500) == (2000, 500)


def test_no_meta_task_reads_the_test_part(tmp_path):
    """The test arrays are marked by a huge first feature: no task of any split may hold one."""
    rng = np.random.default_rng(3)
    x, y = rng.random((200, 3)), np.arange(200) % 2
    x_test = rng.random((50, 3))
    x_test[:, 0] = 1e6
    np.savez(tmp_path / "d.npz", x=x, y=y, x_test=x_test, y_test=np.arange(50) % 2)
    source = f"npz:{tmp_path / 'd.npz'}"
    data = load_task_data(source)
    assert len(data.y_train) == 160 and len(data.y_holdout) == 40
    config = tiny_config(tasks_source=source, dynamic_update=False, train_size=100, val_size=40, validation_tasks=3,
                         test_tasks=2)
    for split, generation in (("evolution", 0), ("evolution", 5), ("validation", 0), ("test", 0)):
        for task in data_tasks(config, split, generation):
            assert task.split.x_train.abs().max() < 10 and task.split.x_eval.abs().max() < 10
    for task in data_tasks(config, "test", 0):  # the final score: the held-out part of the training part
        assert torch.equal(task.split.x_eval, data.x_holdout)


def test_digits_tasks_come_from_the_meta_test_training_split_only():
    data, meta_test = load_task_data("digits"), load_digits_data(0)
    assert len(data.y_train) + len(data.y_holdout) == len(meta_test.y_train) == 1347
    assert sorted(data.y_train.tolist() + data.y_holdout.tolist()) == sorted(meta_test.y_train.tolist())
    task = make_data_task(data, 0, "data-task", 3, 1, 2000, 2000)
    assert len(task.split.y_train) == 809 and len(task.split.y_eval) == 269
    train = {tuple(row) for row in data.x_train.numpy().round(4).tolist()}
    assert all(tuple(row) in train for row in task.split.x_eval.numpy().round(4).tolist())
    again = make_data_task(data, 0, "data-task", 3, 1, 2000, 2000)
    assert torch.equal(task.split.x_train, again.split.x_train) and task.init_seed == again.init_seed
    other = make_data_task(data, 0, "data-task", 4, 1, 2000, 2000)
    assert not torch.equal(task.split.x_train, other.split.x_train)
