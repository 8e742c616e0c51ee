import numpy as np
import torch

from deap_mln.data.synthetic import generation_tasks, make_task, mixture_pool
from tests.conftest import tiny_config

SIZES = dict(pool_size=3_000, train_size=500, val_size=300)


def test_same_key_gives_the_same_task():
    a = make_task(7, 2, 1, **SIZES)
    b = make_task(7, 2, 1, **SIZES)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert torch.equal(a.x_val, b.x_val) and torch.equal(a.p_val, b.p_val)
    assert a.seed == b.seed


def test_other_generation_index_or_seed_gives_another_task():
    base = make_task(7, 2, 1, **SIZES)
    for other in (make_task(7, 3, 1, **SIZES), make_task(7, 2, 0, **SIZES), make_task(8, 2, 1, **SIZES)):
        assert not torch.equal(base.x_train, other.x_train)
        assert not np.array_equal(base.ground_truth.weights[0], other.ground_truth.weights[0])


def test_task_shapes_labels_and_disjoint_split():
    task = make_task(0, 0, 0, **SIZES)
    assert task.x_train.shape == (500, 5) and task.x_val.shape == (300, 5)
    assert task.x_train.dtype == torch.float32 and task.y_train.dtype == torch.int64
    p_train = task.ground_truth.probability(task.x_train.double().numpy())
    np.testing.assert_array_equal(task.y_train.numpy(), p_train > 0.5)
    np.testing.assert_allclose(task.p_val.numpy(), task.ground_truth.probability(task.x_val.double().numpy()), rtol=1e-6)
    rows = {tuple(r) for r in task.x_train.numpy()}
    assert not any(tuple(r) in rows for r in task.x_val.numpy())
    assert 0.05 < task.y_train.float().mean() < 0.95  # both classes present


def test_linear_ground_truth_is_a_glorot_perceptron_and_nonlinear_has_three_layers():
    linear = make_task(0, 0, 0, kind="linear", **SIZES).ground_truth
    assert [w.shape for w in linear.weights] == [(1, 5)]
    assert np.abs(linear.weights[0]).max() <= 1.0  # Glorot bound sqrt(6 / (5 + 1)) = 1
    nonlinear = make_task(0, 0, 0, kind="nonlinear", **SIZES).ground_truth
    assert [w.shape for w in nonlinear.weights] == [(32, 5), (32, 32), (1, 32)]


def test_pool_is_a_mixture_of_50_gaussians():
    pool = mixture_pool(0, 20_000, 5, 50)
    assert pool.shape == (20_000, 5)
    # with means in [-2, 2] and stds in [0.2, 1], the pool's spread exceeds a single unit Gaussian's
    assert 1.0 < pool.std(axis=0).min() < 2.5


def test_generation_tasks_follow_the_config():
    config = tiny_config(tasks_per_eval=3)
    tasks = generation_tasks(config, 4)
    assert len(tasks) == 3
    assert torch.equal(tasks[1].x_train, make_task(config.seed, 4, 1, dim=5, components=50, pool_size=2_000,
                                                    train_size=400, val_size=200).x_train)
