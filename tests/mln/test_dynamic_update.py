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


def no_mutation(individual):
    raise AssertionError("the normalised rule never mutates")


def test_the_normalised_rule_moves_each_genome_by_the_step_length_in_place(rng):
    config = tiny_config(update_rule="normalised", update_step=0.2, update_truncation=5)
    individuals = [make_individual(glorot_genome(config.hidden, rng), 0.1) for _ in range(3)]
    frozen = make_individual(np.zeros_like(individuals[0]), 0.1)  # zero MLN: constant loss, zero gradient
    before = [np.array(ind) for ind in individuals + [frozen]]
    out = dynamic_update(individuals + [frozen], rng, config=config, mutate=no_mutation)
    assert out[0] is individuals[0]
    for ind, old in zip(individuals, before):
        assert np.linalg.norm(np.asarray(ind, dtype=np.float64) - old) == pytest.approx(0.2, rel=1e-4)
    np.testing.assert_array_equal(frozen, before[-1])


def test_the_algorithm_1_rule_takes_raw_gradient_steps_each_followed_by_a_mutation_at_its_rate():
    config = tiny_config(update_steps=1, update_lr=3.0, update_mutation_rate=0.0, update_truncation=4)
    rng = np.random.default_rng(1)
    individuals = [make_individual(glorot_genome(config.hidden, rng), 0.1) for _ in range(4)]
    before = np.stack(individuals).copy()
    task = update_task(config, np.random.default_rng(7))
    expected = before - 3.0 * meta_gradient(before, task, config, 4, "fast")
    dynamic_update(individuals, np.random.default_rng(7), config=config, mutate=no_mutation)
    np.testing.assert_allclose(np.stack(individuals), expected, rtol=1e-6, atol=1e-7)

    mutated = []
    always = tiny_config(update_steps=3, update_mutation_rate=1.0, update_truncation=2)
    dynamic_update(individuals, rng, config=always, mutate=lambda ind: mutated.append(ind) or (ind,))
    assert len(mutated) == 3 * len(individuals)  # every step of every individual


def test_the_fast_meta_gradient_agrees_with_the_exact_unrolled_one(rng):
    for hidden in ((8, 8), (32, 64, 32)):
        config = tiny_config(hidden=hidden)
        genomes = np.stack([glorot_genome(hidden, rng) for _ in range(6)])
        task = update_task(config, rng)
        exact = meta_gradient(genomes, task, config, 10, "exact").astype(np.float64)
        fast = meta_gradient(genomes, task, config, 10, "fast").astype(np.float64)
        cosine = (exact * fast).sum(1) / np.linalg.norm(exact, axis=1) / np.linalg.norm(fast, axis=1)
        assert cosine.min() > 0.999, cosine  # measured over 20 seeds: at least 0.99994


def test_the_update_is_algorithm_1_unless_switched_off(rng):
    refine = build_toolbox(tiny_config(), rng).refine
    assert refine.func.__name__ == "dynamic_update" and refine.keywords["config"].update_rule == "algorithm-1"
    assert build_toolbox(tiny_config(dynamic_update=False), rng).refine.func.__name__ == "keep_unchanged"
