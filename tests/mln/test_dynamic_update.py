import numpy as np
import pytest
import torch

from deap_mln.mln.dynamic_update import dynamic_update, meta_gradient, truncated_meta_loss, update_task
from deap_mln.mln.individual import make_individual
from deap_mln.mln.network import glorot_genome
from deap_mln.mln.toolbox import build_toolbox
from tests.conftest import tiny_config


def test_one_update_lowers_the_meta_loss_more_often_than_a_random_step_of_the_same_norm(rng):
    config = tiny_config()
    genomes = np.stack([glorot_genome(config.hidden, rng) for _ in range(16)])
    task = update_task(config, rng)
    grad = meta_gradient(genomes, task, config, truncation=10)
    step = 0.05
    along_gradient = genomes - step * grad / np.linalg.norm(grad, axis=1, keepdims=True)
    noise = rng.standard_normal(genomes.shape).astype(np.float32)
    random_step = genomes + step * noise / np.linalg.norm(noise, axis=1, keepdims=True)
    meta_loss = lambda g: truncated_meta_loss(torch.as_tensor(g), task, config, 10).detach().numpy()
    before = meta_loss(genomes)
    lowered_by_update = int((meta_loss(along_gradient) < before).sum())
    lowered_by_random = int((meta_loss(random_step) < before).sum())
    assert lowered_by_update >= 14
    assert lowered_by_update > lowered_by_random


def test_meta_gradient_matches_finite_differences(rng):
    config = tiny_config(hidden=(4,))
    genome = glorot_genome(config.hidden, rng)[None].astype(np.float64)
    task = update_task(config, rng)
    f = lambda g: truncated_meta_loss(torch.as_tensor(g), task, config, 3).sum().item()
    g = torch.as_tensor(genome).requires_grad_()
    (grad,) = torch.autograd.grad(truncated_meta_loss(g, task, config, 3).sum(), g)
    for i in (0, 5, 13, genome.shape[1] - 1):
        e = np.zeros_like(genome)
        e[0, i] = 1e-6
        assert grad[0, i].item() == pytest.approx((f(genome + e) - f(genome - e)) / 2e-6, rel=1e-3, abs=1e-9)


def test_dynamic_update_moves_each_genome_by_the_step_length_in_place(rng):
    config = tiny_config()
    individuals = [make_individual(glorot_genome(config.hidden, rng), 0.1) for _ in range(3)]
    frozen = make_individual(np.zeros_like(individuals[0]), 0.1)  # zero MLN: constant loss, zero gradient
    before = [np.array(ind) for ind in individuals + [frozen]]
    out = dynamic_update(individuals + [frozen], rng, config=config, step_size=0.2, truncation=5)
    assert out[0] is individuals[0]
    for ind, old in zip(individuals, before):
        assert np.linalg.norm(np.asarray(ind, dtype=np.float64) - old) == pytest.approx(0.2, rel=1e-4)
    np.testing.assert_array_equal(frozen, before[-1])


def test_dynamic_update_is_registered_as_refine_only_when_asked(rng):
    assert build_toolbox(tiny_config(), rng).refine.func.__name__ == "keep_unchanged"
    refine = build_toolbox(tiny_config(dynamic_update=True), rng).refine
    assert refine.func.__name__ == "dynamic_update" and refine.keywords["truncation"] == 10
