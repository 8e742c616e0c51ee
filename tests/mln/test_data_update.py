"""The dynamic update on a data set's meta-tasks: the fitness's own training unrolled, its validation CE differentiated."""
import dataclasses

import numpy as np
import pytest
import torch

from deap_mln.data.brief_training import train_briefly
from deap_mln.mln import dynamic_update as du
from deap_mln.mln.check import population_passes
from deap_mln.mln.config import preset
from deap_mln.mln.data_update import UPDATE_STREAM, unrolled_data_training
from deap_mln.mln.dynamic_update import dynamic_update, meta_gradient, meta_loss, update_task
from deap_mln.mln.fitness import brief_training
from deap_mln.mln.individual import make_individual
from deap_mln.mln.kclass_loss import kclass_population_loss
from deap_mln.mln.network import glorot_genome
from deap_mln.mln.run import evolve
from deap_mln.mln.toolbox import build_toolbox
from deap_mln.seeding import generator
from tests.mln.test_data_tasks import HIDDEN, digits_config, margin_genome


def data_update_config(**overrides):
    return digits_config(**{"dynamic_update": True, "update_truncation": 6, **overrides})


def genomes(rng, n=6):
    return np.stack([margin_genome(k) for k in (5.0, 2.0)] +
                    [glorot_genome(HIDDEN, rng) for _ in range(n - 2)]).astype(np.float32)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_the_unrolled_training_is_the_fitness_training_cut_short(rng, optimizer):
    config = data_update_config(task_optimizer=optimizer)
    task = update_task(config, rng)
    g = torch.as_tensor(genomes(rng))
    table = kclass_population_loss("fast", g, HIDDEN, config.pair_grid_size)
    expected, _ = train_briefly(table.logit_gradient, task.split, len(g),
                                dataclasses.replace(brief_training(config, task), steps=config.update_truncation))
    gradient = du.table_kclass_logit_gradient(g, HIDDEN, config.pair_grid_size)
    with torch.enable_grad():
        unrolled = unrolled_data_training(gradient, task, config, config.update_truncation, len(g))
    for a, b in zip(unrolled, expected):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-5, atol=1e-6)


def test_the_update_task_is_a_split_of_the_search_part_from_its_own_stream(rng):
    config = data_update_config()
    task = update_task(config, np.random.default_rng(3))
    again = update_task(config, np.random.default_rng(3))
    assert torch.equal(task.split.x_train, again.split.x_train) and task.init_seed == again.init_seed
    assert task.split.classes == 10 and len(task.split.y_eval) == 200 and UPDATE_STREAM == "data-update"
    assert not torch.equal(task.split.x_train, update_task(config, np.random.default_rng(4)).split.x_train)


def test_the_data_meta_gradient_matches_finite_differences(rng):
    config = data_update_config(hidden=(4,), task_hidden=0, update_truncation=3)
    task = update_task(config, rng)
    genome = glorot_genome((4,), rng)[None].astype(np.float64)
    f = lambda x: meta_loss(torch.as_tensor(x), task, config, 3, "exact").sum().item()
    g = torch.as_tensor(genome).requires_grad_()
    (grad,) = torch.autograd.grad(meta_loss(g, task, config, 3, "exact").sum(), g)
    for i in (0, 3, 7, genome.shape[1] - 1):
        e = np.zeros_like(genome)
        e[0, i] = 1e-6
        assert grad[0, i].item() == pytest.approx((f(genome + e) - f(genome - e)) / 2e-6, rel=1e-3, abs=1e-9)


def test_the_fast_data_meta_gradient_agrees_with_the_exact_one_on_genomes_that_pass_the_check(rng):
    config = data_update_config()
    task = update_task(config, rng)
    drawn = genomes(rng, 40)
    x = drawn[population_passes(torch.as_tensor(drawn), HIDDEN, 10)][:8]
    exact = meta_gradient(x, task, config, 6, "exact").astype(np.float64)
    fast = meta_gradient(x, task, config, 6, "fast").astype(np.float64)
    cosine = (exact * fast).sum(1) / np.linalg.norm(exact, axis=1) / np.linalg.norm(fast, axis=1)
    # the table is coarse (33 nodes per axis) and Adam's step is steep where a weight's gradient is near
    # zero: over 48 passing genomes (6 draws of this test) the cosine had median 0.999 and minimum 0.64
    assert len(x) == 8 and np.median(cosine) > 0.99 and cosine.min() > 0.5, cosine


def test_the_update_moves_every_genome_and_lowers_the_validation_cross_entropy_it_differentiates(rng):
    config = data_update_config(update_steps=1, update_lr=1.0, update_mutation_rate=0.0)
    individuals = [make_individual(x, 0.1) for x in genomes(rng, 8)]
    before = np.stack(individuals).copy()
    task = update_task(config, np.random.default_rng(5))
    dynamic_update(individuals, np.random.default_rng(5), config=config, mutate=lambda ind: (ind,))
    after = np.stack(individuals)
    assert (np.abs(after - before).max(axis=1) > 0).all()
    loss = lambda x: meta_loss(torch.as_tensor(x), task, config, config.update_truncation, "fast").detach().numpy()
    assert (loss(after) < loss(before)).sum() >= 7


def test_the_update_is_reproducible_with_the_seed(rng):
    config = data_update_config(update_mutation_rate=0.5)
    start = genomes(rng)

    def refined(seed):  # the registered update, mutations included, from a run's seeded generator
        individuals = [make_individual(x.copy(), 0.01) for x in start]
        return np.stack(build_toolbox(config, generator(seed, "evolution")).refine(individuals))

    np.testing.assert_array_equal(refined(1), refined(1))
    assert not np.array_equal(refined(1), refined(2))


def test_data_sources_allow_the_update_and_the_preset_decides_its_default():
    assert preset("quick", tasks_source="digits", dynamic_update=True).dynamic_update
    assert not preset("quick", tasks_source="digits").dynamic_update  # measured: docs/method.md
    with pytest.raises(ValueError, match="dynamic_update unrolls the brief"):
        preset("quick", tasks_source="digits", fitness_training="faithful", dynamic_update=True)


def test_each_generation_unrolls_lambda_times_update_steps_trainings(tmp_path, monkeypatch):
    """What the league's accounting counts from the logbook: (rows - 1) x lambda x update_steps."""
    unrolled = []
    real = du.meta_loss
    monkeypatch.setattr(du, "meta_loss", lambda g, *a, **k: unrolled.append(len(g)) or real(g, *a, **k))
    config = data_update_config(generations=2, mu=4, lambda_=4, chunk_size=3, validation_top=2, task_steps=20,
                                update_steps=2)
    run = evolve(config, tmp_path / "run", progress=None)
    assert sum(unrolled) == (len(run.state.logbook) - 1) * config.lambda_ * config.update_steps == 16


@pytest.mark.slow
def test_a_process_pool_gives_the_serial_numbers_with_the_update_on_data_tasks(tmp_path):
    config = data_update_config(generations=2, mu=4, lambda_=4, chunk_size=2, validation_top=2, task_steps=20)
    serial = evolve(config, tmp_path / "serial", progress=None)
    pooled = evolve(config, tmp_path / "pool", backend="process", workers=2, progress=None)
    np.testing.assert_array_equal(np.stack(serial.state.population), np.stack(pooled.state.population))
    assert [ind.fitness.values for ind in serial.state.population] == \
        [ind.fitness.values for ind in pooled.state.population]
    assert serial.scores == pooled.scores
    without = evolve(dataclasses.replace(config, dynamic_update=False), tmp_path / "off", progress=None)
    assert [ind.fitness.values for ind in without.state.population] != \
        [ind.fitness.values for ind in serial.state.population]
