"""Evolution on a data set's meta-tasks: the shared brief-training fitness, the K-class check, reproducibility."""
import numpy as np
import pytest
import torch
from torch import nn

from deap_mln.cli.evolve import config_from_args
from deap_mln.cli.main import build_parser
from deap_mln.data.brief_training import BriefTraining, Split, module_logit_gradient, train_and_score
from deap_mln.data.user_data import data_tasks, load_task_data
from deap_mln.mln.config import preset
from deap_mln.mln.fitness import FAILED_MLN_FITNESS, data_task_fitness, evaluate_chunk, make_chunks
from deap_mln.mln.network import MetaLossNetwork, module_to_genome
from deap_mln.mln.run import evolve, summarise_run
from tests.conftest import tiny_config

HIDDEN = (8, 8)


def margin_genome(k: float) -> np.ndarray:
    """An MLN computing g(a, b) = softplus(k (b - a)): for k > 0 a sensible loss (small when
    p_true is large, large when a false class wins), for k < 0 the reverse."""
    mln = MetaLossNetwork(HIDDEN)
    with torch.no_grad():
        for module in mln.net:
            if isinstance(module, nn.Linear):
                module.weight.zero_()
                module.bias.zero_()
            elif isinstance(module, nn.PReLU):
                module.weight.fill_(1.0)  # linear hidden layers
        first, second, last = (m for m in mln.net if isinstance(m, nn.Linear))
        first.weight[0, :2] = torch.tensor([-k, k])
        second.weight[0, 0] = 1.0
        last.weight[0, 0] = 1.0
    return module_to_genome(mln)


def digits_config(**overrides):
    values = dict(tasks_source="digits", dynamic_update=False, hidden=HIDDEN, train_size=300, val_size=200,
                  tasks_per_eval=1, task_steps=60, task_lr=0.01, validation_tasks=1, test_tasks=1)
    return tiny_config(**{**values, **overrides})


def test_the_fitness_ranks_a_sensible_loss_above_a_reversed_one_on_digits():
    config = digits_config()
    tasks = data_tasks(config, "evolution", 0)
    sensible, weak, reversed_ = (margin_genome(k) for k in (5.0, 0.5, -5.0))
    scores = data_task_fitness(np.stack([sensible, weak, reversed_]), config, tasks)
    assert scores[0] > 0.8 and scores[2] == FAILED_MLN_FITNESS  # the reversed loss fails the 10-class check
    assert scores[1] > 0.8  # Adam: a flatter margin loss of the same shape trains as well


def test_the_shared_training_separates_a_loss_that_trains_from_one_that_does_not_with_two_classes(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 5))
    y = (x[:, 0] + 0.3 * x[:, 1] > 0).astype(int)
    np.savez(tmp_path / "two.npz", x=x, y=y)
    config = digits_config(tasks_source=f"npz:{tmp_path / 'two.npz'}", task_fitness="cross-entropy")
    scores = data_task_fitness(np.stack([margin_genome(5.0), margin_genome(-5.0)]), config,
                               data_tasks(config, "evolution", 0))
    # K = 2: no K-class check, both are trained; the reversed loss learns to be wrong
    assert scores[0] > 0.6 > 0.4 > scores[1] > 0


def test_a_module_loss_trains_alone_as_it_does_in_a_population():
    data = load_task_data("digits")
    split = Split(data.x_train[:300], data.y_train[:300], data.x_train[300:500], data.y_train[300:500], 10)
    settings = BriefTraining(steps=40, batch_size=32, lr=0.01, init_seed=1, batch_seed=2)
    ce = train_and_score(module_logit_gradient(nn.CrossEntropyLoss()), split, 1, settings)
    wrong = train_and_score(module_logit_gradient(lambda z, t: -nn.functional.cross_entropy(z, t)), split, 1, settings)
    assert ce[0] > 0.8 and wrong[0] < 0.2

    def both(logits, target):  # member 0 trained by CE, member 1 by its negation
        return torch.cat([module_logit_gradient(nn.CrossEntropyLoss())(logits[:1], target),
                          -module_logit_gradient(nn.CrossEntropyLoss())(logits[1:], target)])

    pair = train_and_score(both, split, 2, settings)
    # every member starts from the same classifier and runs its own slice of the batched steps: equal, not close
    assert list(pair) == [ce[0], wrong[0]]


def test_a_non_finite_loss_fails_only_its_member():
    data = load_task_data("digits")
    split = Split(data.x_train[:200], data.y_train[:200], data.x_train[200:300], data.y_train[200:300], 10)

    def gradient(logits, target):
        g = torch.softmax(logits, -1) - nn.functional.one_hot(target, 10)
        g[1] = float("nan")
        return g / len(target)

    scores = train_and_score(gradient, split, 2, BriefTraining(steps=20))
    assert np.isfinite(scores[0]) and np.isnan(scores[1])


def test_data_task_evaluations_are_reproducible_and_independent_of_chunking():
    config = digits_config(task_steps=30)
    genomes = [margin_genome(k) for k in (5.0, 2.0, 0.5, 1.0)]
    whole = evaluate_chunk(make_chunks(genomes, config, 2)[0])
    assert whole == evaluate_chunk(make_chunks(genomes, config, 2)[0])
    assert whole != evaluate_chunk(make_chunks(genomes, config, 3)[0])  # another generation, other tasks
    alone = [s for chunk in make_chunks(genomes, config, 2, size=1) for s in evaluate_chunk(chunk)]
    # each member's training is its own slice of the batched steps, on the same tasks and seeds: the
    # accuracies are equal (a rounding difference would have to flip one of 200 predictions to show)
    assert whole == alone


def test_a_digits_run_writes_scores_and_shows(tmp_path):
    config = digits_config(generations=1, mu=4, lambda_=4, chunk_size=4, validation_top=2, task_steps=20)
    result = evolve(config, tmp_path / "run", progress=None)
    assert result.scores["kept"]["selected_by"] == "validation" and 0 <= result.scores["kept"]["test"] <= 1
    summary = summarise_run(tmp_path / "run")
    assert summary.best_metadata["classes"] == 10 and summary.best_metadata["tasks"] == "digits"
    assert any("test" in line for line in summary.lines())
    again = evolve(config, tmp_path / "again", progress=None)
    assert again.scores == result.scores


def test_the_tasks_flags_reach_the_config_and_switch_the_dynamic_update_off():
    parser = build_parser()
    config = config_from_args(parser.parse_args(["evolve", "--out", "x", "--tasks", "digits", "--task-fitness",
                                                 "cross-entropy", "--task-steps", "50", "--task-hidden", "0"]))
    assert (config.tasks_source, config.task_fitness, config.task_steps, config.task_hidden) == \
        ("digits", "cross-entropy", 50, 0)
    assert not config.dynamic_update and preset("quick").dynamic_update
    assert preset("quick", tasks_source="digits", dynamic_update=True).dynamic_update  # asked for: tests/mln/test_data_update.py
    with pytest.raises(ValueError, match="task_fitness must be one of"):
        preset("quick", tasks_source="digits", task_fitness="mse")


@pytest.mark.slow
def test_a_process_pool_gives_the_serial_numbers_on_data_tasks(tmp_path):
    config = digits_config(generations=1, mu=4, lambda_=4, chunk_size=2, validation_top=2, task_steps=20)
    serial = evolve(config, tmp_path / "serial", progress=None)
    pooled = evolve(config, tmp_path / "pool", backend="process", workers=2, progress=None)
    assert [ind.fitness.values for ind in serial.state.population] == \
        [ind.fitness.values for ind in pooled.state.population]
    assert serial.scores == pooled.scores
