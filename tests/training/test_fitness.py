"""The faithful fitness: the user's spec shortened, on splits of the training part only."""
import dataclasses
import math

import pytest
import torch
from torch import nn

from deap_mln.data.source import load_source
from deap_mln.training.fitness import (
    FaithfulFitness,
    ScaledLoss,
    faithful_fitness,
    fitness_splits,
    neighbour_rates,
    successive_halving,
)
from deap_mln.training.trainer import TrainingSpec, check_device

SPEC = TrainingSpec(model="mlp3", steps=100, batch_size=128, optimizer="sgd", lr=0.1)


@pytest.fixture(scope="module")
def digits_without_test_part():
    """Digits with the test part removed: reading it would fail."""
    return dataclasses.replace(load_source("digits"), x_test=None, y_test=None)


def test_the_fitness_trains_on_the_training_part_only_and_is_reproducible(digits_without_test_part):
    fitness = FaithfulFitness(fraction=0.2, splits=2)
    ce = faithful_fitness(nn.CrossEntropyLoss(), digits_without_test_part, SPEC, fitness, seed=0)
    again = faithful_fitness(nn.CrossEntropyLoss(), digits_without_test_part, SPEC, fitness, seed=0)
    other_seed = faithful_fitness(nn.CrossEntropyLoss(), digits_without_test_part, SPEC, fitness, seed=1)
    assert 0.5 < ce <= 1 and ce == again and ce != other_seed


def test_splits_resample_the_training_part():
    data = load_source("digits")
    first, second = fitness_splits(data, 2)
    assert len(first.y_train) + len(first.y_test) == len(data.y_train) == 1347
    assert not torch.equal(first.y_test, second.y_test)


def test_normalised_rates_undo_a_loss_scale_under_sgd(digits_without_test_part):
    """10 x CE under SGD is CE at ten times the rate; normalising its gradient scale undoes that."""
    fixed, normalised = FaithfulFitness(fraction=0.2), FaithfulFitness(fraction=0.2, rates="normalised")
    spec = dataclasses.replace(SPEC, lr=1.0)
    ce = faithful_fitness(nn.CrossEntropyLoss(), digits_without_test_part, spec, normalised, seed=0)
    tenfold = ScaledLoss(nn.CrossEntropyLoss(), 10.0)
    assert faithful_fitness(tenfold, digits_without_test_part, spec, fixed, seed=0) < ce - 0.05  # too large a step
    assert faithful_fitness(tenfold, digits_without_test_part, spec, normalised, seed=0) == pytest.approx(ce, abs=0.01)


def test_a_rate_search_scores_the_best_of_three_neighbours(digits_without_test_part):
    assert neighbour_rates(0.1) == [0.03, 0.1, 0.3] and neighbour_rates(1e-3) == [3e-4, 1e-3, 3e-3]
    fitness = FaithfulFitness(fraction=0.2)
    search = faithful_fitness(nn.CrossEntropyLoss(), digits_without_test_part, SPEC,
                              dataclasses.replace(fitness, rates="search"), seed=0)
    each = [faithful_fitness(nn.CrossEntropyLoss(), digits_without_test_part, dataclasses.replace(SPEC, lr=lr),
                             fitness, seed=0) for lr in neighbour_rates(SPEC.lr)]
    assert search == max(each)


class NaNLoss(nn.Module):
    def forward(self, logits, target):
        return logits.sum() * math.nan


def test_a_diverging_loss_scores_nan_and_successive_halving_trains_the_better_half_on(digits_without_test_part):
    fitness = FaithfulFitness(fraction=0.1)
    assert math.isnan(faithful_fitness(NaNLoss(), digits_without_test_part, SPEC, fitness, seed=0))
    losses = [nn.CrossEntropyLoss(), NaNLoss(), nn.MultiMarginLoss(), nn.CrossEntropyLoss(label_smoothing=0.1)]
    values = successive_halving(losses, digits_without_test_part, SPEC, fitness, seed=0, rungs=3)
    assert math.isnan(values[1])
    first_rung = [faithful_fitness(loss, digits_without_test_part, SPEC, fitness, seed=0) for loss in losses]
    order = sorted((k for k in range(4) if k != 1), key=lambda k: -first_rung[k])
    assert [math.floor(values[k]) for k in order] == [1, 1, 0]  # 3 valid -> the better 2 train on -> 1
    assert values[order[2]] == first_rung[order[2]]  # the rung-0 score of a candidate that stopped there


def test_a_device_torch_cannot_use_is_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available here"):
        check_device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        check_device("tpu")


def test_a_loss_known_by_its_logit_gradient_has_that_gradient():
    from deap_mln.data.brief_training import LogitGradientLoss, module_logit_gradient

    ce = nn.CrossEntropyLoss()
    wrapped = LogitGradientLoss(module_logit_gradient(ce))
    z = torch.randn(6, 4, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    (expected,) = torch.autograd.grad(ce(z, y), z)
    value = wrapped(z, y)
    (got,) = torch.autograd.grad(value, z)
    assert float(value.detach()) == 0.0 and torch.allclose(got, expected)
    assert math.isnan(float(LogitGradientLoss(module_logit_gradient(NaNLoss()))(z, y).detach()))
