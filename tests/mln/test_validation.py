"""Which loss a run keeps: chosen on fixed validation tasks, scored once on test tasks."""
import json

import numpy as np
import pytest

from deap_mln.data.synthetic import fixed_tasks, generation_tasks
from deap_mln.mln.algorithms import genome_key, mu_plus_lambda, start_evolution
from deap_mln.mln.fitness import held_out_fitness, population_fitness
from deap_mln.mln.run import evolve, summarise_run
from deap_mln.mln.toolbox import build_toolbox
from tests.conftest import tiny_config


def test_validation_and_test_tasks_are_fixed_and_never_trained_on(config):
    validation, test = fixed_tasks(config, "validation"), fixed_tasks(config, "test")
    assert len(validation) == config.validation_tasks and len(test) == config.test_tasks
    again = fixed_tasks(config, "validation")
    assert all(np.array_equal(a.x_train, b.x_train) for a, b in zip(validation, again))
    held_out = {task.seed for task in validation + test}
    for generation in range(20):
        assert not held_out & {task.seed for task in generation_tasks(config, generation)}
    assert not {t.seed for t in validation} & {t.seed for t in test}


def test_held_out_fitness_is_the_fitness_on_the_fixed_tasks(config, rng):
    toolbox = build_toolbox(config, rng)
    genomes = [np.asarray(ind) for ind in toolbox.population(n=3)]
    scores = held_out_fitness(genomes, config, "validation")
    together = population_fitness(np.stack(genomes), config, fixed_tasks(config, "validation"))
    assert scores == list(together)
    alone = [population_fitness(g[None], config, fixed_tasks(config, "validation"))[0] for g in genomes]
    assert scores == pytest.approx(alone, rel=1e-5)  # batching changes at most the last bits
    with pytest.raises(ValueError, match="validation' or 'test"):
        held_out_fitness(genomes, config, "evolution")


def test_each_survivor_is_validated_once_and_the_best_validated_is_kept(config, rng):
    toolbox = build_toolbox(config, rng)
    seen: list[str] = []
    validate = toolbox.validate
    toolbox.register("validate", lambda inds: seen.extend(genome_key(i) for i in inds) or validate(inds))
    state = start_evolution(toolbox, config.mu, validate_top=3)
    mu_plus_lambda(state, toolbox, mu=config.mu, lambda_=config.lambda_, cxpb=1.0, ngen=4, rng=rng, validate_top=3)
    assert len(seen) == len(set(seen)) >= 3  # a genome is never validated twice
    assert set(seen) == set(state.validation_scores)
    assert state.best_validation == max(state.validation_scores.values())
    assert state.validation_scores[genome_key(state.best_validated)] == state.best_validation
    rows = list(state.logbook)
    assert [r["validated_best"] for r in rows] == list(np.maximum.accumulate([r["validation"] for r in rows]))
    assert state.best_history == [r["validation"] for r in rows]  # what the convergence check watches
    assert sum(r["validated"] for r in rows) == len(seen)  # the logbook counts what validation trained


def test_the_kept_loss_and_its_scores_are_in_the_run_files(tmp_path):
    result = evolve(tiny_config(generations=4), tmp_path / "run", progress=None)
    scores = json.loads((tmp_path / "run" / "scores.json").read_text())
    assert scores == result.scores and scores["kept"]["selected_by"] == "validation"
    kept_test = held_out_fitness([result.state.best_validated], tiny_config(), "test")[0]
    assert scores["kept"]["test"] == kept_test
    lines = "\n".join(summarise_run(tmp_path / "run").lines())
    assert f"test {kept_test:.5f}" in lines and "selected by validation" in lines


def test_without_validation_tasks_the_best_single_measurement_is_kept(tmp_path):
    result = evolve(tiny_config(validation_tasks=0, test_tasks=0), tmp_path / "run", progress=None)
    assert result.state.best_validated is None
    assert result.scores["kept"]["selected_by"] == "best single measurement"
    assert result.best_fitness == result.state.hall_of_fame[0].fitness.values[0]
    assert "validation" not in result.state.logbook[-1]
