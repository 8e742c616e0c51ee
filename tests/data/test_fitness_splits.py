"""The splits the GP and TaylorGLO searches score on: sizes, determinism, the test part kept apart."""
import torch

from deap_mln.data.fitness_splits import load_fitness_data
from deap_mln.metatest.baselines import baseline_loss
from deap_mln.training.splits import SplitTraining, split_accuracy


def test_digits_split_sizes_are_those_gp_runs_have_always_used():
    data = load_fitness_data("digits", 0)
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (1000, 347, 450)
    assert data.num_classes == 10


def test_mnist1d_split_divides_the_training_part_and_keeps_the_test_part():
    data = load_fitness_data("mnist1d", 0)
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (3000, 1000, 1000)
    assert data.x_train.shape[1] == 40 and data.num_classes == 10
    # train and validation are a partition of the training signals: no row appears in both
    rows = {tuple(r.tolist()) for r in data.x_train[:500]}
    assert not rows & {tuple(r.tolist()) for r in data.x_val}
    from deap_mln.data.datasets import load_mnist1d
    assert torch.equal(data.x_test, load_mnist1d(0).x_test.flatten(1))


def test_split_accuracy_on_mnist1d_trains_above_chance_and_repeats():
    settings = SplitTraining(dataset="mnist1d", steps=60, seed=3)
    first = split_accuracy(baseline_loss("ce"), settings)
    assert first > 0.25                      # 10 classes: chance is 0.1
    assert split_accuracy(baseline_loss("ce"), settings) == first
