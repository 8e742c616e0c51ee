"""The K-class check: which losses it accepts and rejects, in evolution, meta-test and export."""
import json

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from deap_mln.cli import main
from deap_mln.data.synthetic import generation_tasks
from deap_mln.deploy.compiled import CompiledMLNLoss
from deap_mln.deploy.export import export_run
from deap_mln.gp.tree import KNOWN_LOSSES, GPLoss
from deap_mln.metatest.baselines import baseline_loss
from deap_mln.metatest.run import meta_test
from deap_mln.mln.algorithms import start_evolution
from deap_mln.mln.check import (
    NON_FINITE,
    PREFERS_UNIFORM,
    PREFERS_WRONG,
    check_loss,
    lowest_confidence,
    path_confidences,
    population_checks,
    population_passes,
)
from deap_mln.mln.fitness import FAILED_MLN_FITNESS, population_fitness
from deap_mln.mln.network import MLNLoss, genome_layout, genome_size, genome_to_module, glorot_genome, save_loss
from deap_mln.mln.toolbox import build_toolbox
from deap_mln.seeding import generator
from tests.conftest import tiny_config

HIDDEN = (8, 8)


def slope_mln_genome(slope: float, hidden=HIDDEN) -> np.ndarray:
    """An MLN whose Eq. 4 term is g(p_true, p_false) = softplus(c * p_true), c = slope (slope > 0) or
    slope / 4^layers (slope < 0, through the PReLUs): built by hand, one unit carries p_true through."""
    genome = np.zeros(genome_size(hidden), dtype=np.float32)
    for k, layer in enumerate(genome_layout(hidden)):
        weight = np.zeros(layer.weight_shape, dtype=np.float32)
        weight[0, 0] = slope if k == 0 else 1.0
        genome[layer.weight] = weight.ravel()
        if layer.slope is not None:
            genome[layer.slope] = 0.25
    return genome


def valley_mln_genome(minimum: float, steepness: float = 10.0, hidden=HIDDEN) -> np.ndarray:
    """An MLN whose Eq. 4 term is g(p_true, p_false) = softplus(0.75 s |p_true - minimum|), s = steepness:
    two first-layer units carry s (p_true - minimum) and its negative, the PReLUs (slope 0.25) add
    them up to 0.75 s |p_true - minimum|, and the next layer passes it on."""
    genome = np.zeros(genome_size(hidden), dtype=np.float32)
    for k, layer in enumerate(genome_layout(hidden)):
        weight, bias = np.zeros(layer.weight_shape, dtype=np.float32), np.zeros(layer.weight_shape[0], np.float32)
        if k == 0:
            weight[0, 0], weight[1, 0], bias[:2] = steepness, -steepness, (-steepness * minimum, steepness * minimum)
        elif k == 1:
            weight[0, :2] = 1.0
        else:
            weight[0, 0] = 1.0
        genome[layer.weight], genome[layer.bias] = weight.ravel(), bias
        if layer.slope is not None:
            genome[layer.slope] = 0.25
    return genome


PREFERS_UNIFORM_MLN = slope_mln_genome(5.0)    # the loss grows with p_true: the uniform prediction beats a correct one
CE_LIKE_MLN = slope_mln_genome(-40.0)          # the loss falls as p_true grows, like cross-entropy
# the MLN that motivated the check: its minimum near p_true = 0.1 rewards a less confident prediction than
# a correct one (at K = 10, the uniform prediction itself)
MOTIVATING_MLN = valley_mln_genome(0.1)


def test_the_hand_built_mlns_are_what_they_claim():
    q = torch.tensor([0.1, 0.5, 0.9])
    g = lambda genome: genome_to_module(genome, HIDDEN)(torch.stack([q, 1 - q, torch.ones(3), torch.zeros(3)], 1))
    assert torch.all(g(PREFERS_UNIFORM_MLN).diff() > 0) and torch.all(g(CE_LIKE_MLN).diff() < 0)
    q = torch.linspace(0, 1, 101)
    valley = genome_to_module(MOTIVATING_MLN, HIDDEN)(torch.stack([q, 1 - q, torch.ones(101), torch.zeros(101)], 1))
    assert q[valley.argmin()] == pytest.approx(0.1)
    expected = F.softplus(7.5 * (q - 0.1).abs())
    torch.testing.assert_close(valley, expected, atol=1e-5, rtol=1e-5)


def test_the_path_starts_clearly_above_uniform_and_ends_at_0_99():
    assert [round(lowest_confidence(k), 4) for k in (2, 3, 5, 10, 100)] == [0.6, 0.4333, 0.3, 0.2, 0.2]
    for k in (2, 3, 10, 100):
        path = path_confidences(k)
        assert path[0] == lowest_confidence(k) and path[-1] == pytest.approx(0.99) and len(path) == 16
        assert all(np.diff(path) > 0) and path[0] >= 1 / k + 0.1 - 1e-12


LOSSES_THAT_PASS = {
    "ce": baseline_loss("ce"), "mse": baseline_loss("mse"), "focal": baseline_loss("focal"),
    "poly1": baseline_loss("poly1"), "baikal": baseline_loss("baikal"), "ngl": baseline_loss("ngl"),
    **{f"ls:{eps}": nn.CrossEntropyLoss(label_smoothing=eps) for eps in (0.05, 0.1, 0.3)},
    "gp-ce": GPLoss(KNOWN_LOSSES["cross_entropy"]), "ce-like-mln": MLNLoss(genome_to_module(CE_LIKE_MLN, HIDDEN)),
}


@pytest.mark.parametrize("classes", [2, 3, 10])
@pytest.mark.parametrize("name", list(LOSSES_THAT_PASS))
def test_cross_entropy_like_and_short_of_certainty_losses_pass(name, classes):
    result = check_loss(LOSSES_THAT_PASS[name], classes)
    assert result.ok and result.reason == "ok" and result.correct < result.uniform < result.wrong, result
    assert result.confidence in path_confidences(classes)


@pytest.mark.parametrize("name", ["baikal", "ngl", "ls:0.3"])
def test_losses_that_stop_short_of_certainty_pass_on_a_prediction_short_of_it(name):
    """Why the check asks for *some* correct prediction: these score a 0.9-confident correct
    10-class prediction above the uniform one (Baikal and NGL) or their best well below 0.9."""
    result = check_loss(LOSSES_THAT_PASS[name], 10)
    assert result.ok and 0.2 <= result.confidence <= 0.8, result
    p = torch.full((1, 10), 0.1 / 9)
    p[0, 0] = 0.9
    at_09 = float(LOSSES_THAT_PASS[name](p.log(), torch.tensor([0])))
    assert at_09 > result.correct
    if name != "ls:0.3":
        assert at_09 > result.uniform


@pytest.mark.parametrize("classes", [2, 3, 10])
def test_the_motivating_mln_fails(classes):
    for loss in (MLNLoss(genome_to_module(MOTIVATING_MLN, HIDDEN)),
                 CompiledMLNLoss.from_mln(genome_to_module(MOTIVATING_MLN, HIDDEN), resolution=33)):
        result = check_loss(loss, classes)
        assert not result and result.reason == PREFERS_UNIFORM and result.correct > result.uniform, result
        assert result.confidence == lowest_confidence(classes)  # its best on the path is the least confident
    assert not population_passes(MOTIVATING_MLN[None], HIDDEN, classes)[0]


@pytest.mark.parametrize("classes", [3, 10])
def test_a_minimum_barely_above_uniform_fails_and_one_clearly_above_passes(classes):
    """(p_true - m)^2: m halfway from 1/K to the path's lower end scores no probe below uniform."""
    def valley(m):
        return lambda logits, target: ((logits.softmax(1).gather(1, target[:, None]) - m) ** 2).mean()
    low = lowest_confidence(classes)
    assert check_loss(valley((1 / classes + low) / 2 - 0.01), classes).reason == PREFERS_UNIFORM
    assert check_loss(valley(low), classes)
    assert check_loss(valley(0.5 * (low + 0.99)), classes)


@pytest.mark.parametrize("classes", [2, 10])
def test_losses_that_prefer_uniform_or_wrong_predictions_or_turn_non_finite_fail(classes):
    negated = check_loss(GPLoss("mul(y, plog(p))"), classes)  # y log p: cross-entropy negated
    assert not negated and negated.reason == PREFERS_UNIFORM
    mln = check_loss(MLNLoss(genome_to_module(PREFERS_UNIFORM_MLN, HIDDEN)), classes)
    assert not mln and mln.reason == PREFERS_UNIFORM and mln.correct > mln.uniform
    assert "FAILED" in mln.line()

    def negative_entropy(logits, target):  # sum p log p: lowest at the uniform prediction
        return (logits.softmax(1) * logits.log_softmax(1)).sum(1).mean()
    assert check_loss(negative_entropy, classes).reason == PREFERS_UNIFORM

    def wrong_is_fine(logits, target):  # -p_true - max p: correct < uniform, but wrong < uniform too
        p = torch.softmax(logits, 1)
        return (-p.gather(1, target.view(-1, 1)).squeeze(1) - p.max(1).values).mean()
    assert check_loss(wrong_is_fine, classes).reason == PREFERS_WRONG
    nan = check_loss(lambda logits, target: logits.sum() * float("nan"), classes)
    assert not nan and nan.reason == NON_FINITE


def test_the_population_check_is_the_module_check():
    rng = np.random.default_rng(0)
    genomes = np.stack([glorot_genome(HIDDEN, rng) for _ in range(12)] + [MOTIVATING_MLN, PREFERS_UNIFORM_MLN,
                                                                           CE_LIKE_MLN])
    for classes in (3, 10):
        batched = population_checks(torch.as_tensor(genomes), HIDDEN, classes)
        one_by_one = [check_loss(MLNLoss(genome_to_module(g, HIDDEN)), classes) for g in genomes]
        assert [c.ok for c in batched] == [c.ok for c in one_by_one]
        assert [c.confidence for c in batched] == [c.confidence for c in one_by_one]
        assert not batched[-3].ok and not batched[-2].ok and batched[-1].ok and 0 < sum(c.ok for c in batched) < 13
        np.testing.assert_allclose([c.uniform for c in batched], [c.uniform for c in one_by_one], rtol=1e-5)
    table = CompiledMLNLoss.from_mln(genome_to_module(PREFERS_UNIFORM_MLN, HIDDEN), resolution=33)
    assert check_loss(table, 10).reason == PREFERS_UNIFORM
    assert check_loss(CompiledMLNLoss.from_mln(genome_to_module(CE_LIKE_MLN, HIDDEN), resolution=33), 10)


def test_k_class_fitness_rejects_failing_losses_without_training_them():
    config = tiny_config(classes=4)
    rng = np.random.default_rng(1)
    genomes = np.stack([PREFERS_UNIFORM_MLN, CE_LIKE_MLN] + [glorot_genome(HIDDEN, rng) for _ in range(4)])
    passes = population_passes(genomes, HIDDEN, 4)
    tasks = generation_tasks(config, 0)
    fitness = population_fitness(genomes, config, tasks)
    np.testing.assert_array_equal(fitness == FAILED_MLN_FITNESS, ~passes)
    assert not passes[0] and passes[1]
    # the failing members were never trained: the others' numbers are those of the passing ones alone
    np.testing.assert_array_equal(fitness[passes], population_fitness(genomes[passes], config, tasks))
    binary = population_fitness(genomes, tiny_config(), generation_tasks(tiny_config(), 0))
    assert np.all(binary > FAILED_MLN_FITNESS)  # binary tasks have no check


def test_rejected_losses_are_counted_as_failed_in_the_logbook():
    config = tiny_config(classes=10, validation_tasks=0, dynamic_update=False)
    toolbox = build_toolbox(config, generator(config.seed, "evolution"))
    state = start_evolution(toolbox, config.mu)
    rejected = ~population_passes(np.stack(state.population), HIDDEN, 10)
    assert 0 < rejected.sum() < config.mu
    assert state.logbook[0]["failed"] == rejected.sum()
    assert [ind.fitness.values[0] == FAILED_MLN_FITNESS for ind in state.population] == rejected.tolist()


@pytest.fixture
def bad_run(tmp_path):
    """A finished-looking run directory whose kept loss is the MLN that motivated the check."""
    run = tmp_path / "run"
    run.mkdir()
    tiny_config(classes=3).save(run / "config.json")
    save_loss(run / "best_loss.pt", MOTIVATING_MLN, HIDDEN, metadata=dict(method="hand-built", seed=0))
    return run


def test_meta_test_flags_a_loss_that_fails_the_check(bad_run, tmp_path, capsys):
    loss = str(bad_run / "best_loss.pt")
    result = meta_test([loss, "ce"], "digits", tmp_path / "mt", model="perceptron", seeds=1, steps=2, threads=1)
    flagged = [w for w in result.warnings if "class check" in w]  # others: a rate search ended at an edge
    assert len(flagged) == 1 and flagged[0].startswith(f"warning: {loss}: 10-class check FAILED")
    settings = json.loads((tmp_path / "mt" / "settings.json").read_text())
    assert settings["loss_checks"][loss]["ok"] is False and settings["loss_checks"][loss]["reason"] == PREFERS_UNIFORM
    assert "ce" not in settings["loss_checks"]
    assert main(["meta-test", "--loss", loss, "ce", "--dataset", "digits", "--model", "perceptron", "--seeds", "1",
                 "--steps", "2", "--threads", "1", "--quiet", "--out", str(tmp_path / "cli")]) == 0
    assert "warning:" in capsys.readouterr().out


def test_export_records_the_check_and_warns(bad_run, tmp_path, capsys):
    path, record = export_run(bad_run, "weights", tmp_path / "w.pt")
    checks = record["metadata"]["kclass_check"]
    assert sorted(checks, key=int) == [str(k) for k in range(2, 11)] and not any(c["ok"] for c in checks.values())
    assert torch.load(path, weights_only=True)["metadata"]["kclass_check"] == checks
    assert main(["export", str(bad_run), "--format", "table", "--resolution", "17", "--probes", "0",
                 "--out", str(tmp_path / "t.pt")]) == 0
    out = capsys.readouterr().out
    assert "warning: the loss fails the K-class check" in out and "K = 2, 3, 4, 5, 6, 7, 8, 9, 10" in out
    save_loss(bad_run / "best_loss.pt", CE_LIKE_MLN, HIDDEN)
    _, good = export_run(bad_run, "table", tmp_path / "g.pt", resolution=17, probes=0)
    assert all(c["ok"] for c in good["metadata"]["kclass_check"].values())
