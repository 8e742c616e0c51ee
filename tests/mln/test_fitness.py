import dataclasses

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from deap_mln.data.synthetic import generation_tasks
from deap_mln.mln.fitness import FAILED_MLN_FITNESS, evaluate_chunk, make_chunks, population_fitness, reference_fitness
from deap_mln.mln.inner import train_population
from deap_mln.mln.network import genome_layout, glorot_genome
from deap_mln.mln.population_loss import ExactMLNLoss, TabulatedMLNLoss, interpolate, tabulate_binary_mln
from tests.conftest import tiny_config


@pytest.fixture
def genomes(config, rng):
    return np.stack([glorot_genome(config.hidden, rng) for _ in range(6)])


def test_tabulated_derivative_is_the_exact_derivative(config, genomes):
    values, slopes = tabulate_binary_mln(torch.as_tensor(genomes).double(), config.hidden, 101)
    h = 1e-6
    q = torch.linspace(0.05, 0.95, 7, dtype=torch.float64)
    exact = ExactMLNLoss(torch.as_tensor(genomes).double(), config.hidden)
    # g(q) via the exact loss with logits chosen so that p_true = q (sign +1, z = logit(q))
    g = lambda qq: torch.stack([exact(torch.logit(torch.tensor([[v]], dtype=torch.float64)).expand(6, 1),
                                      torch.ones(1, dtype=torch.float64)) for v in qq], 1)
    fd = (g(q + h) - g(q - h)) / (2 * h)
    table = interpolate(slopes, slopes.diff(dim=1), q.expand(6, -1).clone())
    torch.testing.assert_close(table, fd, rtol=2e-2, atol=1e-4)  # interpolated between grid points
    grid = torch.linspace(0, 1, 101, dtype=torch.float64)[10::20]
    torch.testing.assert_close(slopes[:, 10::20], (g(grid + h) - g(grid - h)) / (2 * h), rtol=1e-5, atol=1e-7)


def test_fast_logit_gradient_matches_exact_autograd(config, genomes):
    g = torch.as_tensor(genomes)
    draw = torch.Generator().manual_seed(0)  # fixed: the bound holds for these draws, not for every draw
    logits = torch.randn(6, 40, generator=draw) * 3
    sign = torch.where(torch.rand(40, generator=draw) > 0.5, 1.0, -1.0)
    fast = TabulatedMLNLoss(g, config.hidden, 4097).logit_gradient(logits, sign)
    exact = ExactMLNLoss(g, config.hidden).logit_gradient(logits, sign)
    torch.testing.assert_close(fast, exact, rtol=1e-3, atol=1e-6)


def test_fast_and_exact_fitness_agree_on_a_random_population(config, rng):
    population = np.stack([glorot_genome(config.hidden, rng) for _ in range(12)])
    tasks = generation_tasks(config, 0)
    fast = population_fitness(population, config, tasks)
    exact = population_fitness(population, dataclasses.replace(config, evaluation="exact"), tasks)
    assert spearmanr(fast, exact).statistic >= 0.99
    assert np.abs(fast - exact).max() < 1e-3


def test_batched_exact_path_matches_the_straightforward_reference(config, genomes):
    tasks = generation_tasks(config, 1)
    exact = population_fitness(genomes[:3], dataclasses.replace(config, evaluation="exact"), tasks)
    reference = [reference_fitness(g, config, tasks) for g in genomes[:3]]
    np.testing.assert_allclose(exact, reference, rtol=1e-4, atol=1e-6)


def test_nonlinear_tasks_train_a_three_layer_classifier_and_agree_with_reference(genomes):
    config = tiny_config(task_kind="nonlinear", evaluation="exact", inner_epochs=2)
    tasks = generation_tasks(config, 0)
    exact = population_fitness(genomes[:2], config, tasks)
    reference = [reference_fitness(g, config, tasks) for g in genomes[:2]]
    np.testing.assert_allclose(exact, reference, rtol=1e-4, atol=1e-6)


def test_fitness_is_negative_mse_and_better_losses_score_higher(config):
    tasks = generation_tasks(config, 0)
    sign_only = lambda slope: type("L", (), {
        "logit_gradient": lambda self, z, s: slope * torch.sigmoid(-s * z) * s / z.shape[1]})()
    # a loss that pushes towards the true class vs one that pushes away from it
    good = train_population(sign_only(-1.0), tasks[0], 1)
    bad = train_population(sign_only(+1.0), tasks[0], 1)
    from deap_mln.mln.inner import validation_mse
    assert validation_mse(good, tasks[0]).item() < validation_mse(bad, tasks[0]).item()


def test_nan_and_infinite_losses_get_the_worst_fitness_without_crashing(config, genomes):
    broken = genomes.copy()
    broken[0, :] = np.nan                 # NaN everywhere
    output = genome_layout(config.hidden)[-1].weight
    broken[1, output] = np.inf            # infinite loss values
    values, _ = tabulate_binary_mln(torch.as_tensor(broken[1:2]), config.hidden, 11)
    assert not torch.isfinite(values).all()
    for path in ("fast", "exact"):
        fit = population_fitness(broken, dataclasses.replace(config, evaluation=path), generation_tasks(config, 0))
        assert fit[0] == FAILED_MLN_FITNESS and fit[1] == FAILED_MLN_FITNESS
        assert np.all(np.isfinite(fit[2:])) and np.all(fit[2:] > FAILED_MLN_FITNESS)


def test_a_member_does_not_depend_on_its_chunk_neighbours(config, genomes):
    """Members are trained independently: each result is the same whatever shares its chunk
    (up to float rounding, since batch shapes differ); identical chunks give identical bits."""
    tasks = generation_tasks(config, 0)
    together = population_fitness(genomes, config, tasks)
    alone = np.concatenate([population_fitness(genomes[i:i + 1], config, tasks) for i in range(6)])
    np.testing.assert_allclose(together, alone, rtol=1e-5)
    np.testing.assert_array_equal(together, population_fitness(genomes, config, tasks))


def test_chunks_depend_on_config_only(config, genomes):
    chunks = make_chunks(list(genomes), dataclasses.replace(config, chunk_size=4), generation=3)
    assert [c.genomes.shape[0] for c in chunks] == [4, 2] and all(c.generation == 3 for c in chunks)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        results = [f for c in chunks for f in evaluate_chunk(c)]
        assert torch.get_num_threads() == 2  # restored after the single-threaded evaluation
    finally:
        torch.set_num_threads(before)
    assert all(isinstance(f, float) for f in results) and len(results) == 6


@pytest.mark.parametrize("name", ["ce", "mse", "focal"])
def test_reference_population_losses_are_the_meta_test_baselines_on_two_classes(name):
    from deap_mln.metatest.baselines import baseline_loss
    from deap_mln.mln.population_loss import BaselinePopulationLoss

    torch.manual_seed(0)
    z, y = torch.randn(1, 9, dtype=torch.float64), torch.randint(2, (9,))
    sign = (y * 2 - 1).double()
    logit = z.clone().requires_grad_()
    value = baseline_loss(name)(torch.stack([torch.zeros(9, dtype=torch.float64), logit[0]], 1), y)
    (grad,) = torch.autograd.grad(value, logit)
    loss = BaselinePopulationLoss(name)
    assert float(loss(z, sign)[0]) == pytest.approx(float(value.detach()), rel=1e-12)
    torch.testing.assert_close(loss.logit_gradient(z, sign), grad)
